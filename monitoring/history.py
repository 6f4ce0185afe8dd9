"""The monitoring history: one parquet table that every `skewless monitor` run appends its
figures to, in long form (a row per run, version, window and metric), so that the
continuous-training controller reads trends with one filter and no JSON parsing.

Columns: monitored_at, model, version, window_start (null: the whole period), since, until,
metric, value.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import pandas as pd

from skewless.quality.monitoring_result import MonitoringResult

WINDOW_METRICS = (
    "rows",
    "labelled",
    "mean_score",
    "prediction_ks",
    "roc_auc",
    "log_loss",
    "brier",
    "ece",
    "positive_rate",
    "drifted_importance",
)


def rows_of(result: MonitoringResult) -> pd.DataFrame:
    records: list[dict[str, Any]] = []

    def add(version: str, window: str | None, metric: str, value: float | None) -> None:
        if value is not None:
            records.append(
                {"version": version, "window_start": window, "metric": metric, "value": value}
            )

    for v in result.versions:
        version = v.version
        overall = v.performance.overall
        for metric in ("roc_auc", "log_loss", "brier", "ece", "positive_rate"):
            add(version, None, metric, getattr(overall, metric))
        add(version, None, "rows", v.rows)
        add(version, None, "labelled", v.labels.labelled)
        add(version, None, "label_coverage", v.labels.coverage)
        add(version, None, "prediction_ks", v.prediction_drift.ks)
        add(version, None, "drifted_importance", v.drift.drifted_importance)
        add(version, None, "alerts", len(v.alerts))
        if v.skew is not None:
            add(version, None, "skew_failed", 0.0 if v.skew.passed else 1.0)
        for d in v.drift.features:
            add(version, None, f"drift.{d.feature}", d.value)
        for w in v.windows:
            for metric in WINDOW_METRICS:
                add(version, w.start, metric, getattr(w, metric))
    frame = pd.DataFrame.from_records(
        records, columns=["version", "window_start", "metric", "value"]
    )
    frame["value"] = frame["value"].astype("float64")
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    frame.insert(0, "until", pd.Timestamp(result.until))
    frame.insert(0, "since", pd.Timestamp(result.since))
    frame.insert(0, "model", result.model)
    frame.insert(0, "monitored_at", pd.Timestamp(result.monitored_at))
    return frame


def read_history(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def append(path: Path, rows: pd.DataFrame) -> None:
    """Old rows plus `rows`, written under a temporary name and renamed: a reader sees the
    history before this run or after it, never half of it; two runs appending at once take
    turns (a lock beside it), so neither loses the other's rows."""
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = read_history(path)
        both = pd.concat([old, rows], ignore_index=True) if len(old) else rows
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        both.to_parquet(tmp, index=False)
        tmp.replace(path)
