"""The REST face: the FastAPI app (health, metrics, the OpenAPI schema) behind its front
(serving/front.py), which answers the prediction endpoints and counts every request once."""

# No `from __future__ import annotations`: FastAPI reads the request models from the
# endpoint annotations at run time, and they are made per feature service in create_app.

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ServingError, error_json, internal
from .front import Front
from .runtime import Runtime
from .schemas import BatchPrediction, ErrorBody, invalid_input
from .schemas import Prediction as PredictionOut

JSON = "application/json"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (413, 422, 500, 503)
}


def create_app(
    runtime: Runtime,
    lifespan_hooks: tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]
    | None = None,
) -> Front:
    """The REST app: FastAPI behind its front.
    `lifespan_hooks`: (start, stop) run around the runtime's own start and stop (the gRPC
    face uses them to live and die with the REST server)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            if lifespan_hooks:
                await lifespan_hooks[0]()
            yield
        finally:
            try:
                if lifespan_hooks:
                    await lifespan_hooks[1]()
            finally:
                await runtime.stop()  # the prediction log is flushed whatever happened above

    app = FastAPI(
        title="skewless prediction service",
        version="1",
        description=f"Predictions from the `{runtime.schema.name}` feature service and the "
        f"`{runtime.config.name}` champion model.",
        lifespan=lifespan,
    )
    wire = runtime.wire
    metrics = runtime.metrics

    @app.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError) -> Response:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _error(invalid_input(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return await http_exception_handler(request, exc)  # 404, 405: FastAPI's own

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> Response:
        return _error(internal())

    # The prediction endpoints are answered by the front, never by these routes: they are here
    # so that the OpenAPI schema documents the bodies, answers and errors the front gives.
    @app.post("/v1/predict", response_model=PredictionOut, responses=ERRORS)
    async def predict(body: wire.single) -> Response:  # type: ignore[name-defined]
        raise NotImplementedError("answered by serving/front.py")

    @app.post("/v1/predict/batch", response_model=BatchPrediction, responses=ERRORS)
    async def predict_batch(body: wire.batch) -> Response:  # type: ignore[name-defined]
        raise NotImplementedError("answered by serving/front.py")

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", responses={503: {"model": ErrorBody}})
    async def readyz() -> JSONResponse:
        ready, why = await asyncio.to_thread(runtime.ready)  # a PING must not hold the loop
        champion = runtime.slots.champion
        body = {
            "ready": ready,
            "reason": why,
            "model_version": champion.version if champion else None,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format 0.0.4",
                "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
            }
        },
    )
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    return Front(app, runtime)


def _error(error: ServingError) -> Response:
    return Response(error_json(error), status_code=error.http_status, media_type=JSON)
