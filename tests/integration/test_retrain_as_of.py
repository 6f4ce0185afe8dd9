"""Does a retrain as of a moment learn only from what was known at that moment?"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from skewless.features import store as feature_store
from skewless.features.store import file_source_path
from training.config import load_pipeline_config
from training.extract import LABEL_KNOWN_AT
from training.pipeline import Pipeline

from .monitoring_setup import MonitoringWorld

AS_OF = datetime(2013, 4, 10, 12, 0, tzinfo=UTC)


def test_a_retrain_at_day_d_uses_no_label_known_after_d(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    settings = monitoring_world.settings.model_copy(update={"state_dir": tmp_path / "state"})
    config = load_pipeline_config(monitoring_world.config_file(0), AS_OF)
    assert config.windows.test.end == AS_OF  # rolled forward to "now"
    assert config.windows.train.start == datetime(2013, 3, 13, 12, 0, tzinfo=UTC)  # 28 days
    result = Pipeline(settings, config, progress=lambda _: None).run()
    assert result.version is not None
    dataset = pd.read_parquet(result.run_dir / "dataset.parquet")

    known_at = pd.to_datetime(dataset[LABEL_KNOWN_AT], utc=True)
    assert (known_at <= pd.Timestamp(AS_OF)).all()
    store = feature_store.open_store(settings)
    outcomes = pd.read_parquet(file_source_path(store, "flight_outcomes"))
    requests = pd.read_parquet(file_source_path(store, "flight_requests"))
    window = requests[
        (requests["event_timestamp"] >= pd.Timestamp(config.windows.train.start))
        & (requests["event_timestamp"] < pd.Timestamp(AS_OF))
    ]
    joined = window.merge(outcomes, on="flight_id", suffixes=("", "_outcome"))
    late = joined[joined["outcome_known_at"] > pd.Timestamp(AS_OF)]
    assert len(late) > 0  # flights asked about before D, departing after it: must be left out
    assert not set(late["flight_id"]) & set(dataset["flight_id"])
    expected = joined[joined["outcome_known_at"] <= pd.Timestamp(AS_OF)]
    assert len(dataset) == len(expected)
    # The labels are the outcomes', as known: equal to the source's for every row kept.
    merged = dataset.merge(expected[["flight_id", "departed_late_outcome"]], on="flight_id")
    assert (merged["departed_late"] == merged["departed_late_outcome"]).all()
