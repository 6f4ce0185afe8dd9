"""Does configuration fail loudly on a typo, and read the environment?"""

from pathlib import Path

import pytest
from pydantic import ValidationError

from skewless.models.configuration import load_model_config
from skewless.settings import Settings
from skewless.strict_yaml import ConfigError
from tests.support.repos import CHECKOUT

DEFAULT = CHECKOUT / "skewless" / "configs" / "delay_model.yaml"


def test_default_model_config_loads() -> None:
    config = load_model_config(DEFAULT)
    assert config.feature_service == "delay_model_v1"
    assert config.extract is not None and config.extract.start < config.extract.end
    assert config.example is not None and set(config.example.entities) == {
        "origin",
        "dest",
        "carrier",
        "tailnum",
    }


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(DEFAULT.read_text() + "feature_servce: typo\n")
    with pytest.raises(ConfigError, match=f"{path}: feature_servce: unknown key"):
        load_model_config(path)


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration not found"):
        load_model_config(tmp_path / "nowhere.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml line 2: not valid YAML"):
        load_model_config(broken)


def test_reversed_window_is_refused(tmp_path: Path) -> None:
    text = DEFAULT.read_text().replace('start: "2013-07-01', 'start: "2013-09-01', 1)
    path = tmp_path / "model.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="extract: Value error, window start"):
        load_model_config(path)


def test_online_store_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKEWLESS_ONLINE_STORE", "redis")
    settings = Settings()
    assert settings.feature_store_yaml.name == "feature_store.redis.yaml"
    monkeypatch.setenv("SKEWLESS_ONLINE_STORE", "cassandra")
    with pytest.raises(ValidationError, match="online_store"):
        Settings()


def test_the_renamed_model_file_variable_is_refused_not_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from skewless.errors import BadInput
    from skewless.settings import get_settings

    monkeypatch.setenv("SKEWLESS_CONFIG", "/some/model.yaml")
    get_settings.cache_clear()
    with pytest.raises(BadInput, match="SKEWLESS_MODEL_FILE"):
        get_settings()
    get_settings.cache_clear()
