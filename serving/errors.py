"""The service's errors: one small hierarchy, each class carrying its HTTP and gRPC status.

    ServingError
    ├── InvalidInput        400 / INVALID_ARGUMENT   a field at fault, named in `field`
    ├── PayloadTooLarge     413 / INVALID_ARGUMENT   body or batch beyond the limits
    ├── NotReady            503 / UNAVAILABLE        no model loaded yet, or shutting down
    ├── OnlineStoreUnavailable 503 / UNAVAILABLE     the online store failed or timed out
    ├── Overloaded          503 / RESOURCE_EXHAUSTED  too many requests in flight: shed
    └── ModelFailed         500 / INTERNAL           the model raised while scoring

Their JSON body is built here alone (`error_json`), for every answer the REST face gives: its
front (serving/front.py) and the FastAPI app's handlers (serving/rest.py). The gRPC face maps
them in one interceptor. Anything else becomes `internal()`, with no internals in the message;
the trace goes to the service log.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import grpc

log = logging.getLogger("skewless.serving")


@dataclass
class ServingError(Exception):
    message: str
    field: str | None = None

    code = "internal"
    http_status = 500
    grpc_status = grpc.StatusCode.INTERNAL

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidInput(ServingError):
    code = "invalid_input"
    http_status = 422
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class PayloadTooLarge(ServingError):
    code = "payload_too_large"
    http_status = 413
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class NotReady(ServingError):
    code = "not_ready"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


class OnlineStoreUnavailable(ServingError):
    code = "online_store_unavailable"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


class Overloaded(ServingError):
    code = "overloaded"
    http_status = 503
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


class ModelFailed(ServingError):
    code = "model_failed"


def internal() -> ServingError:
    """An unexpected failure's answer; called inside the `except` that caught it, so that the
    trace goes to the service log (and never to the client)."""
    log.exception("unexpected error")
    return ServingError("internal error; see the service log")


def error_json(error: ServingError) -> bytes:
    """The one JSON body of an error answer: {code, message, field}."""
    return json.dumps(error.body()).encode()
