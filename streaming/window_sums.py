"""The window sums a processor keeps between the boundaries it writes: slid, not summed anew.

At each boundary a tiled view's rows need every key's window sums: for the 7-day views, a week
of hourly tiles for each of ~220 routes. Summing them afresh read and parsed every tile at
every boundary, most of the processor's time at small batches. A processor keeps the sums of
the boundary it wrote last and slides them (`tiles.slide_window`): it reads only the tiles that
enter and leave the windows.

Sliding is exact only while no tile before that boundary has changed since the sums were
taken. Before reading, a writer moves the view's horizon to the boundary it reads for; the
tiles' script counts every event it applies behind the horizon (late ones) in the same step as
it applies it (tile_store.py). The sums are taken afresh when that count has moved, when another
processor wrote a boundary in between, after a jump longer than the longest window, and for a
key the processor has not kept sums of.
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_repo.tables.tiles import TiledAggregate, WindowSums, slide_window

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
        buckets: set[int] = set()
        if taken is not None and taken.boundary == last_written and taken.behind == behind:
            start = taken.boundary
            buckets.update(range(start, boundary))
            for s in steps:
                buckets.update(range(start - s, boundary - s))
            if len(buckets) < longest:  # else reading every tile is less work than sliding
                kept = taken.sums
        sums: dict[Key, list[WindowSums]] = {}
        sliding = [k for k in keys if k in kept]
        if sliding and taken is not None:
            start = taken.boundary
            read = self.tiles.tiles_in(aggregate, sliding, sorted(buckets))
            for key, tiles in zip(sliding, read, strict=True):
                sums[key] = [
                    slide_window(previous, tiles, start, boundary, s)
                    for previous, s in zip(kept[key], steps, strict=True)
                ]
        anew = [k for k in keys if k not in kept]
        if anew:
            every = self.tiles.tiles(aggregate, anew, boundary - longest, boundary)
            for key, tiles in zip(anew, every, strict=True):
                sums[key] = [tiles.window_at(boundary, s) for s in steps]
        self.tiles.forget(aggregate, keys, boundary - longest)
        self.slid += len(sliding)
        self.summed += len(anew)
        self._taken[aggregate.table] = _Taken(boundary, behind, sums)
        return keys, [sums[k] for k in keys]
