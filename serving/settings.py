"""The prediction service's settings: the kernel's (`skewless.settings`) and the service's own,
read from the same environment (prefix SKEWLESS_).

Only `skewless serve` and what starts or waits on a service (the gate, the canary) read them;
the kernel, the pipeline and monitoring never see them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from skewless.settings import Settings, refuse_renamed_variables


class ServingSettings(Settings):
    serve_host: str = Field(default="127.0.0.1", description="Address both faces listen on.")
    rest_port: int = Field(default=8000, ge=0, le=65535, description="REST port (0: any free).")
    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port (0: any free).")
    workers: PositiveInt = Field(default=1, description="Server processes (SO_REUSEPORT).")
    metrics_dir: Path | None = Field(
        default=None,
        description="Where several workers share their metric values (Prometheus multiprocess "
        "mode); `serve` makes a fresh folder per service when workers > 1.",
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

    @field_validator("serve_version")
    @classmethod
    def _follows_aliases_when_empty(cls, value: str | None) -> str | None:
        return value or None


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    refuse_renamed_variables()
    return ServingSettings()
