"""The one settings object, read from the environment (prefix SKEWLESS_).

Built on first use by `get_settings()`, never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKEWLESS_", frozen=True)

    repo_path: Path = Field(
        default=PROJECT_ROOT / "feature_repo", description="The Feast repository."
    )
    online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite",
        description="sqlite: embedded default (feature_store.yaml); "
        "redis: production (feature_store.redis.yaml).",
    )
    redis_connection: str = Field(
        default="127.0.0.1:6379",
        description="Feast connection string for Redis: host:port[,db=0][,password=...].",
    )
    lead_time_minutes: PositiveInt = Field(
        default=60, description="How long before scheduled departure a prediction is asked for."
    )
    config: Path = Field(
        default=Path(__file__).resolve().parent / "configs" / "delay_model.yaml",
        description="The model configuration (feature service, entity source, windows).",
    )

    state_dir: Path = Field(
        default=PROJECT_ROOT / ".skewless",
        description="Pipeline runs and the MLflow store (sqlite:///<state_dir>/mlflow.db).",
    )
    pipeline_config: Path = Field(
        default=PROJECT_ROOT / "training" / "configs" / "delay_model.yaml",
        description="The training pipeline configuration (strict YAML).",
    )

    @property
    def data_dir(self) -> Path:
        # The FileSources in the Feast repository read their tables from here.
        return self.repo_path / "data"

    @property
    def feature_store_yaml(self) -> Path:
        name = "feature_store.yaml" if self.online_store == "sqlite" else "feature_store.redis.yaml"
        return self.repo_path / name


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
