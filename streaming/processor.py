"""The stream processor: events from the log, in a consumer group, into the online store.

Each step reads a batch of entries (malformed ones are dead-lettered by the reader), applies
the departures to the shared tiles exactly once (tile_store.py), writes the weather
observations as they come (the batch table's rows, stamped when each is known), acknowledges
the batch, then writes the tiled views' rows at the latest bucket boundary the stream has
passed (online, only the latest row of a key is read).

A row stamped at boundary g holds the departures strictly before g (tiles.py), so it is written
only once every event before g is in: the processor's clock is the latest event time it has
read, held back to the oldest entry any processor of the group still holds unacknowledged (the
log is in event-time order). Several processors share a group and the tiles; a view's rows are
written by one processor at a time and only ever for a later boundary (or, for the weather, a
later observation) than the last written (`TileStore.writing`), so rows move forward on any
online store.
Rows go to the online store through Feast's own `write_to_online_store`, in the views' schemas.

Outcomes (labels becoming known) are read and acknowledged: they are not features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from feast import FeatureStore

from feature_repo.tables.events import Departure, Weather, event_fields, parse_event
from feature_repo.tables.tiles import TILED, TiledAggregate, tile_index, tile_start, window_rows
from skewless.online.redis_writer import RedisRowWriter, row_writer

from .log import EventLog
from .metrics import StreamMetrics
from .offline_parts import OfflineParts
from .reader import Delivered, EventReader
from .tile_store import TileStore
from .window_sums import SlidingSums

WEATHER_VIEW = "weather_hourly"
TOO_LATE_TABLE = "too_late_departures"  # beside the feature tables: the raw events, as parts
BOUNDARY = "boundary"  # a tiled view's mark: the last boundary its rows were written for
FOLDED = "folded"  # and the count of events behind its horizon that its rows hold


@dataclass
class Progress:
    read: int = 0
    applied: int = 0  # departures new to the tiles
    dead_lettered: int = 0
    rows_written: int = 0
    too_late: int = 0  # departures later than the allowed lateness: offline only
    folded_in: int = 0  # times a view's latest rows were written again for late events
    clock: pd.Timestamp | None = None


class StreamProcessor:
    def __init__(
        self,
        store: FeatureStore,
        log: EventLog,
        tiles: TileStore,
        *,
        group: str = "features",
        consumer: str = "processor-1",
        say: Callable[[str], None] = lambda _: None,
        offline: bool = True,
        lateness_seconds: int = 3600,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.store, self.log, self.tiles = store, log, tiles
        self.reader = EventReader(log, group, consumer)
        self.group = group
        self.say = say
        self.progress = Progress()
        self.last_delivered: list[Delivered] = []  # the last step's events (measurements)
        self.written: dict[str, int] = {}  # table -> the last boundary this process wrote
        self.window_sums = SlidingSums(tiles)
        self._first_step = True
        # On one Redis server rows go straight into Feast's layout; elsewhere through Feast.
        self.writers: dict[str, RedisRowWriter | None] = {
            view: row_writer(store, view) for view in (*TILED, WEATHER_VIEW)
        }
        # Every row written online is also written offline, as a part beside the view's
        # batch table (skewless/offline/stream_parts.py): training reads what was served.
        self.parts: dict[str, OfflineParts] = (
            {view: OfflineParts.of(store, view) for view in self.writers} if offline else {}
        )
        self.lateness_seconds = lateness_seconds
        self.metrics = metrics
        # Departures too late to change the live features: kept beside the tables, raw.
        self.too_late_parts = OfflineParts.beside(self.parts, TOO_LATE_TABLE) if offline else None

    def step(self, *, count: int = 1000, block_ms: int = 200) -> int:
        """One batch: read, apply, acknowledge, write what it completes. The entries read."""
        dead_before = self.reader.dead_lettered
        delivered = self.reader.poll(count=count, block_ms=block_ms)
        self.last_delivered = delivered
        self.progress.dead_lettered = self.reader.dead_lettered
        if not delivered:
            if self.metrics is not None:
                self.metrics.dead_letters.inc(self.reader.dead_lettered - dead_before)
            self._advance()
            return 0
        departures = [d.event for d in delivered if isinstance(d.event, Departure)]
        applied = self.tiles.apply(departures, lateness_seconds=self.lateness_seconds)
        entries = f"e{delivered[0].entry_id}_{delivered[-1].entry_id}"
        self.progress.too_late += applied.newly_too_late
        if applied.too_late:
            if self.too_late_parts is not None:
                self.too_late_parts.write(
                    [{**event_fields(e), "event_id": e.event_id} for e in applied.too_late],
                    entries,
                )
        # Late, within the lateness: the latest rows again. After a start, every view is
        # checked once: a processor that died between applying and folding left it to us.
        for table in TILED if self._first_step else applied.behind:
            self._fold_in(TILED[table])
        self._first_step = False
        weather = [d.event for d in delivered if isinstance(d.event, Weather)]
        if weather:
            self._write_weather(weather, entries)
        self.reader.ack([d.entry_id for d in delivered])
        latest = max(pd.Timestamp(d.event.event_time) for d in delivered)
        clock = self.progress.clock
        self.progress.clock = latest if clock is None else max(clock, latest)
        self.progress.read += len(delivered)
        self.progress.applied += applied.events
        self._advance()
        if self.metrics is not None:
            self._measure(delivered, applied.newly_too_late, dead_before)
        return len(delivered)

    def _measure(self, delivered: list[Delivered], too_late: int, dead_before: int) -> None:
        assert self.metrics is not None
        kinds: dict[str, int] = {}
        for d in delivered:
            kinds[d.event.KIND] = kinds.get(d.event.KIND, 0) + 1
        for kind, n in kinds.items():
            self.metrics.events.labels(kind).inc(n)
        self.metrics.dead_letters.inc(self.reader.dead_lettered - dead_before)
        self.metrics.too_late.inc(too_late)
        self.metrics.delivered([d.entry_id for d in delivered])

    def run_until_idle(self, *, count: int = 1000) -> Progress:
        """Steps until the log has nothing new for this processor."""
        while self.step(count=count):
            pass
        return self.progress

    def tick(self, now: pd.Timestamp) -> None:
        """The clock moves to `now` (a replay's or the wall's) with no event to move it: every
        event before `now` is in the log and read (the caller's promise: a replay publishes
        them first), so the boundaries up to `now` are complete and written."""
        while self.step(block_ms=0):
            pass
        clock = self.progress.clock
        self.progress.clock = now if clock is None else max(clock, now)
        self._advance()

    def _safe_clock(self) -> pd.Timestamp | None:
        """This processor's clock, held back to the oldest event another one still holds."""
        clock = self.progress.clock
        held = self.log.oldest_pending(self.group)
        if clock is None or held is None:
            return clock
        try:
            oldest = pd.Timestamp(parse_event(held).event_time)
        except ValueError:  # a malformed entry being dead-lettered: it holds nothing back
            return clock
        return min(clock, oldest)

    def _advance(self) -> None:
        clock = self._safe_clock()
        if clock is None:
            return
        for aggregate in TILED.values():
            boundary = int(tile_index(pd.DatetimeIndex([clock]), aggregate.tile)[0])
            if boundary > self.written.get(aggregate.table, -1):
                with self.tiles.writing(aggregate.table) as marks:
                    last = marks.get(BOUNDARY, -1)
                    if boundary > last:  # no one wrote it, or a later one
                        self._write_boundary(aggregate, boundary, last)
                        marks[BOUNDARY] = boundary
                        marks[FOLDED] = self.window_sums.behind_read[aggregate.table]
                self.written[aggregate.table] = boundary

    def _fold_in(self, aggregate: TiledAggregate) -> None:
        """Events applied behind the rows already written (late, within the allowed
        lateness): the view's latest rows, online and in their offline part, written again
        with them. Earlier parts keep what was served then. The view's marks keep the count of
        events behind its horizon that the rows hold, so a fold cut short by a crash is done
        by the next processor to look. Only where the online write replaces a row of the same
        stamp (the direct writer): Feast's keeps the first, and the offline part must keep
        what was served; there, late events reach the next boundary's rows."""
        if self.writers[aggregate.table] is None:
            return
        with self.tiles.writing(aggregate.table) as marks:
            last = marks.get(BOUNDARY, -1)
            behind = self.tiles.behind(aggregate)
            if last >= 0 and behind != marks.get(FOLDED, 0):
                self._write_boundary(aggregate, last, last)
                self.progress.folded_in += 1
                marks[FOLDED] = self.window_sums.behind_read[aggregate.table]

    def _write_boundary(self, aggregate: TiledAggregate, boundary: int, last: int) -> None:
        keys, sums = self.window_sums.at(aggregate, boundary, last)
        if not keys:
            return
        stamp = tile_start(boundary, aggregate.tile)
        features = window_rows(aggregate, sums)
        rows = [
            {**dict(zip(aggregate.keys, key, strict=True)), "event_timestamp": stamp, **values}
            for key, values in zip(keys, features, strict=True)
        ]
        self._write(aggregate.table, rows, f"b{boundary}")

    def _write_weather(self, observations: list[Weather], part: str) -> None:
        with self.tiles.writing(WEATHER_VIEW) as marks:
            newer = [o for o in observations if _seconds(o.event_time) > marks.get(o.origin, -1)]
            if not newer:
                return
            rows = [
                {
                    "origin": o.origin,
                    "event_timestamp": pd.Timestamp(o.event_time),
                    **{f"weather_{name}": value for name, value in o.readings.items()},
                }
                for o in newer
            ]
            self._write(WEATHER_VIEW, rows, part)
            for o in newer:
                marks[o.origin] = max(marks.get(o.origin, -1), _seconds(o.event_time))

    def _write(self, view: str, rows: list[dict[str, Any]], part: str) -> None:
        """Rows holding the view's keys, `event_timestamp` and features, into the online store
        and, first, into the offline part `part` (a part written again is replaced: a row
        offline and not yet online is written again after a restart, never twice)."""
        if view in self.parts:
            self.parts[view].write(rows, part)
        writer = self.writers[view]
        if writer is not None:
            writer.write(rows, [row["event_timestamp"] for row in rows])
        else:
            table = pd.DataFrame(rows)
            for column in table.columns:  # Feast converts by the column's dtype
                if column.endswith("_departures"):
                    table[column] = table[column].astype("int64")
                elif column.startswith("weather_"):
                    table[column] = table[column].astype("float64")
            self.store.write_to_online_store(view, table)
        self.progress.rows_written += len(rows)
        if self.metrics is not None and rows:
            newest = max(row["event_timestamp"] for row in rows)
            self.metrics.written(view, len(rows), pd.Timestamp(newest).to_pydatetime())


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())
