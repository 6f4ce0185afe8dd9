"""The REST face (FastAPI): thin over the predictor core; all errors through one handler."""

# No `from __future__ import annotations`: FastAPI reads the request models from the
# endpoint annotations at run time, and they are made per feature service in create_app.

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .admission import ADMITTED, ARRIVAL
from .core import Instance, Prediction
from .errors import InvalidInput, Overloaded, PayloadTooLarge, ServingError
from .runtime import Runtime
from .schemas import BatchPrediction, ErrorBody, invalid_input
from .schemas import Prediction as PredictionOut

log = logging.getLogger("skewless.serving")
JSON = "application/json"
CLOSE = (b"connection", b"close")
RETRY_AFTER = (b"retry-after", b"1")
PREDICT_PATHS = frozenset({"/v1/predict", "/v1/predict/batch"})
KNOWN_PATHS = frozenset(
    {"/v1/predict", "/v1/predict/batch", "/livez", "/readyz", "/metrics", "/openapi.json", "/docs"}
)
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (413, 422, 500, 503)
}


def create_app(
    runtime: Runtime,
    lifespan_hooks: tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]
    | None = None,
) -> "FastPredict":
    """The REST app: FastAPI, behind the fast route of its busiest endpoint (`FastPredict`).
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
    app.add_middleware(BodyLimit, limit=runtime.settings.max_body_bytes)
    wire = runtime.wire
    metrics = runtime.metrics

    @app.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = invalid_input(exc.errors())
        return JSONResponse(error.body(), status_code=error.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body that is not JSON at all: bad input, like any other
            error = InvalidInput(f"body: not valid JSON ({exc.detail})", "body")
            return JSONResponse(error.body(), status_code=error.http_status)
        return await http_exception_handler(request, exc)  # 404, 405: FastAPI's own

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the trace goes to the log, never to the client
        body = ErrorBody(code="internal", message="internal error; see the service log")
        return JSONResponse(body.model_dump(), status_code=500)

    app.add_middleware(Observe, metrics=metrics, draining=lambda: runtime.draining)

    # The endpoints return their JSON themselves: FastAPI would otherwise validate the
    # response model a second time on every request (response_model still documents it).
    @app.post("/v1/predict", response_model=PredictionOut, responses=ERRORS)
    async def predict(body: wire.single) -> Response:  # type: ignore[name-defined]
        (prediction,) = runtime.core.predict(
            [_instance(body)], endpoint="/v1/predict", return_features=body.return_features
        )
        return Response(_out(prediction).model_dump_json(), media_type=JSON)

    @app.post("/v1/predict/batch", response_model=BatchPrediction, responses=ERRORS)
    async def predict_batch(body: wire.batch) -> Response:  # type: ignore[name-defined]
        predictions = runtime.core.predict(
            [_instance(i) for i in body.instances],
            endpoint="/v1/predict/batch",
            return_features=body.return_features,
        )
        out = BatchPrediction(predictions=[_out(p) for p in predictions])
        return Response(out.model_dump_json(), media_type=JSON)

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

    return FastPredict(app, runtime)


def _instance(body: Any) -> Instance:
    return Instance(body.request_id, body.entities.__dict__, body.request.__dict__)


def _out(p: Prediction) -> PredictionOut:
    return PredictionOut.model_validate(vars(p))  # the same fields, validated once


class FastPredict:
    """The prediction endpoints' front door, in front of the FastAPI app.

    Admission: a prediction request whose body is in is counted in flight until answered;
    one that finds `max_in_flight` already there is answered 503 with Retry-After at once.
    The count is taken once the body is in, so a client slow to send its body holds no place,
    and under load it sees the queue: the requests parsed in one turn of the event loop all
    reach this point before any batch of them is scored (serving/coalescer.py). The wait from
    the headers being parsed to here is observed per request (stamped by serving/admission.py).

    Then `POST /v1/predict` in its common form (a JSON body of a declared length within the
    limit) is answered here, without FastAPI's routing, dependency solving and exception
    middlewares: they cost ~100-150 µs of CPU per prediction here, more than reading its
    features (issue 14, docs/benchmarks.md). The same pydantic model validates the body and the
    answer is the same JSON; a body that is not even JSON to pydantic, the batch endpoint, and
    every other request (another path, a chunked or oversized body, another content type) go
    to the FastAPI app, unchanged. The OpenAPI schema documents the FastAPI route, which
    answers the same."""

    def __init__(self, app: FastAPI, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.paths = PREDICT_PATHS
        self.limit = runtime.settings.max_body_bytes
        self.max_in_flight = runtime.settings.max_in_flight
        self.in_flight = 0
        error = Overloaded(
            f"the service is at capacity ({self.max_in_flight} requests in flight); retry later"
        )
        self._overloaded = json.dumps(error.body()).encode()
        self.single = runtime.wire.single
        self.metrics = runtime.metrics
        self.latency = runtime.metrics.latency.labels("/v1/predict", "total")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admitted = bool(scope.get(ADMITTED))  # counted in flight by the protocol already
        try:
            path = scope.get("path", "")
            if not (
                scope["type"] == "http"
                and path in PREDICT_PATHS
                and scope["method"] == "POST"
                and self._plain_json(scope)
            ):
                await self.app(scope, receive, send)
                return
            raw = await _read_body(receive)
            if raw is None:  # the client went away before its body was in: nobody to answer
                return
            if not admitted:  # not through the protocol (a test client, a pipelined request)
                if self.in_flight >= self.max_in_flight:
                    await self._shed(send, path)
                    return
                self.in_flight += 1
                admitted = True
            arrived = scope.get(ARRIVAL)
            if path == "/v1/predict" and await self._fast(raw, send, arrived):
                return
            if arrived is not None:  # the FastAPI app's handler starts now
                wait = time.perf_counter() - arrived
                self.metrics.child(self.metrics.queue_wait, path).observe(wait)
            await self.app(scope, _replay(raw), send)
        finally:
            if admitted:
                self.in_flight -= 1

    def admit(self, path: str, closing: bool = False) -> tuple[bytes, bool] | None:
        """For the protocol (serving/admission.py), once a prediction request's body is in:
        counted in flight (the app uncounts it when answered) and None, or, if the service is
        full, the whole 503 answer and whether to close after it."""
        if self.in_flight < self.max_in_flight:
            self.in_flight += 1
            return None
        body = self._shed_body(path)
        close = closing or self.runtime.draining
        headers = self._headers(body, RETRY_AFTER)
        if close and CLOSE not in headers:
            headers.append(CLOSE)
        head = b"HTTP/1.1 503 Service Unavailable\r\n" + b"".join(
            b"%s: %s\r\n" % header for header in headers
        )
        return head + b"\r\n" + body, close

    def _plain_json(self, scope: Scope) -> bool:
        """A JSON body (as FastAPI decides) of a declared length within the limit."""
        length = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
        return (
            length is not None
            and length.isdigit()
            and int(length) <= self.limit
            and (content_type is None or _is_json(content_type))
        )

    async def _fast(self, raw: bytes, send: Send, arrived: float | None) -> bool:
        """Answer here; False (nothing sent) leaves the request to the FastAPI app. The
        request's server time starts when its batch began to be scored; before that it was
        waiting in the queue (observed apart, from its arrival)."""
        entered = time.perf_counter()
        answer = await self._answer(raw)
        if answer is None:
            return False
        status, body, started = answer
        started = started or entered
        if arrived is not None:
            self.metrics.child(self.metrics.queue_wait, "/v1/predict").observe(started - arrived)
        await self._respond(send, status, body)
        self.latency.observe(time.perf_counter() - started)
        self.metrics.child(self.metrics.requests, "/v1/predict", str(status)).inc()
        return True

    async def _shed(self, send: Send, endpoint: str) -> None:
        await self._respond(send, 503, self._shed_body(endpoint), RETRY_AFTER)

    def _shed_body(self, endpoint: str) -> bytes:
        self.metrics.child(self.metrics.shed, endpoint).inc()
        self.metrics.child(self.metrics.requests, endpoint, "503").inc()
        return self._overloaded

    async def _respond(
        self, send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]
    ) -> None:
        """A JSON answer."""
        headers = self._headers(body, *extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _headers(self, body: bytes, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        """A JSON answer's headers; while draining they say Connection: close (as `Observe`
        does)."""
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            *extra,
        ]
        if self.runtime.draining:
            headers.append(CLOSE)
        return headers

    async def _answer(self, raw: bytes) -> tuple[int, bytes, float | None] | None:
        """(status, body, when its batch began) or None: not JSON, FastAPI answers."""
        try:
            body: Any = self.single.model_validate_json(raw)
            prediction, started = await self.runtime.coalescer.one(
                _instance(body), endpoint="/v1/predict", return_features=body.return_features
            )
            return 200, _out(prediction).model_dump_json().encode(), started
        except ValidationError as exc:
            errors = exc.errors()
            if errors and errors[0]["type"] == "json_invalid":
                return None  # FastAPI's own JSON parsing says what is wrong, as it always did
            error: ServingError = invalid_input(errors)
        except ServingError as exc:
            error = exc
        except Exception:
            log.exception("unexpected error")  # the trace goes to the log, never to the client
            body = ErrorBody(code="internal", message="internal error; see the service log")
            return 500, body.model_dump_json().encode(), None
        return error.http_status, json.dumps(error.body()).encode(), None


def _replay(raw: bytes) -> Receive:
    """The body already read, handed to the FastAPI app as its `receive`."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return receive


def _is_json(content_type: bytes) -> bool:
    """As FastAPI decides whether to parse a body as JSON: `application/json` or `*+json`."""
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or (
        kind.startswith(b"application/") and kind.endswith(b"+json")
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client disconnects first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class Observe:
    """Requests by status, and the server-side total latency of the prediction endpoints.
    Plain ASGI: Starlette's BaseHTTPMiddleware costs a task and a stream per request.

    While the service drains, every response says `Connection: close`: a client then opens a
    new connection for its next request (refused once the service stops listening) instead of
    sending it on a kept-alive one that the shutdown closes unanswered."""

    def __init__(self, app: ASGIApp, metrics: Any, draining: Callable[[], bool]) -> None:
        self.app = app
        self.metrics = metrics
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.draining():
                    message = {**message, "headers": [*message["headers"], CLOSE]}
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"  # bounded labels
            if path.startswith("/v1/"):
                self.metrics.child(self.metrics.latency, path, "total").observe(
                    time.perf_counter() - started
                )
            self.metrics.child(self.metrics.requests, path, str(status)).inc()


class BodyLimit:
    """Refuse a body over `limit` bytes with 413, whether or not it declares its length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_json(send, PayloadTooLarge(self._message(), "body"))
            return
        if declared is not None:  # a declared length within the limit: h11/httptools hold to it
            await self.app(scope, receive, send)
            return
        # No length declared (chunked): read up to the limit here, then replay to the app.
        # Raising inside `receive` would reach FastAPI's body parser, which answers 400.
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await _send_json(send, PayloadTooLarge(self._message(), "body"))
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"request body is larger than {self.limit} bytes"


async def _send_json(send: Send, error: ServingError) -> None:
    response = JSONResponse(error.body(), status_code=error.http_status)
    await send(
        {"type": "http.response.start", "status": error.http_status,
         "headers": response.raw_headers}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": response.body})
