"""Stream and batch are equal: the real events of late November and early December published
into the log and run through the stream processor into a fresh Redis online store, stopped at
random instants; at each, the online features of entities active around it (origins, carriers,
routes, weather) equal the batch tables' point-in-time values for that instant, value for
value. Then a processor killed mid-stream and restarted, and two processors sharing the log,
end with the same tiles as one uninterrupted run. Real Redis, real Feast, real data."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from feature_repo.tables import flights
from feature_repo.tables.events import Departure, entry_fields, event_fields, replay_entries
from feature_repo.tables.raw import read_raw
from feature_repo.tables.tiles import TILED, Tiles, tile_index
from skewless.command_support import command_program
from skewless.features import store as feature_store
from skewless.offline.stream_parts import has_parts, parts_folder
from skewless.settings import Settings
from streaming.log import EventLog, redis_client
from streaming.metrics import StreamMetrics
from streaming.processor import StreamProcessor
from streaming.reader import EventReader
from streaming.tile_store import TileStore
from tests.support.repos import settings_for

from .test_namespace_switch import _repo_copy

pytestmark = pytest.mark.integration

REPLAY_FROM = pd.Timestamp("2013-11-24", tz="UTC")  # a week of tiles before the instants
INSTANTS_FROM, INSTANTS_UNTIL = (
    pd.Timestamp("2013-12-01", tz="UTC"),
    pd.Timestamp("2013-12-04", tz="UTC"),
)
INSTANTS = 200
ENTITIES = 10
VIEWS = {**{t: a.keys for t, a in TILED.items()}, "weather_hourly": ("origin",)}


class World:
    def __init__(self, settings: Settings, entries: pd.DataFrame) -> None:
        self.settings, self.entries = settings, entries
        self.store: FeatureStore = feature_store.open_store(settings)
        self.project = feature_store.yaml_project(settings)  # as `skewless stream run` names it
        self.log = EventLog(redis_client(settings.event_log), self.project)
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
        update={"state_dir": tmp_path / "state", "event_log": redis_connection}
    )
    feature_store.apply(settings)
    raw = read_raw()
    around = (REPLAY_FROM - pd.Timedelta(days=2), INSTANTS_UNTIL + pd.Timedelta(days=2))
    entries = replay_entries(
        raw.flights[raw.flights["time_hour"].between(*around)],
        raw.weather[raw.weather["time_hour"].between(*around)],
    )
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


Served = list[tuple[str, dict[str, str], pd.Timestamp, dict[str, object]]]


def _differences(
    world: World,
    batch: dict[str, pd.DataFrame],
    at: pd.Timestamp,
    active: pd.DataFrame,
    served_rows: Served,
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
            served_rows.append((view, row, at, {f: online[f][i] for f in features}))
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
    served: Served = []
    for at in instants:
        world.publish(published_until, at)
        published_until = at
        processor.tick(at)
        # Entities that departed in the last 3 hours: seen by the stream since it started (a
        # key it never saw has no row online; the batch has zeros for it from earlier months).
        near = departures[
            departures["event_time"].between(at - pd.Timedelta(hours=3), at, inclusive="left")
        ]
        n, found = _differences(world, batch, at, near, served)
        compared += n
        differences += found
    assert compared >= INSTANTS * 20
    assert differences == [], differences[:10]
    assert processor.progress.dead_lettered == 0

    # Offline, training reads what was served: the processor's parts, point in time, through
    # the project's ASOF store, at the same instants for the same entities.
    for view in VIEWS:
        assert has_parts(world.settings.data_dir / f"{view}.parquet"), view
    offline_differences = _served_differences(world, served)
    assert offline_differences == [], offline_differences[:10]


def _served_differences(world: World, served: Served) -> list[str]:
    found = []
    for view in VIEWS:
        mine = [s for s in served if s[0] == view]
        features = list(mine[0][3])
        entity_rows = pd.DataFrame([{**row, "event_timestamp": at} for _, row, at, _ in mine])
        offline = world.store.get_historical_features(
            entity_df=entity_rows, features=[f"{view}:{f}" for f in features]
        ).to_df()
        assert len(offline) == len(mine)  # one row per entity row, in their order
        for (_, row, at, values), got in zip(mine, offline.to_dict("records"), strict=True):
            for feature in features:
                if not _same(values[feature], got[feature]):
                    found.append(
                        f"{at} {view} {row} {feature}: served {values[feature]!r}, "
                        f"offline {got[feature]!r}"
                    )
    return found


def _tiles_now(
    world: World, watermark: pd.Timestamp
) -> dict[str, dict[tuple[str, ...], dict[int, tuple[int, int, float]]]]:
    """The tiles in Redis up to the watermark's bucket, as far back as the longest window."""
    found = {}
    for table, aggregate in TILED.items():
        keys = world.tiles.keys(aggregate)
        last = int(tile_index(pd.DatetimeIndex([watermark]), aggregate.tile)[0])
        read = world.tiles.tiles(aggregate, keys, last - aggregate.steps_longest, last + 1)
        found[table] = {key: tiles.buckets for key, tiles in zip(keys, read, strict=True)}
    return found


def _tiles_expected(
    departures: pd.DataFrame,
) -> dict[str, dict[tuple[str, ...], dict[int, tuple[int, int, float]]]]:
    """One uninterrupted pass, in memory, with the same tile code."""
    expected: dict[str, dict[tuple[str, ...], dict[int, tuple[int, int, float]]]] = {}
    for table, aggregate in TILED.items():
        state: dict[tuple[str, ...], Tiles] = {}
        buckets = tile_index(departures["departed_at"], aggregate.tile)
        rows = departures[[*aggregate.keys, "late", "dep_delay"]].itertuples(index=False)
        for bucket, row in zip(buckets, rows, strict=True):
            key = tuple(str(v) for v in row[: len(aggregate.keys)])
            state.setdefault(key, Tiles()).add(int(bucket), int(row[-2]), float(row[-1]))
        expected[table] = {key: tiles.buckets for key, tiles in state.items()}
    return expected


def _recent(
    tiles: dict[str, dict[tuple[str, ...], dict[int, tuple[int, int, float]]]],
    watermark: pd.Timestamp,
) -> dict[str, dict[tuple[str, ...], dict[int, tuple[int, int, float]]]]:
    """The buckets every processor keeps: those the longest window still reaches."""
    kept = {}
    for table, aggregate in TILED.items():
        first = (
            int(tile_index(pd.DatetimeIndex([watermark]), aggregate.tile)[0])
            - aggregate.steps_longest
        )
        kept[table] = {
            key: {b: v for b, v in buckets.items() if b >= first}
            for key, buckets in tiles[table].items()
        }
        kept[table] = {k: v for k, v in kept[table].items() if v}
    return kept


def _run(world: World, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **world.settings.as_env()}
    return subprocess.Popen(
        [*command_program(), "stream", "run", "--metrics-port", "0", *args], env=env
    )


def test_a_killed_processor_and_two_processors_end_as_one_uninterrupted_run(world: World) -> None:
    middle, end = REPLAY_FROM + pd.Timedelta(days=2), REPLAY_FROM + pd.Timedelta(days=4)
    world.publish(REPLAY_FROM, middle)

    # Killed mid-stream (SIGKILL: no clean-up), once a day of events is in; then restarted.
    killed = _run(world, "--consumer", "p1", "--batch", "20")
    deadline = time.monotonic() + 120
    while (world.tiles.watermark() or REPLAY_FROM) < REPLAY_FROM + pd.Timedelta(days=1):
        assert killed.poll() is None and time.monotonic() < deadline, "no progress"
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    (group,) = world.log.groups()
    assert group.lag or group.pending, "it had finished: not killed mid-stream"
    assert _run(world, "--consumer", "p1", "--until-idle").wait(timeout=300) == 0

    # A processor that applied a batch and died before acknowledging it (the narrow window a
    # SIGKILL rarely hits): its restart is given the batch again. And a producer that
    # published half a day twice. Neither may count an event twice.
    world.publish(middle, end)
    world.publish(REPLAY_FROM + pd.Timedelta(days=1), REPLAY_FROM + pd.Timedelta(days=1.5))
    crashed = EventReader(world.log, "features", "p2")
    held = crashed.poll(count=200)
    applied = world.tiles.apply(d.event for d in held if isinstance(d.event, Departure))
    assert applied.events > 0  # applied, never acknowledged

    # Then two processors on one log, p2 restarted among them.
    both = [
        _run(world, "--consumer", name, "--until-idle", "--batch", "50") for name in ("p1", "p2")
    ]
    assert [p.wait(timeout=300) for p in both] == [0, 0]

    departures = world.entries[world.entries["event_time"] < end]
    assert world.log.length() > len(departures)  # the duplicates are in the log
    departures = departures[departures["kind"] == "departure"]
    expected_departures = flights.build_departures(read_raw().flights)
    inside = expected_departures["departed_at"].between(REPLAY_FROM, end, inclusive="left")
    expected_departures = expected_departures[inside]
    assert len(expected_departures) == len(departures)
    watermark = world.tiles.watermark()
    assert watermark == expected_departures["departed_at"].max()
    assert world.log.client.scard(world.tiles.seen) == len(departures)  # each applied once
    assert _recent(_tiles_now(world, watermark), watermark) == _recent(
        _tiles_expected(expected_departures), watermark
    )
    assert _offline_part_problems(world.settings, end) == []


def _offline_part_problems(settings: Settings, end: pd.Timestamp) -> list[str]:
    """The parts the killed, restarted and parallel processors wrote: each row what the batch
    table holds there (once the stream has seen a whole window: before, the batch counts
    departures the replay did not hold)."""
    problems = []
    for view, keys in VIEWS.items():
        table = settings.data_dir / f"{view}.parquet"
        parts = pd.concat(
            [pd.read_parquet(part) for part in sorted(parts_folder(table).glob("*.parquet"))]
        )
        batch = pd.read_parquet(table).set_index([*keys, "event_timestamp"]).sort_index()
        stamped = parts.set_index([*keys, "event_timestamp"]).sort_index()
        # A tiled boundary rewritten after a crash replaces its part (one name per boundary);
        # weather rows may be in two parts and are read once: compare each key and time once.
        stamped = stamped[~stamped.index.duplicated()]
        whole = REPLAY_FROM + (TILED[view].longest if view in TILED else pd.Timedelta(0))
        compared = stamped[stamped.index.get_level_values("event_timestamp") >= whole]
        expected = batch.loc[compared.index, compared.columns]
        if not expected.equals(compared):
            problems.append(f"{view}: parts differ from the batch table")
        if view == "origin_departures_recent" and len(compared) < 100:
            problems.append(f"{view}: only {len(compared)} rows compared")
    return problems


def _origin_online(world: World, origin: str) -> dict[str, object]:
    features = ["origin_1h_departures", "origin_1h_mean_delay", "origin_3h_departures"]
    found = world.store.get_online_features(
        features=[f"origin_departures_recent:{f}" for f in features],
        entity_rows=[{"origin": origin}],
    ).to_dict()
    return {f: found[f][0] for f in features}


def _late(flight: str, at: pd.Timestamp, delay: int) -> dict[str, str]:
    departed = at.to_pydatetime()
    return event_fields(
        Departure(
            flight_id=flight,
            origin="EWR",
            dest="ORD",
            carrier="UA",
            tailnum=None,
            scheduled_departure=departed - pd.Timedelta(minutes=delay),
            departed_at=departed,
            dep_delay=float(delay),
        )
    )


def test_late_departures_are_folded_in_within_the_lateness_and_kept_offline_beyond(
    world: World,
) -> None:
    end = REPLAY_FROM + pd.Timedelta(days=1)
    world.publish(REPLAY_FROM, end)
    processor = world.processor("p1")
    processor.tick(end)
    before = _origin_online(world, "EWR")
    assert before["origin_3h_departures"], "a quiet evening: nothing to compare"
    part = parts_folder(world.settings.data_dir / "origin_departures_recent.parquet") / (
        f"b{int(tile_index(pd.DatetimeIndex([end]), TILED['origin_departures_recent'].tile)[0])}"
        ".parquet"
    )
    assert part.exists()

    # 20 minutes late (the allowed lateness is an hour): the rows online now include it, and
    # so does the offline part of the boundary they were written for.
    world.log.publish([_late("late-1", end - pd.Timedelta(minutes=20), delay=90)])
    processor.run_until_idle()
    after = _origin_online(world, "EWR")
    assert after["origin_1h_departures"] == before["origin_1h_departures"] + 1
    assert after["origin_3h_departures"] == before["origin_3h_departures"] + 1
    assert after["origin_1h_mean_delay"] != before["origin_1h_mean_delay"]
    offline = pd.read_parquet(part).set_index("origin")
    assert offline.loc["EWR", "origin_1h_departures"] == after["origin_1h_departures"]
    assert processor.progress.folded_in >= 1

    # Five hours late: nothing online changes; counted once (a producer's retry included)
    # and kept offline, raw.
    too_late = _late("late-2", end - pd.Timedelta(hours=5), delay=45)
    world.log.publish([too_late, too_late])
    processor.run_until_idle()
    assert _origin_online(world, "EWR") == after
    assert world.tiles.too_late() == 1
    kept = pd.concat(
        pd.read_parquet(p)
        for p in parts_folder(world.settings.data_dir / "too_late_departures.parquet").glob(
            "*.parquet"
        )
    )
    assert set(kept["event_id"]) == {"departure:late-2"}


def test_the_processor_serves_its_metrics_and_each_views_freshness(world: World) -> None:
    end = REPLAY_FROM + pd.Timedelta(hours=12)
    world.publish(REPLAY_FROM, end)
    world.log.publish([{"kind": "departure", "flight_id": "x"}, {"kind": "nonsense"}])
    clock_at = end.to_pydatetime()
    metrics = StreamMetrics(lambda: clock_at, world.log, "features")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.serve(port)
    processor = StreamProcessor(world.store, world.log, world.tiles, metrics=metrics)
    processor.tick(end)

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    series = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    published = world.entries[world.entries["event_time"] < end]["kind"].value_counts()
    for kind, n in published.items():
        assert series[f'skewless_stream_events_total{{kind="{kind}"}}'] == n
    assert series["skewless_stream_dead_letters_total"] == 2
    assert series["skewless_stream_lag_entries"] == 0
    assert series["skewless_stream_pending_entries"] == 0
    for view in VIEWS:
        assert series[f'skewless_stream_rows_written_total{{view="{view}"}}'] > 0
        fresh = series[f'skewless_feature_freshness_seconds{{view="{view}"}}']
        # The clock stands at `end`: a tiled view's newest row is its last boundary (at most
        # a tile ago), a weather row the last hour known.
        assert 0 <= fresh <= 3600, (view, fresh)
    assert series["skewless_stream_event_to_online_seconds_count"] == sum(published)
