"""Reading a feature service, offline (point in time) and online, with one set of rules.

Feast 0.67 applies a feature view's TTL offline but not online, and returns a missing entity
online as null values marked PRESENT. `online_features` applies the TTL itself from the
returned feature timestamps, so that the online answer at time T equals the offline answer
for an entity row stamped T.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from feast import FeatureStore, FeatureView, OnDemandFeatureView
from feast.errors import FeatureViewNotFoundException

TIMESTAMP_SUFFIX = "__ts"  # what Feast's OnlineResponse appends for feature timestamps


class RetrievalError(RuntimeError):
    """Feature retrieval broke a guarantee (a row dropped or duplicated, a key missing)."""


@dataclass(frozen=True)
class ServiceSchema:
    """What a feature service needs from a caller and what it returns, in its own order."""

    name: str
    join_keys: tuple[str, ...]
    request_fields: tuple[str, ...]
    features: tuple[str, ...]
    ttl: dict[str, timedelta]  # batch feature -> its view's TTL (timedelta(0): never expires)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.join_keys + self.request_fields


def service_schema(store: FeatureStore, service_name: str) -> ServiceSchema:
    service = store.get_feature_service(service_name)
    join_keys: list[str] = []
    request_fields: list[str] = []
    features: list[str] = []
    ttl: dict[str, timedelta] = {}
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
            ttl.update({name: view.ttl or timedelta(0) for name in names})
        else:
            for source in view.source_request_sources.values():
                request_fields.extend(f.name for f in source.schema if f.name not in request_fields)
    return ServiceSchema(
        service_name, tuple(join_keys), tuple(request_fields), tuple(features), ttl
    )


def historical_features(
    store: FeatureStore, service_name: str, entity_rows: pd.DataFrame
) -> pd.DataFrame:
    """Point-in-time correct features, one row per entity row, in the entity rows' order.

    `entity_rows` needs an `event_timestamp` column, the service's join keys and request
    fields; any other column (an id, the label) is carried through.
    """
    service = store.get_feature_service(service_name)
    rows = entity_rows.reset_index(drop=True)
    rows = rows.assign(_skewless_row=range(len(rows)))
    result = store.get_historical_features(entity_df=rows, features=service).to_df()
    if len(result) != len(rows) or result["_skewless_row"].duplicated().any():
        raise RetrievalError(
            f"historical retrieval returned {len(result)} rows for {len(rows)} entity rows"
        )
    result = result.sort_values("_skewless_row").drop(columns="_skewless_row")
    return result.reset_index(drop=True)


def online_features(
    store: FeatureStore, schema: ServiceSchema, entity_rows: pd.DataFrame, now: datetime
) -> pd.DataFrame:
    """Online features for `entity_rows` (join keys and request fields) as of `now`.

    A batch feature whose row is older than its view's TTL, or that was never written, is
    null, as it is offline, and so is one keyed by a missing (null) join key.

    The online store keeps only the latest row per entity, so `now` must not be earlier than
    the store's last materialization: a row stamped after `now` is reported as null (unknown
    as of `now`), where offline would find an older row.
    """
    missing = [c for c in schema.inputs if c not in entity_rows.columns]
    if missing:
        raise RetrievalError(f"entity rows lack {missing} needed by {schema.name}")
    rows = entity_rows[list(schema.inputs)].astype("object")
    # Feast cannot look up a null key; "" is no entity's key, so its views read as missing,
    # exactly as the offline join finds no row for a null key.
    keys = list(schema.join_keys)
    rows[keys] = rows[keys].where(rows[keys].notna(), "")
    response = store.get_online_features(
        features=store.get_feature_service(schema.name),
        entity_rows=rows.to_dict(orient="records"),
    ).to_dict(include_event_timestamps=True)
    out = pd.DataFrame({name: response[name] for name in schema.features})
    now_s = now.timestamp()
    for name, ttl in schema.ttl.items():
        stamps = pd.Series(response[name + TIMESTAMP_SUFFIX], dtype="float64")
        # Never written (0), or written after `now` (see the docstring): unknown as of `now`.
        fresh = (stamps > 0) & (stamps <= now_s)
        if ttl > timedelta(0):
            fresh &= now_s - stamps <= ttl.total_seconds()
        out[name] = out[name].where(fresh.to_numpy(), None)
    return pd.concat([entity_rows.reset_index(drop=True), out], axis=1)
