"""The service's Prometheus metrics, in a registry of its own (one per process).

With several workers, each worker's values live in memory-mapped files in one folder per
service (Prometheus' multiprocess mode; `server.serve` makes the folder and points every
worker at it before they start), and whichever worker answers `/metrics` adds them all up:
counters and histograms summed, the gauges as their `multiprocess_mode` says.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

# Fine buckets around the 2 ms budget, so that p50 and p99 can be read off /metrics.
LATENCY_BUCKETS = (
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.00125,
    0.0015,
    0.00175,
    0.002,
    0.0025,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

SCORE_BUCKETS = tuple(round(k / 20, 2) for k in range(1, 21))  # 0.05 .. 1.0


class Metrics:
    def __init__(self, shared: Path | None = None) -> None:
        """`shared`: the service's multiprocess folder when it runs several workers."""
        self.registry = CollectorRegistry()
        self.shared = shared
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.latency = Histogram(
            "skewless_request_duration_seconds",
            "Server-side latency per endpoint and stage (features, score, total).",
            ["endpoint", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "skewless_requests",
            "Requests by endpoint and status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.predictions = Counter(
            "skewless_predictions",
            "Predictions served, by model role and version.",
            ["role", "version"],
            registry=r,
        )
        # Per role, for a canary's comparison of champion and challenger on live traffic.
        self.role_latency = Histogram(
            "skewless_prediction_duration_seconds",
            "Server-side latency of each prediction's request, by the role that scored it.",
            ["role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "skewless_prediction_score",
            "Scores served, by role.",
            ["role"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.model_errors = Counter(
            "skewless_model_errors",
            "Scoring calls that failed, by role.",
            ["role"],
            registry=r,
        )
        self.model = Gauge(
            "skewless_model_info",
            "The loaded model per role (value 1).",
            ["role", "name", "version", "sha256"],
            registry=r,
            multiprocess_mode="livemax",  # 1 while any live worker has it loaded
        )
        self.model_loads = Counter(
            "skewless_model_loads",
            "Model load attempts by result (loaded, refused).",
            ["result"],
            registry=r,
        )
        self.definition_skew = Counter(
            "skewless_definition_skew_refusals",
            "Model versions refused because their features' definitions changed since "
            "they were trained (the version already served keeps serving).",
            registry=r,
        )
        self.missing_features = Counter(
            "skewless_missing_features",
            "Features missing or stale at request time.",
            ["feature"],
            registry=r,
        )
        self.store_errors = Counter(
            "skewless_online_store_errors", "Online-store reads that failed.", registry=r
        )
        self.store_refused = Counter(
            "skewless_online_store_refused",
            "Requests answered 503 at once: the online store's circuit was open.",
            registry=r,
        )
        self.breaker_open = Gauge(
            "skewless_online_store_circuit_open",
            "1 while the online store's circuit is open (reads refused until a probe answers).",
            registry=r,
            multiprocess_mode="livemax",  # open in any live worker
        )
        self.shed = Counter(
            "skewless_requests_shed",
            "Prediction requests refused at once because the worker was full "
            "(REST; gRPC's are refused by grpc's own limit, before any handler runs).",
            ["endpoint"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "skewless_queue_wait_seconds",
            "REST: from a request's headers being parsed to its handler starting (the wait "
            "behind the requests ahead of it on the worker's one event loop).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.log_written = Counter(
            "skewless_prediction_log_written", "Predictions written to the log.", registry=r
        )
        self.log_dropped = Counter(
            "skewless_prediction_log_dropped", "Predictions dropped: log queue full.", registry=r
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, kept: the lookup cost ~2 µs a call on the request path."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def set_model(self, role: str, name: str, version: str, sha256: str) -> None:
        for labels in list(self.model._metrics):  # one series per role: drop the old version
            if labels[0] == role:
                # 0 first: a shared file keeps a removed series' last value for the others.
                self.model.labels(*labels).set(0)
                with warnings.catch_warnings():  # "not implemented in multiprocess mode": known
                    warnings.simplefilter("ignore", UserWarning)
                    self.model.remove(*labels)
        self.model.labels(role, name, version, sha256).set(1)

    def exposition(self) -> bytes:
        if self.shared is None:
            return generate_latest(self.registry)
        return generate_latest(_Workers(self.shared))


class _Workers:
    """Every worker's skewless_* values from the shared folder (Feast's own metrics live in
    the same files, and are left out: /metrics shows this service's)."""

    def __init__(self, folder: Path) -> None:
        self.collector = MultiProcessCollector(None, path=str(folder))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        metrics = self.collector.collect()  # type: ignore[no-untyped-call]
        return (m for m in metrics if m.name.startswith("skewless_"))
