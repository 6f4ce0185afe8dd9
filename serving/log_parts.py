"""The prediction log's parts: records turned into Arrow tables and written as parquet, in the
layout and columns that `skewless/quality/prediction_log.py` defines (where its reader lives).

Used by the log's sink process (`serving/log_sink.py`), which writes what the service served,
and by the replay (`serving/replay.py`), which writes what it would have served.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from skewless.quality.prediction_log import ENTITY, FEATURE, REQUEST, LogRecord, part_folder

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


def records_table(
    records: list[LogRecord], join_keys: tuple[str, ...], request_fields: tuple[str, ...]
) -> pa.Table:
    """Records (columns per request) as one table of the log's columns."""
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
    inputs: dict[str, list[Any]] = {name: [] for name in (*join_keys, *request_fields)}
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
        **{(ENTITY if n in join_keys else REQUEST) + n: v for n, v in inputs.items()},
        **{FEATURE + n: v for n, v in features.items()},
    }
    return pa.table({name: pa.array(values) for name, values in named.items()})


def _utc(value: Any) -> Any:
    """A time with a zone as UTC: a column of times takes one zone (its first value's), and
    callers may send any offset (-05:00 for New York)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


class PartWriter:
    """Records gathered as Arrow tables and written as one part per flush. Every prediction is
    reported once, to `written` or to `dropped` (a type clash, a full disk): the log goes on."""

    def __init__(
        self,
        directory: Path,
        join_keys: Iterable[str],
        request_fields: Iterable[str],
        written: Callable[[int], None],
        dropped: Callable[[int], None],
        flush_rows: int,
        flush_seconds: float,
    ) -> None:
        self.directory = directory
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.deadline = time.monotonic() + flush_seconds  # the next part, at the latest
        self.join_keys = tuple(join_keys)
        self.request_fields = tuple(request_fields)
        self.written = written
        self.dropped = dropped
        self.rows = 0  # converted, not yet written
        self._tables: list[tuple[datetime, pa.Table]] = []
        self._parts = 0

    def add(self, records: list[LogRecord]) -> None:
        if not records:
            return
        rows = sum(len(r) for r in records)
        try:
            table = records_table(records, self.join_keys, self.request_fields)
        except Exception:  # a type clash: counted, and the log goes on
            log.exception("could not convert %d logged predictions", rows)
            self.dropped(rows)
            return
        self._tables.append((records[0].served_at, table))
        self.rows += rows

    def flush_if_due(self) -> None:
        """A part when `flush_rows` predictions wait or `flush_seconds` have passed since the
        last part: the one rule, whether the sink or a worker's writer thread holds this."""
        if self.rows >= self.flush_rows or time.monotonic() >= self.deadline:
            self.flush()

    def flush(self) -> None:
        self.deadline = time.monotonic() + self.flush_seconds
        if not self._tables:
            return
        tables, self._tables = self._tables, []
        self.rows = 0
        try:
            parts = [
                (
                    tables[0][0],
                    pa.concat_tables([t for _, t in tables], promote_options="permissive"),
                )
            ]
        except Exception:  # chunks that do not merge (a type clash, ...): part by part
            log.warning("logged columns differ in type between chunks: one part per chunk")
            parts = tables
        for served_at, table in parts:
            try:
                self._parts += 1
                write_part(self.directory, table, served_at, self._parts)
            except Exception:  # a full disk: counted, and the log goes on
                log.exception("could not write %d logged predictions", table.num_rows)
                self.dropped(table.num_rows)
            else:
                self.written(table.num_rows)
