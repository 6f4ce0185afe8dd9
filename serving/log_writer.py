"""Writing the prediction log: every served prediction, appended off the request path.

The request path only appends one record per request (or coalesced batch) to a buffer bounded
in predictions (never blocking: a full buffer drops the record and counts it); a writer
thread wakes every `flush_seconds` (or when `flush_rows` predictions wait), turns the records
into Arrow tables and writes them as parquet parts in the layout and columns that
`skewless/prediction_log.py` defines, where its reader lives (monitoring and the skew check
read it there).

The buffer is a deque, not a `queue.Queue`: a queue's `put` takes a lock and wakes the writer
on every request; a deque append costs the request path next to nothing (the log's cost per
prediction fell from ~90 to ~20-40 µs of CPU with this and batching, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from skewless.prediction_log import ENTITY, FEATURE, REQUEST, LogRecord, part_folder

from .metrics import Metrics

log = logging.getLogger("skewless.serving")


def write_part(
    directory: Path, table: pa.Table, served_at: datetime, number: int, name: str | None = None
) -> Path:
    """One part of the log, in the folder of `served_at`'s day; `name` (`part-*.parquet`)
    replaces a part of that name, so a job that writes it again does not double it."""
    folder = part_folder(directory, served_at)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or f"part-{os.getpid()}-{time.time_ns()}-{number:06d}.parquet"
    tmp = folder / ("." + name)
    pq.write_table(table, tmp)
    tmp.replace(folder / name)  # readers never see a half-written part
    return folder / name


# The writer shares the worker's one core and its GIL with the event loop. A thread holding
# the GIL keeps it for up to the 5 ms switch interval while the loop's requests wait: with the
# writer converting a whole second of records at each flush, the client p99 at 1,000
# requests/s was ~10 ms against ~2 ms without the log (docs/benchmarks.md, issue 14). So it
# converts what waits every TICK_SECONDS, CHUNK records at a time, and hands the GIL back
# between chunks; converted records wait as Arrow tables (no work for the garbage collector)
# until their part is written.
TICK_SECONDS = 0.05
CHUNK = 128


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        metrics: Metrics,
        *,
        queue_size: int,
        flush_rows: int,
        flush_seconds: float,
        join_keys: Iterable[str],
        request_fields: Iterable[str],
    ) -> None:
        self.directory = directory
        self.metrics = metrics
        self.queue_size = queue_size
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.join_keys = tuple(join_keys)
        self.request_fields = tuple(request_fields)
        # Appended by the request path, popped by the writer: both atomic under the GIL.
        self._pending: deque[LogRecord] = deque()
        # Rows in and rows out, each written by one thread only: their difference is what
        # waits (a record holds one request's predictions, or a coalesced batch's).
        self._rows_in = 0
        self._rows_out = 0
        self._tables: list[tuple[datetime, pa.Table]] = []  # converted, not yet written
        self._converted = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._parts = 0

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def append(self, record: LogRecord) -> None:
        rows = len(record)
        waiting = self._rows_in - self._rows_out
        if waiting + rows > self.queue_size:
            self.metrics.log_dropped.inc(rows)
            return
        self._pending.append(record)
        self._rows_in += rows
        if waiting + rows >= self.flush_rows and not self._wake.is_set():
            self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything waiting, then stop the writer (graceful shutdown). Idempotent."""
        if self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the prediction log writer did not finish within %.0f s", timeout)

    def _run(self) -> None:
        deadline = time.monotonic() + self.flush_seconds
        while True:
            self._wake.wait(min(TICK_SECONDS, self.flush_seconds))
            self._wake.clear()
            stopping = self._stopping  # read before converting: nothing appended is left behind
            self._convert()
            if stopping or time.monotonic() >= deadline:
                self._flush()
                deadline = time.monotonic() + self.flush_seconds
            if stopping:
                return

    def _convert(self) -> None:
        """Waiting records into Arrow tables, CHUNK records at a time, the event loop between;
        a part is written whenever `flush_rows` predictions are converted."""
        while self._pending:
            chunk: list[LogRecord] = []
            rows = 0
            while self._pending and len(chunk) < CHUNK:
                record = self._pending.popleft()
                chunk.append(record)
                rows += len(record)
            self._rows_out += rows
            try:
                self._tables.append((chunk[0].served_at, self._table(chunk)))
                self._converted += rows
            except Exception:  # a type clash: counted, and the log goes on
                log.exception("could not convert %d logged predictions", rows)
                self.metrics.log_dropped.inc(rows)
            time.sleep(0)  # hand the GIL to the event loop: see TICK_SECONDS
            if self._converted >= self.flush_rows:
                self._flush()

    def _flush(self) -> None:
        """The converted tables as one part of the log."""
        if not self._tables:
            return
        tables, self._tables = self._tables, []
        self._converted = 0
        try:
            parts = [(tables[0][0], pa.concat_tables([t for _, t in tables],
                                                     promote_options="permissive"))]  # fmt: skip
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # chunks that do not merge: part by part
            log.warning("logged columns differ in type between chunks: one part per chunk")
            parts = tables
        for served_at, table in parts:
            try:
                self._parts += 1
                write_part(self.directory, table, served_at, self._parts)
                self.metrics.log_written.inc(table.num_rows)
            except Exception:  # a full disk: counted, and the log goes on
                log.exception("could not write %d logged predictions", table.num_rows)
                self.metrics.log_dropped.inc(table.num_rows)

    def _table(self, records: list[LogRecord]) -> pa.Table:
        columns: dict[str, list[Any]] = {
            "request_id": [],
            "served_at": [],
            "feature_time": [],
            "endpoint": [],
            "served_by": [],
            "model_name": [],
            "model_version": [],
            "probability": [],
            "decision": [],
            "latency_ms": [],
        }
        inputs: dict[str, list[Any]] = {
            name: [] for name in (*self.join_keys, *self.request_fields)
        }
        features: dict[str, list[Any]] = {}
        for r in records:
            n = len(r)
            columns["request_id"].extend(r.request_ids)
            columns["served_at"].extend([r.served_at] * n)
            columns["feature_time"].extend([r.feature_time] * n)
            columns["endpoint"].extend([r.endpoint] * n)
            columns["served_by"].extend(r.served_by)
            columns["model_name"].extend(r.model_names)
            columns["model_version"].extend(r.model_versions)
            columns["probability"].extend(r.probabilities)
            columns["decision"].extend(r.decisions)
            columns["latency_ms"].extend([r.latency_ms] * n)
            for name, values in inputs.items():
                values.extend(_utc(row.get(name)) for row in r.inputs)
            for name, values in r.features.items():
                features.setdefault(name, []).extend(values)
        named = {
            **columns,
            **{(ENTITY if n in self.join_keys else REQUEST) + n: v for n, v in inputs.items()},
            **{FEATURE + n: v for n, v in features.items()},
        }
        return pa.table({name: pa.array(values) for name, values in named.items()})


def _utc(value: Any) -> Any:
    """A time with a zone as UTC: a column of times takes one zone (its first value's), and
    callers may send any offset (-05:00 for New York)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value
