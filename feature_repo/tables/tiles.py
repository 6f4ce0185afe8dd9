"""Windowed aggregates, defined once as tiles, computed by the batch build and by the stream
processor from the same code.

A tile is one key's departures in one time bucket (`tile` wide, aligned on the epoch): their
count, how many were late, and the sum of their delays (whole minutes, so every sum is exact in
float64 and no order of addition can change a bit). A window's value at a bucket boundary g is
the sum of the tiles in [g - window, g): departures strictly before g only, so a row stamped at
g never sees its own instant. `window_values` turns those sums into the features, for both
paths; the batch build sums tiles with a trailing cumulative sum (aggregates.py), the stream
processor keeps the tiles of the last window per key and sums them when a boundary passes.

The definitions (which keys, which tile, which windows) are one constant per aggregate, listed
in `TILED`; both paths read them, and so do the definition fingerprints (a changed window or
tile is a changed definition of that table's features, and of no other's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Window:
    prefix: str  # the features' prefix: {prefix}_departures, _late_rate, _mean_delay
    length: pd.Timedelta


@dataclass(frozen=True)
class TiledAggregate:
    table: str  # the feature table (and Feast source) it fills
    keys: tuple[str, ...]
    tile: pd.Timedelta  # the bucket width, and the snapshot interval of the table's rows
    windows: tuple[Window, ...]

    def __post_init__(self) -> None:
        for window in self.windows:
            if window.length % self.tile != pd.Timedelta(0):
                raise ValueError(
                    f"{self.table}: window {window.length} is not a multiple of the tile "
                    f"{self.tile}"
                )

    def steps(self, window: Window) -> int:
        return int(window.length // self.tile)

    @property
    def longest(self) -> pd.Timedelta:
        return max(w.length for w in self.windows)

    @property
    def steps_longest(self) -> int:
        """The tiles the longest window sums."""
        return int(self.longest // self.tile)

    def columns(self) -> list[str]:
        return [
            f"{w.prefix}_{name}"
            for w in self.windows
            for name in ("departures", "late_rate", "mean_delay")
        ]


# One constant per aggregate: a table's code hash reads only its own (tables/code_hash.py),
# so a changed window changes that table's definition and no other's.
ORIGIN_RECENT = TiledAggregate(
    "origin_departures_recent",
    ("origin",),
    pd.Timedelta(minutes=15),
    (Window("origin_1h", pd.Timedelta(hours=1)), Window("origin_3h", pd.Timedelta(hours=3))),
)
CARRIER_7D = TiledAggregate(
    "carrier_departures_7d",
    ("carrier",),
    pd.Timedelta(hours=1),
    (Window("carrier_7d", pd.Timedelta(days=7)),),
)
ROUTE_7D = TiledAggregate(
    "route_departures_7d",
    ("origin", "dest"),
    pd.Timedelta(hours=1),
    (Window("route_7d", pd.Timedelta(days=7)),),
)
TILED: dict[str, TiledAggregate] = {a.table: a for a in (ORIGIN_RECENT, CARRIER_7D, ROUTE_7D)}


def tile_index(times: pd.Series | pd.DatetimeIndex, tile: pd.Timedelta) -> np.ndarray:
    """The bucket of each time: whole tiles since the epoch (UTC)."""
    nanoseconds = pd.DatetimeIndex(times).tz_convert("UTC").asi8
    result: np.ndarray = nanoseconds // tile.value
    return result


def tile_of(moment: datetime, tile: pd.Timedelta) -> int:
    """One time's bucket, as `tile_index` computes it for many (integer arithmetic)."""
    seconds = int(moment.timestamp())  # event times are whole seconds (whole minutes here)
    if seconds != moment.timestamp():
        raise ValueError(f"{moment} is not a whole second")
    return (seconds * 1_000_000_000) // int(tile.value)


def tile_start(index: int, tile: pd.Timedelta) -> pd.Timestamp:
    return pd.Timestamp(index * tile.value, tz="UTC")


def window_values(
    counts: np.ndarray, lates: np.ndarray, delays: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A window's features from its summed tiles: departures, late rate and mean delay (both
    NaN when there were none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        late_rate = np.where(counts > 0, lates / counts, np.nan)
        mean_delay = np.where(counts > 0, delays / counts, np.nan)
    return counts.astype(np.int64), late_rate, mean_delay


WindowSums = tuple[int, int, float]  # departures, late ones, delay minutes


@dataclass
class Tiles:
    """One key's tiles in memory, bucket -> (count, late, delay sum): what the stream
    processor keeps per key (the last window's worth)."""

    buckets: dict[int, tuple[int, int, float]] = field(default_factory=dict)

    def add(self, bucket: int, late: int, delay: float) -> None:
        count, lates, delays = self.buckets.get(bucket, (0, 0, 0.0))
        self.buckets[bucket] = (count + 1, lates + late, delays + delay)

    def forget_before(self, bucket: int) -> None:
        for old in [b for b in self.buckets if b < bucket]:
            del self.buckets[old]

    def window_at(self, boundary: int, steps: int) -> WindowSums:
        """The window's sums at `boundary`: the departures before it (`window_range`)."""
        return self.sum_of(*window_range(boundary, steps))

    def sum_of(self, first: int, stop: int) -> WindowSums:
        """Sums over the buckets [first, stop)."""
        count, lates, delays = 0, 0, 0.0
        for bucket, (c, late, delay) in self.buckets.items():
            if first <= bucket < stop:
                count, lates, delays = count + c, lates + late, delays + delay
        return count, lates, delays


def window_range(boundary: int, steps: int) -> tuple[int, int]:
    """The buckets a window of `steps` tiles sums at `boundary`: [boundary - steps, boundary),
    the departures strictly before the boundary. Both paths' one definition of a window."""
    return boundary - steps, boundary


def slide_ranges(start: int, boundary: int, steps: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The buckets that come into a window and go out of it when it moves from the boundary
    `start` to a later `boundary`: `window_range(boundary)` sums what `window_range(start)`
    does, plus the first range, minus the second (for any start before the boundary)."""
    (old_first, old_stop), (new_first, new_stop) = (
        window_range(start, steps),
        window_range(boundary, steps),
    )
    return (old_stop, new_stop), (old_first, new_first)


def slide_window(previous: WindowSums, entering: WindowSums, leaving: WindowSums) -> WindowSums:
    """A window's sums after a slide: its sums before, plus the tiles that came in, minus those
    that went out (`slide_ranges`). Whole numbers (delays are whole minutes), so added and
    taken away exactly, in any order: bit for bit the sums taken afresh."""
    return (
        previous[0] + entering[0] - leaving[0],
        previous[1] + entering[1] - leaving[1],
        previous[2] + entering[2] - leaving[2],
    )


def feature_row(
    aggregate: TiledAggregate, tiles: Tiles, boundary: int
) -> Mapping[str, float | int]:
    """The features of one key at one bucket boundary, from its tiles: the batch table's row
    stamped `tile_start(boundary)`."""
    sums = [tiles.window_at(boundary, aggregate.steps(w)) for w in aggregate.windows]
    return window_rows(aggregate, [sums])[0]


def window_rows(
    aggregate: TiledAggregate, sums: list[list[WindowSums]]
) -> list[dict[str, float | int]]:
    """The features of several keys, each from its windows' sums (in `aggregate.windows`
    order), through `window_values` once per window."""
    rows: list[dict[str, float | int]] = [{} for _ in sums]
    for w, window in enumerate(aggregate.windows):
        counts = np.array([key_sums[w][0] for key_sums in sums], dtype=np.int64)
        lates = np.array([key_sums[w][1] for key_sums in sums], dtype=np.int64)
        delays = np.array([key_sums[w][2] for key_sums in sums], dtype=np.float64)
        departures, late_rate, mean_delay = window_values(counts, lates, delays)
        names = [f"{window.prefix}_{n}" for n in ("departures", "late_rate", "mean_delay")]
        for row, d, r, m in zip(
            rows, departures.tolist(), late_rate.tolist(), mean_delay.tolist(), strict=True
        ):
            row[names[0]], row[names[1]], row[names[2]] = d, r, m
    return rows
