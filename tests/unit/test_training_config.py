"""Is the pipeline configuration strict, and the search bounded?"""

from pathlib import Path

import pytest

from skewless.strict_yaml import ConfigError
from training.config import Training, load_pipeline_config
from training.train import candidate_params

DEFAULT = Path(__file__).resolve().parents[2] / "skewless" / "configs" / "delay_model.yaml"


def test_default_config_loads_and_typos_fail(tmp_path: Path) -> None:
    config = load_pipeline_config(DEFAULT)
    assert config.feature_service == "delay_model_v1" and config.model_name == "departure_delay"
    assert config.segments == ["origin", "carrier", "departure_month"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT.read_text().replace("baseline_by:", "baseline_bi:"))
    with pytest.raises(ConfigError, match=r"bad.yaml: .*pipeline\.baseline_bi: unknown key"):
        load_pipeline_config(bad)


def test_overlapping_windows_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DEFAULT.read_text().replace('test: {start: "2013-07-01', 'test: {start: "2013-06-15')
    )
    with pytest.raises(ConfigError, match="overlap"):
        load_pipeline_config(bad)


def test_search_is_bounded_seeded_and_starts_with_the_configured_params() -> None:
    config = Training(
        search_budget=3,
        params={"num_leaves": 31},
        search_space={"num_leaves": [15, 63], "min_child_samples": [20, 50]},
    )
    trials = candidate_params(config)
    assert len(trials) == 3 and trials[0]["num_leaves"] == 31
    assert trials == candidate_params(config)  # deterministic


def test_rolled_windows_end_at_the_moment_and_an_expanding_one_starts_at_the_earliest() -> None:
    from datetime import UTC, datetime

    from training.config import EARLIEST, Rolling, rolled_windows

    as_of = datetime(2013, 9, 1, tzinfo=UTC)
    rolled = rolled_windows(Rolling(train_days=30, validation_days=14, test_days=7), as_of)
    assert rolled.test.end == as_of and rolled.test.start == datetime(2013, 8, 25, tzinfo=UTC)
    assert rolled.validation.start == datetime(2013, 8, 11, tzinfo=UTC)
    assert rolled.train.start == datetime(2013, 7, 12, tzinfo=UTC)
    expanding = rolled_windows(Rolling(train_days=None, validation_days=14, test_days=7), as_of)
    assert expanding.train.start == EARLIEST and expanding.train.end == rolled.train.end
