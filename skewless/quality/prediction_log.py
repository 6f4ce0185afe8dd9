"""The prediction log's layout, record and reader: what the service writes
(`serving/log_writer.py`, `serving/log_sink.py`) and what monitoring and the skew check read.

Parquet parts, partitioned by day: `<dir>/date=YYYY-MM-DD/part-*.parquet`, each written whole
under a temporary name first, so a reader never sees half a part. Columns: request_id,
served_at, feature_time, endpoint, served_by, model_name, model_version, probability,
decision, latency_ms, then `entity.<key>`, `request.<field>` and `feature.<name>` for every
value the model was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from skewless.errors import BadInput

ENTITY, REQUEST, FEATURE = "entity.", "request.", "feature."
COLUMNS = (
    "request_id",
    "served_at",
    "feature_time",
    "endpoint",
    "served_by",
    "model_name",
    "model_version",
    "probability",
    "decision",
    "latency_ms",
)


@dataclass(frozen=True)
class LogRecord:
    """One request's predictions, as the core served them (columns, not rows: cheap to make)."""

    served_at: datetime
    feature_time: datetime
    endpoint: str
    request_ids: list[str]
    inputs: list[dict[str, Any]]  # per prediction: join keys and request fields
    features: dict[str, list[Any]]  # feature -> a value per prediction
    served_by: list[str]
    model_names: list[str]
    model_versions: list[str]
    probabilities: list[float]
    decisions: list[bool]
    latency_ms: float

    def __len__(self) -> int:
        return len(self.request_ids)


def part_folder(directory: Path, served_at: datetime) -> Path:
    return directory / f"date={served_at.strftime('%Y-%m-%d')}"


def read_prediction_log(directory: Path) -> pd.DataFrame:
    """Every part under `directory`, oldest first. Parts are read one by one: a feature that
    was null in a whole part has no type there, which a single dataset read would refuse."""
    if not directory.is_dir():
        raise BadInput(f"no prediction log at {directory}")
    parts = sorted(directory.glob("date=*/part-*.parquet"))
    if not parts:
        return pd.DataFrame()
    frames = [pd.read_parquet(p) for p in parts]
    return pd.concat(frames, ignore_index=True).sort_values("served_at", kind="stable")
