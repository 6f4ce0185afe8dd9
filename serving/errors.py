"""The service's errors: one small hierarchy, each class carrying its HTTP and gRPC status.

    ServingError
    ├── InvalidInput        400 / INVALID_ARGUMENT   a field at fault, named in `field`
    ├── PayloadTooLarge     413 / INVALID_ARGUMENT   body or batch beyond the limits
    ├── NotReady            503 / UNAVAILABLE        no model loaded yet, or shutting down
    ├── OnlineStoreUnavailable 503 / UNAVAILABLE     the online store failed or timed out
    ├── Overloaded          503 / RESOURCE_EXHAUSTED  too many requests in flight: shed
    └── ModelFailed         500 / INTERNAL           the model raised while scoring

The REST face maps them in one exception handler, the gRPC face in one interceptor; anything
else becomes `internal` with no internals in the message.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


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
