"""The window sums a processor keeps between the boundaries it writes: slid, not summed anew.

At each boundary a tiled view's rows need every key's window sums: for the 7-day views, a week
of hourly tiles for each of ~220 routes. Reading and parsing every tile at every boundary was
most of the processor's time at small batches. Now Redis sums the tiles of a range of buckets
(`TileStore.range_sums`: only three numbers per key and range come back), and a processor keeps
the sums of the boundary it wrote last and slides them (`tiles.slide_ranges`, `slide_window`):
only the tiles that enter and leave the windows are summed.

Sliding is exact only while no tile before that boundary has changed since the sums were
taken. Before reading, a writer moves the view's horizon to the boundary it reads for; the
tiles' script counts every event it applies behind the horizon (late ones) in the same step as
it applies it (tile_store.py). The sums are taken afresh when that count has moved, when another
processor wrote a boundary in between, after a jump longer than the longest window, and for a
key the processor has not kept sums of.
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_repo.tables.tiles import (
    TiledAggregate,
    WindowSums,
    slide_ranges,
    slide_window,
    window_range,
)

from .tile_store import TileStore

Key = tuple[str, ...]


@dataclass(frozen=True)
class _Taken:
    boundary: int
    behind: int  # the view's count of events applied behind the horizon, when read
    sums: dict[Key, list[WindowSums]]


class SlidingSums:
    def __init__(self, tiles: TileStore) -> None:
        self.tiles = tiles
        self._taken: dict[str, _Taken] = {}
        self.slid = self.summed = 0  # keys' sums slid or summed anew (the benchmark's split)
        # per view, the count of events behind its horizon when its sums were last read: the
        # rows written from them hold every one of those
        self.behind_read: dict[str, int] = {}

    def at(
        self, aggregate: TiledAggregate, boundary: int, last_written: int
    ) -> tuple[list[Key], list[list[WindowSums]]]:
        """Every key's window sums at `boundary`, the view's last written boundary (by anyone)
        being `last_written`. Call it holding the view's write lock (`TileStore.writing`)."""
        behind = self.tiles.take_window_sums(aggregate, boundary)
        keys = self.tiles.keys(aggregate)
        taken = self._taken.get(aggregate.table)
        steps = [aggregate.steps(w) for w in aggregate.windows]
        longest = aggregate.steps_longest
        kept: dict[Key, list[WindowSums]] = {}
        if (
            taken is not None
            and taken.boundary == last_written
            and taken.behind == behind
            and boundary - taken.boundary < longest  # else the gap's tiles outnumber a window's
        ):
            kept = taken.sums
        sums: dict[Key, list[WindowSums]] = {}
        sliding = [k for k in keys if k in kept]
        if sliding and taken is not None:
            moves = [slide_ranges(taken.boundary, boundary, s) for s in steps]
            ranges = [r for move in moves for r in move]  # per window: coming in, going out
            read = self.tiles.range_sums(aggregate, sliding, ranges)
            for key, in_out in zip(sliding, read, strict=True):
                sums[key] = [
                    slide_window(previous, in_out[2 * w], in_out[2 * w + 1])
                    for w, previous in enumerate(kept[key])
                ]
        anew = [k for k in keys if k not in kept]
        if anew:
            ranges = [window_range(boundary, s) for s in steps]
            for key, windows in zip(
                anew, self.tiles.range_sums(aggregate, anew, ranges), strict=True
            ):
                sums[key] = windows
        # No window reaches a bucket before the longest's first again (rows only move forward).
        self.tiles.forget(aggregate, keys, window_range(boundary, longest)[0])
        self.slid += len(sliding)
        self.summed += len(anew)
        self._taken[aggregate.table] = _Taken(boundary, behind, sums)
        self.behind_read[aggregate.table] = behind
        return keys, [sums[k] for k in keys]
