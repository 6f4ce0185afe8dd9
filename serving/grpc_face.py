"""The gRPC face (grpcio, asyncio): Predict and PredictBatch over the predictor core, with the
standard health service and server reflection (so `grpcurl` can list and call it)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
import pandas as pd
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from skewless.features.service import ServiceSchema

from .core import Instance, Prediction
from .errors import InvalidInput, PayloadTooLarge, ServingError
from .protos import prediction_pb2 as pb
from .protos import prediction_pb2_grpc as pb_grpc
from .runtime import Runtime

log = logging.getLogger("skewless.serving")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Prediction"].full_name


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """The one place where service errors become gRPC status codes (never a stack trace)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except ServingError as exc:
                metadata = (("field", exc.field),) if exc.field else ()
                await context.abort(exc.grpc_status, exc.message, trailing_metadata=metadata)
            except Exception:
                log.exception("unexpected error in %s", details.method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the log")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class PredictionServicer(pb_grpc.PredictionServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def Predict(self, request: pb.PredictRequest, context: Any) -> pb.PredictResponse:
        with self._observed("grpc/Predict") as clock:
            prediction, clock[0] = await self.runtime.coalescer.one(
                self._instance(request.instance, "instance"),
                endpoint="grpc/Predict",
                return_features=request.return_features,
            )
            return _response(prediction)

    async def PredictBatch(
        self, request: pb.PredictBatchRequest, context: Any
    ) -> pb.PredictBatchResponse:
        with self._observed("grpc/PredictBatch"):
            limit = self.runtime.settings.max_batch_size
            if not request.instances:
                raise InvalidInput("instances must not be empty", "instances")
            if len(request.instances) > limit:
                raise PayloadTooLarge(f"at most {limit} instances per batch", "instances")
            predictions = self.runtime.core.predict(
                [self._instance(i, f"instances.{k}") for k, i in enumerate(request.instances)],
                endpoint="grpc/PredictBatch",
                return_features=request.return_features,
            )
            return pb.PredictBatchResponse(predictions=[_response(p) for p in predictions])

    def _instance(self, message: pb.Instance, where: str) -> Instance:
        raw = {
            "request_id": message.request_id or None,
            "entities": _values(message.entities, f"{where}.entities"),
            "request": _values(message.request, f"{where}.request"),
        }
        parsed = self.runtime.wire.parse_instance(raw, where)
        return Instance(
            parsed.request_id,  # type: ignore[attr-defined]
            parsed.entities.__dict__,  # type: ignore[attr-defined]
            parsed.request.__dict__,  # type: ignore[attr-defined]
        )

    @contextmanager
    def _observed(self, endpoint: str) -> Iterator[list[float]]:
        """Latency and status of every call, failed ones too (as the REST front does). The
        clock starts here, or where the caller sets it: when a coalesced batch began."""
        clock = [time.perf_counter()]
        status = "INTERNAL"
        try:
            yield clock
            status = "OK"
        except ServingError as exc:
            status = exc.grpc_status.name
            raise
        finally:
            metrics = self.runtime.metrics
            metrics.child(metrics.latency, endpoint, "total").observe(
                time.perf_counter() - clock[0]
            )
            metrics.child(metrics.requests, endpoint, status).inc()


def _values(values: Any, where: str) -> dict[str, Any]:
    out = {}
    for name, value in values.items():
        try:
            out[name] = _from_value(value)
        except (ValueError, OverflowError) as exc:  # a Timestamp beyond what datetime holds
            raise InvalidInput(f"{where}.{name}: {exc}", f"{where}.{name}") from None
    return out


def _from_value(value: pb.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime(tzinfo=UTC)
    return getattr(value, kind)


def grpc_instance(
    row: Mapping[str, Any], schema: ServiceSchema, request_id: str = ""
) -> pb.Instance:
    """The gRPC twin of `schemas.rest_body`."""
    return pb.Instance(
        request_id=request_id,
        entities={k: to_value(row[k]) for k in schema.join_keys},
        request={k: to_value(row[k]) for k in schema.request_fields},
    )


def to_value(value: Any) -> pb.Value:
    """A plain, numpy or pandas value (as a frame row holds it) as a typed proto Value."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return pb.Value(null_value=True)
    if isinstance(value, bool):
        return pb.Value(bool_value=value)
    if isinstance(value, int):
        return pb.Value(int64_value=value)
    if isinstance(value, float):
        return pb.Value(double_value=value)
    if isinstance(value, datetime):
        stamp = Timestamp()
        stamp.FromDatetime(value)
        return pb.Value(timestamp_value=stamp)
    return pb.Value(string_value=str(value))


def _response(p: Prediction) -> pb.PredictResponse:
    return pb.PredictResponse(
        request_id=p.request_id,
        probability=p.probability,
        decision=p.decision,
        threshold=p.threshold,
        model_name=p.model_name,
        model_version=p.model_version,
        served_by=p.served_by,
        missing_features=list(p.missing_features),
        features={k: to_value(v) for k, v in (p.features or {}).items()},
        definitions=p.definitions,
    )


class GrpcFace:
    """The gRPC server, started and stopped with the REST server's lifespan (it must be made
    inside the running event loop, which it shares with uvicorn)."""

    def __init__(self, runtime: Runtime, host: str, port: int, *, reuse_port: bool) -> None:
        self.runtime = runtime
        self.address = f"{host}:{port}"
        self.reuse_port = reuse_port
        self.port = port
        self.server: grpc.aio.Server | None = None
        self.health = health_aio.HealthServicer()

    async def start(self) -> None:
        limit = self.runtime.settings.max_body_bytes
        server = grpc.aio.server(
            interceptors=[ErrorInterceptor()],
            # Beyond it grpc answers RESOURCE_EXHAUSTED itself, before any Python runs: the
            # fastest refusal there is, but one this service cannot count (metrics.shed).
            maximum_concurrent_rpcs=self.runtime.settings.max_in_flight,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 4 * limit),
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
            ],
        )
        pb_grpc.add_PredictionServicer_to_server(  # type: ignore[no-untyped-call]  # generated
            PredictionServicer(self.runtime), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        self.port = server.add_insecure_port(self.address)
        await server.start()
        self.server = server
        await self.set_health()

    async def set_health(self) -> None:
        ready, _ = await asyncio.to_thread(self.runtime.ready)
        serving = health_pb2.HealthCheckResponse.SERVING
        status = serving if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        if self.server is None:
            return
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)
