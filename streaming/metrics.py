"""The stream processor's own Prometheus metrics, served on their own port (`skewless stream
run --metrics-port`): what it read, dead-lettered, kept offline only, wrote, and how fresh each
view's features are.

`skewless_feature_freshness_seconds{view}` is the age of the newest row the processor wrote
online for the view, by the one clock (skewless/clock.py): now minus the row's event time (a
tiled view's row stands at its bucket boundary, a weather row at the hour it is known). It is
what a service reading the view sees at best; alerting on it catches a processor that stopped
or fell behind. `skewless_stream_event_to_online_seconds` is each event's time from its entry in
the log (the publish time Redis stamped into its id) to the end of the processor's step that
applied it and wrote the rows its boundary completed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .log import EventLog

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class StreamMetrics:
    def __init__(self, clock: Callable[[], datetime], log: EventLog, group: str) -> None:
        self.registry = CollectorRegistry()
        self.clock = clock
        self.events = Counter(
            "skewless_stream_events",
            "Events read from the log, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "skewless_stream_dead_letters",
            "Entries that were not valid events (dead-lettered with their reason).",
            registry=self.registry,
        )
        self.too_late = Counter(
            "skewless_stream_too_late",
            "Departures later than the allowed lateness: counted, kept offline only.",
            registry=self.registry,
        )
        self.rows = Counter(
            "skewless_stream_rows_written",
            "Feature rows written online (and offline), by view.",
            ["view"],
            registry=self.registry,
        )
        self.event_to_online = Histogram(
            "skewless_stream_event_to_online_seconds",
            "From an event's entry in the log to the end of the step that applied it.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.freshness = Gauge(
            "skewless_feature_freshness_seconds",
            "Now (the one clock) minus the event time of the newest row written online.",
            ["view"],
            registry=self.registry,
        )
        self._newest: dict[str, datetime] = {}
        lag = Gauge(
            "skewless_stream_lag_entries",
            "Entries in the log not yet delivered to the processors' group.",
            registry=self.registry,
        )
        lag.set_function(lambda: _group_figure(log, group, "lag"))
        pending = Gauge(
            "skewless_stream_pending_entries",
            "Entries delivered to the group's processors and not yet acknowledged.",
            registry=self.registry,
        )
        pending.set_function(lambda: _group_figure(log, group, "pending"))

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        start_http_server(port, addr=address, registry=self.registry)

    def written(self, view: str, rows: int, newest: datetime) -> None:
        self.rows.labels(view).inc(rows)
        if view not in self._newest:
            self.freshness.labels(view).set_function(lambda: self._age(view))
        previous = self._newest.get(view)
        self._newest[view] = newest if previous is None else max(previous, newest)

    def _age(self, view: str) -> float:
        return (self.clock() - self._newest[view]).total_seconds()

    def delivered(self, entry_ids: list[str]) -> None:
        """The entries whose effect was just written: their time since publishing."""
        wall_ms = time.time() * 1000
        for entry_id in entry_ids:
            self.event_to_online.observe(max(wall_ms - int(entry_id.split("-", 1)[0]), 0) / 1000)


def _group_figure(log: EventLog, group: str, name: str) -> float:
    try:
        for state in log.groups():
            if state.name == group:
                value = getattr(state, name)
                return float("nan") if value is None else float(value)
    except Exception:  # a scrape must not fail because Redis blinked: the figure is unknown
        return float("nan")
    return float("nan")
