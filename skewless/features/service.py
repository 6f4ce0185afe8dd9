"""Reading a feature service, offline (point in time) and online, with one set of rules.

Feast 0.67 applies a feature view's TTL offline but not online, and returns a missing entity
online as null values marked PRESENT. `online_features` applies the TTL itself from the
returned feature timestamps, so that the online answer at time T equals the offline answer
for an entity row stamped T.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView, OnDemandFeatureView
from feast.errors import FeatureViewNotFoundException
from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

from skewless.errors import SkewlessError
from skewless.features.definitions import feature_definitions

ValueKind = Literal["string", "float", "int", "bool", "timestamp"]
_KINDS: dict[Any, ValueKind] = {
    String: "string",
    Float64: "float",
    Float32: "float",
    Int64: "int",
    Int32: "int",
    Bool: "bool",
    UnixTimestamp: "timestamp",
}

TIMESTAMP_SUFFIX = "__ts"  # what Feast's OnlineResponse appends for feature timestamps
ENTITY_TIMESTAMP = "event_timestamp"  # an entity row's moment: features are taken as of it


class RetrievalError(SkewlessError):
    """Feature retrieval broke a guarantee (a row dropped or duplicated, a key missing)."""


@dataclass(frozen=True)
class ServiceSchema:
    """What a feature service needs from a caller and what it returns, in its own order."""

    name: str
    join_keys: tuple[str, ...]
    request_fields: tuple[str, ...]
    features: tuple[str, ...]
    ttl: dict[str, timedelta]  # batch feature -> its view's TTL (timedelta(0): never expires)
    kinds: dict[str, ValueKind]  # join key or request field -> the type a caller must send
    # feature -> its definition's parts, hashed, as read now (skewless/features/definitions.py)
    definitions: dict[str, dict[str, str]] = field(default_factory=dict, compare=False)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.join_keys + self.request_fields


def service_schema(store: FeatureStore, service_name: str) -> ServiceSchema:
    service = store.get_feature_service(service_name)
    join_keys: list[str] = []
    request_fields: list[str] = []
    features: list[str] = []
    ttl: dict[str, timedelta] = {}
    kinds: dict[str, ValueKind] = {}
    for projection in service.feature_view_projections:
        names = [f.name for f in projection.features]
        features.extend(names)
        try:
            view: FeatureView | OnDemandFeatureView = store.get_feature_view(projection.name)
        except FeatureViewNotFoundException:
            view = store.get_on_demand_feature_view(projection.name)
        if isinstance(view, FeatureView):
            for column in view.entity_columns:
                key = projection.join_key_map.get(column.name, column.name)
                if key not in join_keys:
                    join_keys.append(key)
                    kinds[key] = _KINDS.get(column.dtype, "string")
            ttl.update({name: view.ttl or timedelta(0) for name in names})
        else:
            for source in view.source_request_sources.values():
                for f in source.schema:
                    if f.name not in request_fields:
                        request_fields.append(f.name)
                        kinds[f.name] = _KINDS.get(f.dtype, "string")
    return ServiceSchema(
        service_name,
        tuple(join_keys),
        tuple(request_fields),
        tuple(features),
        ttl,
        kinds,
        feature_definitions(store, service_name),
    )


def historical_features(
    store: FeatureStore, features: str | list[str], entity_rows: pd.DataFrame
) -> pd.DataFrame:
    """Point-in-time correct features, one row per entity row, in the entity rows' order.

    `features`: a feature service's name, or feature references (`view:feature`; monitoring
    reads outcomes, which no service holds). `entity_rows` needs an `event_timestamp`
    column, the join keys and request fields; any other column (an id, the label) is carried
    through.
    """
    wanted = store.get_feature_service(features) if isinstance(features, str) else features
    rows = entity_rows.reset_index(drop=True)
    rows = rows.assign(_skewless_row=range(len(rows)))
    result = store.get_historical_features(entity_df=rows, features=wanted).to_df()
    if len(result) != len(rows) or result["_skewless_row"].duplicated().any():
        raise RetrievalError(
            f"historical retrieval returned {len(result)} rows for {len(rows)} entity rows"
        )
    result = result.sort_values("_skewless_row").drop(columns="_skewless_row")
    return result.reset_index(drop=True)


@dataclass(frozen=True)
class OnlineRead:
    values: dict[str, list[Any]]  # feature -> a value per row; None where missing or stale
    missing: list[tuple[str, ...]]  # per row: batch features never written or past their TTL


def read_online(
    store: FeatureStore,
    schema: ServiceSchema,
    rows: list[dict[str, Any]],
    now: datetime,
    service: FeatureService | None = None,
) -> OnlineRead:
    """Online features for `rows` (dicts of join keys and request fields) as of `now`.

    A batch feature whose row is older than its view's TTL, or that was never written, is
    null, as it is offline, and so is one keyed by a missing (null) join key.

    The online store keeps only the latest row per entity, so `now` must not be earlier than
    the store's last materialization: a row stamped after `now` is reported as null (unknown
    as of `now`), where offline would find an older row.
    """
    entity_rows = []
    for row in rows:
        # Feast cannot look up a null key; "" is no entity's key, so its views read as
        # missing, exactly as the offline join finds no row for a null key.
        entity = {key: "" if null_key(row.get(key)) else row[key] for key in schema.join_keys}
        entity.update({name: row.get(name) for name in schema.request_fields})
        entity_rows.append(entity)
    response = store.get_online_features(
        features=service or store.get_feature_service(schema.name), entity_rows=entity_rows
    ).to_dict(include_event_timestamps=True)
    values = {name: list(response[name]) for name in schema.features}
    stamps = {
        name: [float(s or 0) for s in response[name + TIMESTAMP_SUFFIX]] for name in schema.ttl
    }
    return apply_ttl(schema, values, stamps, now)


def apply_ttl(
    schema: ServiceSchema,
    values: dict[str, list[Any]],
    stamps: dict[str, list[float]],
    now: datetime,
) -> OnlineRead:
    """The online TTL rule: a batch feature never written (stamp 0), written after `now`, or
    older than its view's TTL is null, and is reported missing for its row."""
    n = len(next(iter(values.values()), []))
    missing: list[list[str]] = [[] for _ in range(n)]
    now_s = now.timestamp()
    for name, ttl in schema.ttl.items():
        limit = ttl.total_seconds()
        column = values[name]
        for i, written in enumerate(stamps[name]):
            if not (0 < written <= now_s and (limit == 0 or now_s - written <= limit)):
                column[i] = None
                missing[i].append(name)
    return OnlineRead(values, [tuple(m) for m in missing])


def online_features(
    store: FeatureStore, schema: ServiceSchema, entity_rows: pd.DataFrame, now: datetime
) -> pd.DataFrame:
    """`read_online` for a frame of entity rows: the rows with their features appended."""
    missing = [c for c in schema.inputs if c not in entity_rows.columns]
    if missing:
        raise RetrievalError(f"entity rows lack {missing} needed by {schema.name}")
    rows = entity_rows[list(schema.inputs)].astype("object")
    rows = rows.where(rows.notna(), None)
    read = read_online(store, schema, rows.to_dict(orient="records"), now)
    out = pd.DataFrame({name: read.values[name] for name in schema.features})
    return pd.concat([entity_rows.reset_index(drop=True), out], axis=1)


def null_key(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
