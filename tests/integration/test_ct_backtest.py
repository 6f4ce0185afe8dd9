"""Does the backtest replay a period as the controller would have lived it: each policy's
own model serving each day, its triggers on what was known then, retrains as of that day?"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from monitoring.config import load_monitoring_config
from monitoring.ct.backtest import Backtest
from monitoring.ct.backtest_report import markdown
from monitoring.ct.config import CTConfig
from skewless.features import store as feature_store
from skewless.features.service import ENTITY_TIMESTAMP
from skewless.models.configuration import ModelConfig, load_model_config
from skewless.registry.adapter import ModelRegistry

from .monitoring_setup import MonitoringWorld

START, END = datetime(2013, 4, 1, tzinfo=UTC), datetime(2013, 4, 10, tzinfo=UTC)


def _backtest(
    world: MonitoringWorld, tmp_path: Path, start: datetime | None, end: datetime | None
) -> tuple[Backtest, ModelConfig]:
    """A backtest from version 1 of the monitoring world over [start, end)."""
    config = load_model_config(world.config_file(0))
    backtest = Backtest(
        world.settings,
        config,
        load_monitoring_config(config),
        CTConfig(),
        start,
        end,
        tmp_path / "bt",
        base_version="1",
        progress=lambda _: None,
    )
    return backtest, config


def test_a_weekly_policy_retrains_on_monday_and_the_static_one_never(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    backtest, config = _backtest(monitoring_world, tmp_path, START, END)
    result = backtest.run(["static", "weekly"])
    static, weekly = result["policies"]
    assert static["retrains"] == 0
    assert [r["at"] for r in weekly["retrain_log"]] == ["2013-04-08T00:00:00+00:00"]  # Monday
    retrain = weekly["retrain_log"][0]
    assert retrain["why"] == ["schedule"] and retrain["seconds"] > 0
    assert not retrain["result"].startswith("pipeline stopped"), retrain["result"]
    # The real registry was not touched: retrains live in the backtest's sandbox.
    from skewless.registry.adapter import ModelRegistry

    real = ModelRegistry(monitoring_world.settings.state_dir).versions(config.name)
    sandbox = ModelRegistry(tmp_path / "bt" / "state").versions(config.name)
    assert len(sandbox) == len(real) + 1

    # April's AUC of the static policy equals the base model's batch scores of the same
    # requests against their labels, computed on the batch path (`skewless score`'s).
    from serving.batch import score_rows
    from skewless.features import store as feature_store
    from skewless.features.service import service_schema
    from skewless.models.artifacts import ModelFetcher

    store = feature_store.open_store(monitoring_world.settings)
    requests = pd.read_parquet(feature_store.file_source_path(store, "flight_requests"))
    april = requests[
        (requests["event_timestamp"] >= pd.Timestamp(START))
        & (requests["event_timestamp"] < pd.Timestamp(END))
    ]
    schema = service_schema(store, config.feature_service)
    fetcher = ModelFetcher(
        ModelRegistry(monitoring_world.settings.state_dir), config.name, schema, tmp_path / "models"
    )
    try:
        scored = score_rows(store, schema, fetcher.load("1"), april)
    finally:
        fetcher.close()
    known = scored["departed_late"].notna()
    expected = roc_auc_score(
        scored.loc[known, "departed_late"].astype(int), scored.loc[known, "probability"]
    )
    assert static["monthly_auc"]["2013-04"] == pytest.approx(expected, abs=1e-9)
    table = markdown(result)
    assert "| static |" in table and "| weekly |" in table


def test_by_default_the_backtest_replays_the_days_its_base_model_never_saw(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    backtest, config = _backtest(monitoring_world, tmp_path, None, None)
    registry = ModelRegistry(monitoring_world.settings.state_dir)
    data_until = registry.version(config.name, "1").record.trained_until
    assert data_until is not None
    assert backtest.start == pd.Timestamp(data_until).ceil("D")  # from the end of its data
    store = feature_store.open_store(monitoring_world.settings)
    path = feature_store.file_source_path(store, config.entity_source)
    entities = pd.read_parquet(path, columns=[ENTITY_TIMESTAMP])
    last = entities[ENTITY_TIMESTAMP].max()
    assert backtest.end == pd.Timestamp(last).floor("D") + pd.Timedelta(days=1)  # last day in
    assert backtest.start < backtest.end
