"""The direct Redis reader returns exactly what the Feast SDK path returns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis

from skewless import feature_store as fs
from skewless.features import read_online
from skewless.redis_features import RedisFeatureReader

from .serving_setup import ServingWorld


def _records(world: ServingWorld, n: int) -> list[dict[str, Any]]:
    rows = world.requests(n)[list(world.schema.inputs)]
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
    store = fs.open_store(serving_world.settings)
    schema = serving_world.schema
    records = _records(serving_world, 400)
    now = serving_world.config.as_of
    sdk = read_online(store, schema, records, now)
    direct = RedisFeatureReader(store, schema, redis.Redis(port=serving_world.redis.port)).read(
        records, now
    )
    assert list(direct.values) == list(schema.features)
    for name in schema.features:
        for i, (a, b) in enumerate(zip(sdk.values[name], direct.values[name], strict=True)):
            assert (a, type(a)) == (b, type(b)), f"{name} row {i}: sdk {a!r}, direct {b!r}"
    assert direct.missing == sdk.missing
    # It cannot pass on empty data: most rows have most features, some rows miss some.
    present = sum(v is not None for name in schema.features for v in direct.values[name])
    assert present > 0.8 * len(records) * len(schema.features)
    assert direct.missing[1] and direct.missing[2] and not all(direct.missing)
