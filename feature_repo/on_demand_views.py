"""Request-time transformations, in Feast's python mode (a fraction of pandas mode's cost on
the online path, see ARCHITECTURE.md). The same function runs offline for training and
online for serving, so the two cannot drift apart.
"""

import inspect
from typing import Any

from feast import Field, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.transformation.python_transformation import PythonTransformation
from feast.types import Float64, Int64, UnixTimestamp

flight_request = RequestSource(
    name="flight_request",
    schema=[
        Field(
            name="scheduled_departure",
            dtype=UnixTimestamp,
            description="Scheduled departure (UTC).",
        ),
        Field(
            name="requested_at",
            dtype=UnixTimestamp,
            description="When the prediction is asked for (UTC); the entity timestamp offline.",
        ),
        Field(name="distance", dtype=Float64, description="Route distance, miles."),
    ],
    description="Fields the caller sends with every prediction request.",
    owner="features@skewless.dev",
)


def flight_request_features(inputs: dict[str, Any]) -> dict[str, Any]:
    # Self-contained on purpose: Feast serializes this function into its registry with dill,
    # and the serving process runs it without importing this module.
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    local_tz = ZoneInfo("America/New_York")  # scheduled times are New York local times

    def utc(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=UTC)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    out: dict[str, list[Any]] = {
        "minutes_to_departure": [],
        "departure_hour": [],
        "departure_minute_of_day": [],
        "departure_weekday": [],
        "departure_month": [],
        "distance_miles": [],
    }
    for scheduled_raw, requested_raw, distance in zip(
        inputs["scheduled_departure"], inputs["requested_at"], inputs["distance"], strict=True
    ):
        scheduled, requested = utc(scheduled_raw), utc(requested_raw)
        local = scheduled.astimezone(local_tz) if scheduled is not None else None
        gap = (scheduled - requested).total_seconds() / 60.0 if local and requested else None
        out["minutes_to_departure"].append(gap)
        out["departure_hour"].append(local.hour if local else None)
        out["departure_minute_of_day"].append(local.hour * 60 + local.minute if local else None)
        out["departure_weekday"].append(local.weekday() if local else None)
        out["departure_month"].append(local.month if local else None)
        out["distance_miles"].append(float(distance) if distance is not None else None)
    return out


# Feast pickles the function with dill; as a `__main__` function it is pickled by value, so
# a process that never imported this module (the prediction service) can still run it.
flight_request_features.__module__ = "__main__"


# Output fields carry no `description`: Feast 0.67 compares fields with `Field.__eq__`, which
# includes the description, against the fields it infers (undescribed) at apply and again
# when a feature service projects the view, and refuses a described one. The view's
# description documents each output instead, so `feast on-demand-feature-views describe`
# and the UI still show them.
flight_request_features_view = OnDemandFeatureView(
    name="flight_request_features",
    sources=[flight_request],
    schema=[
        Field(name="minutes_to_departure", dtype=Float64),
        Field(name="departure_hour", dtype=Int64),
        Field(name="departure_minute_of_day", dtype=Int64),
        Field(name="departure_weekday", dtype=Int64),
        Field(name="departure_month", dtype=Int64),
        Field(name="distance_miles", dtype=Float64),
    ],
    feature_transformation=PythonTransformation(
        udf=flight_request_features,  # type: ignore[arg-type]  # Feast wants FunctionType
        udf_string=inspect.getsource(flight_request_features),
    ),
    mode="python",
    description=(
        "Calendar and lead-time features of the request itself. "
        "minutes_to_departure: scheduled departure minus request time, minutes; "
        "departure_hour: scheduled departure hour, local time (0-23); "
        "departure_minute_of_day: scheduled departure, minutes after local midnight; "
        "departure_weekday: local weekday of the scheduled departure (0 = Monday); "
        "departure_month: local month of the scheduled departure (1-12); "
        "distance_miles: route distance, miles."
    ),
    owner="features@skewless.dev",
    tags={"domain": "flights", "kind": "request-time"},
)
