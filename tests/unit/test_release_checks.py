"""The release's CI checks each catch their planted bug: a configuration that does not
converge (a learning rate of 1e-9, trained for real by the pipeline's own `train`), a feature
that yields infinity, a feature missing far more often than in training. The end-to-end form
of each runs in tests/integration/test_releases.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loadtests.release.checks import convergence, finite
from skewless.models.contract import ModelContract, derive_features
from training.config import PipelineConfig, Training

FEATURES = ["rate", "trips"]


def _frame(rows: int, start: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rate = rng.random(rows)
    return pd.DataFrame(
        {
            "event_timestamp": pd.date_range(start, periods=rows, freq="h", tz="UTC"),
            "rate": rate,
            "trips": rng.integers(0, 50, rows).astype("float64"),
            "label": (rate + rng.normal(0, 0.2, rows) > 0.5).astype("int64"),
        }
    )


def _config() -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "model_name": "m",
            "feature_service": "s",
            "entity_source": "e",
            "entity_id": "id",
            "label": "label",
            "segments": [],
            "baseline_by": [],
            "windows": {
                "train": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-20T00:00:00Z"},
                "validation": {"start": "2024-01-20T00:00:00Z", "end": "2024-01-25T00:00:00Z"},
                "test": {"start": "2024-01-25T00:00:00Z", "end": "2024-02-01T00:00:00Z"},
            },
        }
    )


def _history(learning_rate: float) -> tuple[list[float], pd.DataFrame, pd.DataFrame]:
    from training.train import train

    fit, held = _frame(2000, "2024-01-01", 1), _frame(600, "2024-04-01", 2)
    contract = ModelContract("m", "s", "", "label", derive_features(fit, FEATURES))
    config = Training(
        search_budget=1,
        max_rounds=60,
        early_stopping_rounds=60,
        params={"learning_rate": learning_rate},
        refit_on_validation=False,
    )
    return train(fit, held, contract, config).history, fit, held


@pytest.mark.parametrize(("rate", "passes"), [(0.1, True), (1e-9, False)])
def test_training_that_does_not_learn_does_not_converge(rate: float, passes: bool) -> None:
    history, fit, held = _history(rate)
    check = convergence(history, fit["label"].to_numpy(), held["label"].to_numpy())
    assert check.passed is passes, check.evidence
    assert "the base rate's" in check.evidence


def test_a_feature_that_yields_infinity_is_named() -> None:
    dataset = _frame(24 * 31, "2024-01-01", 3)
    assert finite(dataset, FEATURES, _config()).passed
    dataset.loc[5, "rate"] = np.inf
    dataset.loc[7, "rate"] = -np.inf
    check = finite(dataset, FEATURES, _config())
    assert not check.passed and check.evidence == "rate: 2 infinite value(s)"


def test_a_feature_missing_far_more_than_in_training_is_named_unless_exempt() -> None:
    dataset = _frame(24 * 31, "2024-01-01", 4)
    newest = dataset["event_timestamp"] >= pd.Timestamp("2024-01-25", tz="UTC")
    dataset.loc[newest, "trips"] = np.nan
    check = finite(dataset, FEATURES, _config())
    assert not check.passed and "trips: missing in 100% of the newest rows vs 0%" in check.evidence
    exempt = _config().model_copy(
        update={"validation": _config().validation.model_copy(update={"null_exempt": ["trips"]})}
    )
    assert finite(dataset, FEATURES, exempt).passed


def test_a_check_that_cannot_read_its_run_fails_with_the_reason(tmp_path: Path) -> None:
    from loadtests.release.checks import _timed, converges

    (tmp_path / "training.json").write_text('{"history": "not the run\'s own form"}')
    check = _timed("training_converges", lambda: converges(tmp_path, _config()))
    assert check.name == "training_converges" and not check.passed
    assert check.evidence == "could not check: KeyError: 'validation_logloss'", check.evidence
