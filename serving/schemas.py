"""The wire schema: request models built from the feature service, explicit responses.

The request models are made at start-up from the feature service (its join keys and request
fields, with their types), so the OpenAPI schema names every field a caller must send, and
REST and gRPC validate through the same models: they accept and refuse the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    ValidationError,
    create_model,
)

from skewless.features.service import ServiceSchema, ValueKind

from .core import Instance
from .core import Prediction as CorePrediction
from .errors import InvalidInput

FeatureValue = float | int | str | bool | None
# Years as written (in the time's own zone): within them every instant is after the Unix
# epoch and inside pandas' and Feast's ranges, whatever the offset. The schema states the
# same bound as a pattern, so a schema-valid request is never refused for its time.
FIRST_YEAR, LAST_YEAR = 1971, 2199
YEAR_PATTERN = r"^(197[1-9]|19[89][0-9]|2[01][0-9][0-9])-"


def _in_time_range(value: datetime) -> datetime:
    """Within range, and cut to whole seconds: Feast's Unix timestamps hold seconds (its SDK
    drops the fraction online), so every path sees the same instant."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be in the years {FIRST_YEAR}-{LAST_YEAR}")
    return value.replace(microsecond=0)


_FIELD_TYPES: dict[ValueKind, Any] = {
    "string": Annotated[str, Strict(), Field(max_length=256)],
    "float": Annotated[float, Strict(), Field(allow_inf_nan=False)],
    "int": Annotated[int, Strict()],
    "bool": Annotated[bool, Strict()],
    # ISO 8601 with a zone (RFC 3339); within the years that Feast's Unix timestamps and
    # local-time conversions handle.
    "timestamp": Annotated[
        AwareDatetime,
        AfterValidator(_in_time_range),
        Field(
            json_schema_extra={"pattern": YEAR_PATTERN},
            description=f"RFC 3339 date-time with a zone, years {FIRST_YEAR}-{LAST_YEAR}",
        ),
    ],
}


class Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prediction(BaseModel):
    request_id: str
    probability: float = Field(description="Probability of the positive class.")
    decision: bool = Field(description="probability >= threshold")
    threshold: float
    model_name: str
    model_version: str
    served_by: Literal["champion", "challenger"]
    missing_features: list[str] = Field(
        description="Features never written or older than their view's TTL; the model "
        "received them as missing."
    )
    features: dict[str, FeatureValue] | None = Field(
        default=None, description="The feature values used, when return_features is true."
    )
    definitions: str = Field(
        description="Fingerprint of the feature definitions the features were read with "
        "(the namespace's): with model_version, it changes in one step at a switch."
    )


class BatchPrediction(BaseModel):
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    code: str = Field(examples=["invalid_input"])
    message: str
    field: str | None = Field(default=None, examples=["request.distance"])


class WireModels:
    """The request models of one feature service."""

    def __init__(self, schema: ServiceSchema, example: dict[str, Any], max_batch_size: int) -> None:
        entities = create_model(  # type: ignore[call-overload]
            "Entities",
            __base__=Forbid,
            **{
                key: (_FIELD_TYPES[schema.kinds[key]] | None, Field(description="join key"))
                for key in schema.join_keys
            },
        )
        request = create_model(  # type: ignore[call-overload]
            "RequestFields",
            __base__=Forbid,
            **{name: (_FIELD_TYPES[schema.kinds[name]], ...) for name in schema.request_fields},
        )
        instance_fields: dict[str, Any] = {
            "request_id": (str | None, Field(default=None, max_length=128)),
            "entities": (entities, ...),
            "request": (request, ...),
        }
        self.instance: type[BaseModel] = create_model(
            "Instance", __base__=Forbid, **instance_fields
        )
        self.single: type[BaseModel] = create_model(
            "PredictRequest",
            __base__=_with_example(example),
            **instance_fields,
            return_features=(StrictBool, False),
        )
        instance_example = {k: v for k, v in example.items() if k != "return_features"}
        self.batch: type[BaseModel] = create_model(
            "PredictBatchRequest",
            __base__=_with_example({"instances": [instance_example], "return_features": False}),
            instances=(
                list[self.instance],  # type: ignore[name-defined]
                Field(min_length=1, max_length=max_batch_size),
            ),
            return_features=(StrictBool, False),
        )

    def parse_instance(self, raw: dict[str, Any], where: str) -> BaseModel:
        """Validate one instance given as plain values (the gRPC face); `where` names it in
        the message (`instances.3`)."""
        try:
            return self.instance.model_validate(raw)
        except ValidationError as exc:
            raise invalid_input(exc.errors(), where) from None


def invalid_input(errors: Any, where: str = "") -> InvalidInput:
    """The first validation error, with its field as a dotted path (`request.distance`)."""
    first = errors[0]
    parts = [where] if where else []
    parts += [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(parts) or "body"
    return InvalidInput(f"{field}: {first.get('msg', 'invalid input')}", field)


def _with_example(example: dict[str, Any]) -> type[BaseModel]:
    config = ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})
    return type("ExampleBase", (BaseModel,), {"model_config": config})


def rest_body(row: Mapping[str, Any], schema: ServiceSchema, **extra: Any) -> dict[str, Any]:
    """The REST body for a row holding the service's join keys and request fields (an entity
    row of the offline store, say): what a client sends."""
    return {
        "entities": {k: json_value(row[k]) for k in schema.join_keys},
        "request": {k: json_value(row[k]) for k in schema.request_fields},
        **extra,
    }


def json_value(value: Any) -> Any:
    """A value read from a frame as plain JSON: timestamps as ISO 8601, every null as None."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def instance_of(body: Any) -> Instance:
    """A validated request body (one instance) as the core's Instance."""
    return Instance(body.request_id, body.entities.__dict__, body.request.__dict__)


def answer_of(prediction: CorePrediction) -> Prediction:
    return Prediction.model_validate(vars(prediction))  # the same fields, validated once
