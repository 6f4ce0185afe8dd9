"""Step 1, extract: entity rows of the training windows -> point-in-time features through the
model's feature service -> the dataset artifact. As of a moment (a retrain by the CT
controller, or a backtest), the labels are the outcomes known by then, not the source's."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from feast import FeatureStore

from skewless.features.outcomes import KNOWN_AT, LABEL, join_labels, outcome_source
from skewless.features.service import historical_features
from skewless.features.store import file_source_path

from .config import PipelineConfig

# With `as_of`: when each training label became known (all at or before `as_of`), kept in
# the dataset artifact so that a run can be audited for labels from its future.
LABEL_KNOWN_AT = "label_known_at"


def extract(
    store: FeatureStore,
    config: PipelineConfig,
    *,
    retrieve: Callable[[FeatureStore, str, pd.DataFrame], pd.DataFrame] = historical_features,
) -> pd.DataFrame:
    rows = pd.read_parquet(file_source_path(store, config.entity_source))
    start = pd.Timestamp(config.windows.train.start)
    end = pd.Timestamp(config.windows.test.end)
    rows = rows[(rows["event_timestamp"] >= start) & (rows["event_timestamp"] < end)]
    if config.as_of is not None:  # only what was known then: the outcomes as of that moment
        source = outcome_source(store, config.outcomes)
        known = join_labels(store, source, rows[config.entity_id], config.as_of)
        rows = rows.assign(**{config.label: known[LABEL], LABEL_KNOWN_AT: known[KNOWN_AT]})
    rows = rows[rows[config.label].notna()]  # e.g. cancelled flights: no outcome to learn
    dataset = retrieve(store, config.feature_service, rows)
    dataset[config.label] = dataset[config.label].astype("int64")
    return dataset
