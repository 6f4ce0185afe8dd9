"""The REST face's front: the one ASGI layer in front of the FastAPI app.

Every HTTP request passes here once, and here alone it is
- held to the body limit (413, declared length or not),
- counted by endpoint and status, with the server-side latency of the prediction endpoints
  (counted once, whoever answers), and told `Connection: close` while the service drains (a
  client then opens a new connection for its next request instead of sending it on a
  kept-alive one that the shutdown closes unanswered);
- for the prediction endpoints, admitted or shed (503 with Retry-After at once) and answered:
  `POST /v1/predict` and `/v1/predict/batch` are validated by the same pydantic models that
  document them and scored by the core, without FastAPI's routing, dependency solving and
  exception middlewares (they cost ~100-150 µs of CPU per prediction here, more than reading
  its features: issue 14, docs/benchmarks.md).
Everything else (health, metrics, the OpenAPI schema, 404s and 405s) is the FastAPI app's.

Admission: a prediction request whose body is in is counted in flight until answered; one that
finds `max_in_flight` already there is refused at once. The count is taken once the body is
in, so a client slow to send its body holds no place; the protocol counts most requests
(serving/admission.py, through `admit`), this layer those that did not come through it (a
test client, a pipelined request). The wait from the headers being parsed to the start of the
request's batch is observed apart (`skewless_queue_wait_seconds`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .admission import ADMITTED, ARRIVAL
from .errors import InvalidInput, Overloaded, PayloadTooLarge, ServingError, error_json, internal
from .runtime import Runtime
from .schemas import BatchPrediction, answer_of, instance_of, invalid_input

CLOSE = (b"connection", b"close")
RETRY_AFTER = (b"retry-after", b"1")
SINGLE, BATCH = "/v1/predict", "/v1/predict/batch"
PREDICT_PATHS = frozenset({SINGLE, BATCH})
KNOWN_PATHS = frozenset({*PREDICT_PATHS, "/livez", "/readyz", "/metrics", "/openapi.json", "/docs"})

Answer = tuple[int, bytes, float | None]  # status, JSON body, when its batch began (or None)


class Front:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.paths = PREDICT_PATHS
        self.limit = runtime.settings.max_body_bytes
        self.max_in_flight = runtime.settings.max_in_flight
        self.in_flight = 0
        self.metrics = runtime.metrics
        self._overloaded = error_json(
            Overloaded(
                f"the service is at capacity ({self.max_in_flight} requests in flight); retry later"
            )
        )
        self._too_large = error_json(
            PayloadTooLarge(f"request body is larger than {self.limit} bytes", "body")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        label = path if path in KNOWN_PATHS else "other"  # bounded labels
        entered = time.perf_counter()
        exchange = _Exchange(send, lambda: self.runtime.draining)
        started: float | None = None
        admitted = bool(scope.get(ADMITTED))  # counted in flight by the protocol already
        raw = b""
        try:
            length, content_type = _length_and_type(scope)
            if length is not None and length > self.limit:
                await exchange.json(413, self._too_large)
                return
            prediction = path in PREDICT_PATHS and scope["method"] == "POST"
            if length is None or prediction:
                try:
                    whole = await self._read_body(receive)
                except _BodyTooLarge:
                    await exchange.json(413, self._too_large)
                    return
                if whole is None:  # the client went away before its body was in: not counted
                    exchange.status = None
                    return
                raw = whole
                receive = _replay(raw)
            if not prediction:
                await self.app(scope, receive, exchange.send)
                return
            if not admitted:
                if self.in_flight >= self.max_in_flight:
                    await exchange.json(503, self._shed_body(path), RETRY_AFTER)
                    return
                self.in_flight += 1
                admitted = True
            status, body, started = await self._answer(path, raw, content_type)
            arrived = scope.get(ARRIVAL)
            if arrived is not None:
                wait = (started or entered) - arrived
                self.metrics.child(self.metrics.queue_wait, path).observe(wait)
            await exchange.json(status, body)
        finally:
            if admitted:
                self.in_flight -= 1
            if exchange.status is not None:  # None: nobody was answered, nothing counted
                if label in PREDICT_PATHS:
                    since = started or entered
                    self.metrics.child(self.metrics.latency, label, "total").observe(
                        time.perf_counter() - since
                    )
                self.metrics.child(self.metrics.requests, label, str(exchange.status)).inc()

    def admit(self, path: str, closing: bool = False) -> tuple[bytes, bool] | None:
        """For the protocol (serving/admission.py), once a prediction request's body is in:
        counted in flight (uncounted here when answered) and None, or, if the service is
        full, the whole 503 answer and whether to close after it."""
        if self.in_flight < self.max_in_flight:
            self.in_flight += 1
            return None
        body = self._shed_body(path)
        self.metrics.child(self.metrics.requests, path, "503").inc()
        close = closing or self.runtime.draining
        headers = _headers(body, close, RETRY_AFTER)
        head = b"HTTP/1.1 503 Service Unavailable\r\n" + b"".join(
            b"%s: %s\r\n" % header for header in headers
        )
        return head + b"\r\n" + body, close

    def _shed_body(self, endpoint: str) -> bytes:
        self.metrics.child(self.metrics.shed, endpoint).inc()
        return self._overloaded

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body; None when the client disconnects first. A body that declared no
        length is held to the limit while it is read (`_BodyTooLarge`)."""
        chunks = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _answer(self, path: str, raw: bytes, content_type: bytes | None) -> Answer:
        """A prediction request's answer: (status, body, when its batch began)."""
        try:
            if not _is_json(content_type):
                raise InvalidInput("content-type: the body must be application/json", "body")
            if path == SINGLE:
                body: Any = self.runtime.wire.single.model_validate_json(raw)
                prediction, started = await self.runtime.coalescer.one(
                    instance_of(body), endpoint=SINGLE, return_features=body.return_features
                )
                return 200, answer_of(prediction).model_dump_json().encode(), started
            batch: Any = self.runtime.wire.batch.model_validate_json(raw)
            started = time.perf_counter()
            predictions = self.runtime.core.predict(
                [instance_of(i) for i in batch.instances],
                endpoint=BATCH,
                return_features=batch.return_features,
            )
            out = BatchPrediction(predictions=[answer_of(p) for p in predictions])
            return 200, out.model_dump_json().encode(), started
        except ValidationError as exc:
            error: ServingError = invalid_input(exc.errors())
        except ServingError as exc:
            error = exc
        except Exception:
            error = internal()  # the trace goes to the log, never to the client
        return error.http_status, error_json(error), None


class _Exchange:
    """The answer's side of one request: its status as sent, and `Connection: close` added
    while the service drains."""

    def __init__(self, send: Send, draining: Callable[[], bool]) -> None:
        self._send = send
        self._draining = draining
        self.status: int | None = 500  # unless an answer starts; None: nobody to answer

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self._draining():
                message = {**message, "headers": [*message["headers"], CLOSE]}
        await self._send(message)

    async def json(self, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
        self.status = status
        headers = _headers(body, self._draining(), *extra)
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


def _headers(body: bytes, close: bool, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers.extend(extra)
    if close:
        headers.append(CLOSE)
    return headers


def _length_and_type(scope: Scope) -> tuple[int | None, bytes | None]:
    """The declared body length (None when none is declared: chunked) and content type, in
    one pass over the headers. A length that is not a number is left to the server, which
    refuses it before the app."""
    length = content_type = None
    for key, value in scope["headers"]:
        if key == b"content-length":
            length = int(value) if value.isdigit() else None
        elif key == b"content-type":
            content_type = bytes(value)
    return length, content_type


def _is_json(content_type: bytes | None) -> bool:
    """As FastAPI decides whether to parse a body as JSON: `application/json` or `*+json`
    (no content type at all: JSON, as FastAPI assumes)."""
    if content_type is None:
        return True
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or (
        kind.startswith(b"application/") and kind.endswith(b"+json")
    )


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
