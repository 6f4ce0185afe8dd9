"""The stream processor's direct writer stores, byte for byte, the hashes Feast's own
`write_to_online_store` stores: the same rows of every view it writes (the batch tables' rows
of one day, missing values included), written once by each into a real Redis, compared
field by field. Then Feast's reader reads the direct writer's rows as the values written."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from skewless.online.redis_writer import row_writer

from .test_stream_parity import VIEWS, World
from .test_stream_parity import world as world  # noqa: F401 -- the fixture

pytestmark = pytest.mark.integration

DAY = (pd.Timestamp("2013-12-01", tz="UTC"), pd.Timestamp("2013-12-02", tz="UTC"))


def _hashes(made: World) -> dict[bytes, dict[bytes, bytes]]:
    """Every hash of the world's project in the online store (Feast's key: entity + project)."""
    client = made.log.client
    suffix = made.store.config.project.encode()
    return {
        key: client.hgetall(key)  # type: ignore[misc]
        for key in client.scan_iter(count=1000)
        if key.endswith(suffix) and client.type(key) == b"hash"
    }


def _rows(made: World, view: str) -> pd.DataFrame:
    table = pd.read_parquet(made.settings.data_dir / f"{view}.parquet")
    table = table[table["event_timestamp"].between(*DAY, inclusive="left")]
    latest = table.sort_values("event_timestamp").groupby(list(VIEWS[view])).tail(1)
    return latest.reset_index(drop=True)


def test_the_direct_writer_stores_what_feast_stores(world: World) -> None:  # noqa: F811
    rows = {view: _rows(world, view) for view in VIEWS}
    assert rows["weather_hourly"].isna().any().any()  # missing values are part of the case
    for view, table in rows.items():
        world.store.write_to_online_store(view, table)
    feasts = _hashes(world)
    entities = {  # views keyed alike (origin) share a hash, each with its own fields
        tuple(zip(VIEWS[view], key, strict=True))
        for view, table in rows.items()
        for key in table[list(VIEWS[view])].itertuples(index=False)
    }
    assert len(feasts) == len(entities)
    for key in feasts:
        world.log.client.delete(key)

    for view, table in rows.items():
        writer = row_writer(world.store, view)
        assert writer is not None
        records: list[dict[str, Any]] = table.to_dict("records")
        writer.write(records, [r["event_timestamp"] for r in records])
    ours = _hashes(world)
    assert ours.keys() == feasts.keys()
    differing = [key for key in feasts if ours[key] != feasts[key]]
    assert differing == [], (len(differing), differing[:2])

    # And Feast reads them back as the values written (a missing value as None).
    weather = rows["weather_hourly"]
    features = [c for c in weather.columns if c.startswith("weather_")]
    read = world.store.get_online_features(
        features=[f"weather_hourly:{f}" for f in features],
        entity_rows=[{"origin": o} for o in weather["origin"]],
    ).to_df()
    for feature in features:
        expected = weather[feature].tolist()
        got = read[feature].tolist()
        assert [None if e != e else e for e in expected] == [
            None if g is None or g != g else g for g in got
        ], feature
