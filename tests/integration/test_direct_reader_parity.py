"""The direct readers (Redis, SQLite) return exactly what the Feast SDK path returns, value by
value, on real rows of the real feature service: null keys, unknown entities and
sub-second request times included."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import redis

from skewless.features import store as feature_store
from skewless.features.service import OnlineRead, ServiceSchema, read_online, service_schema
from skewless.models.configuration import load_model_config
from skewless.online.redis_readers import RedisFeatureReader
from skewless.online.sqlite_reader import SqliteFeatureReader
from skewless.settings import Settings

from .serving_setup import ServingWorld


def _records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    records = [
        {k: v.to_pydatetime() if hasattr(v, "to_pydatetime") else v for k, v in r.items()}
        for r in rows.to_dict(orient="records")
    ]
    records[0]["tailnum"] = None  # a null key
    records[1]["origin"] = "XXX"  # an entity the store never saw
    records[2]["dest"] = "ZZZ"  # half of a two-key entity unknown
    records[3]["requested_at"] += timedelta(milliseconds=500)  # the SDK keeps whole seconds
    return records


def test_direct_redis_reader_equals_get_online_features(serving_world: ServingWorld) -> None:
    store = feature_store.open_store(serving_world.settings)
    schema = serving_world.schema
    records = _records(serving_world.requests(400)[list(schema.inputs)])
    now = serving_world.config.as_of
    sdk = read_online(store, schema, records, now)
    direct = RedisFeatureReader(store, schema, redis.Redis(port=serving_world.redis.port)).read(
        records, now
    )
    _assert_equal(schema, records, sdk, direct)


def _assert_equal(
    schema: ServiceSchema, records: list[dict[str, Any]], sdk: OnlineRead, direct: OnlineRead
) -> None:
    assert list(direct.values) == list(schema.features)
    for name in schema.features:
        for i, (a, b) in enumerate(zip(sdk.values[name], direct.values[name], strict=True)):
            assert (a, type(a)) == (b, type(b)), f"{name} row {i}: sdk {a!r}, direct {b!r}"
    assert direct.missing == sdk.missing
    # It cannot pass on empty data: most rows have most features, some rows miss some.
    present = sum(v is not None for name in schema.features for v in direct.values[name])
    assert present > 0.8 * len(records) * len(schema.features)
    assert direct.missing[1] and direct.missing[2] and not all(direct.missing)


def test_direct_sqlite_reader_equals_get_online_features(sqlite_repo: Settings) -> None:
    store = feature_store.open_store(sqlite_repo)
    config = load_model_config(sqlite_repo.model_file)
    schema = service_schema(store, config.feature_service)
    rows = feature_store.recent_entity_rows(store, config, schema, 400)[list(schema.inputs)]
    records = _records(rows)
    sdk = read_online(store, schema, records, config.as_of)
    direct = SqliteFeatureReader(store, schema).read(records, config.as_of)
    _assert_equal(schema, records, sdk, direct)
    # A single row, as the service reads it, and a row read twice in one call.
    one = SqliteFeatureReader(store, schema).read([records[5], records[5]], config.as_of)
    assert [one.values[n][0] for n in schema.features] == [
        sdk.values[n][5] for n in schema.features
    ]
    assert one.missing[0] == one.missing[1] == sdk.missing[5]
