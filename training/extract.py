"""Step 1, extract: entity rows of the training windows -> point-in-time features through the
model's feature service -> the dataset artifact."""

from __future__ import annotations

import pandas as pd
from feast import FeatureStore

from skewless.feature_store import file_source_path
from skewless.features import historical_features

from .config import PipelineConfig


def extract(store: FeatureStore, config: PipelineConfig) -> pd.DataFrame:
    rows = pd.read_parquet(file_source_path(store, config.entity_source))
    start = pd.Timestamp(config.windows.train.start)
    end = pd.Timestamp(config.windows.test.end)
    rows = rows[(rows["event_timestamp"] >= start) & (rows["event_timestamp"] < end)]
    rows = rows[rows[config.label].notna()]  # e.g. cancelled flights: no outcome to learn
    dataset = historical_features(store, config.feature_service, rows)
    dataset[config.label] = dataset[config.label].astype("int64")
    return dataset
