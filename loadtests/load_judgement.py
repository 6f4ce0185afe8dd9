"""The gate's load stage judged: server latency from the service's own histograms, client
latency per protocol from locust, the error ratio and the rate achieved, each against its
budget."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from . import server_metrics
from .config import GateConfig
from .locust_run import ClientStats

LATENCY = "skewless_request_duration_seconds"
PREDICT_ENDPOINTS = {"rest": "/v1/predict", "grpc": "grpc/Predict"}
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


@dataclass
class LoadJudgement:
    server: dict[str, Any] = field(default_factory=dict)  # latency and errors, service view
    client: dict[str, Any] = field(default_factory=dict)  # per protocol, locust's view
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # name, passed, detail

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append((name, passed, detail))


def judge_load(
    config: GateConfig,
    delta: server_metrics.Samples,
    stats: dict[str, ClientStats],
    protocols: list[str],
) -> LoadJudgement:
    """The load stage's checks against the configured budgets, from the service's histograms
    (the /metrics delta over the run) and from each locust's view."""
    budgets = config.budgets
    judgement = LoadJudgement()
    endpoints = [PREDICT_ENDPOINTS[p] for p in protocols]
    per_endpoint = {
        e: server_metrics.histogram(delta, LATENCY, endpoint=e, stage="total") for e in endpoints
    }
    combined = server_metrics.add(list(per_endpoint.values()))
    server_q = {k: combined.quantile(q) * 1000 for k, q in QUANTILES.items()}
    requests = sum(
        server_metrics.counter(delta, "skewless_requests", endpoint=e) for e in endpoints
    )
    failed = requests - sum(
        server_metrics.counter(delta, "skewless_requests", endpoint=e, status=ok)
        for e in endpoints
        for ok in ("200", "OK")
    )
    judgement.server = {
        "requests": requests,
        "errors": failed,
        "error_ratio": failed / requests if requests else 1.0,
        "latency_ms": server_q,
        "per_endpoint_ms": {
            e: {k: h.quantile(q) * 1000 for k, q in QUANTILES.items()}
            for e, h in per_endpoint.items()
        },
        "cdf": [(b * 1000, share) for b, share in combined.cdf()],
    }
    judgement.client = {p: asdict(s) for p, s in stats.items()}
    target = config.load.rate
    for key in QUANTILES:
        budget = getattr(budgets.server, f"{key}_ms")
        judgement.check(
            f"server {key}",
            server_q[key] <= budget,
            f"{server_q[key]:.2f} ms (budget {budget:g} ms)",
        )
    for protocol, s in stats.items():
        for key, column in (("p50", "50%"), ("p95", "95%"), ("p99", "99%")):
            value = s.percentiles_ms.get(column, math.inf)
            budget = getattr(budgets.client, f"{key}_ms")
            judgement.check(
                f"client {protocol} {key}",
                value <= budget,
                f"{value:g} ms (budget {budget:g} ms)",
            )
    client_requests = sum(s.requests for s in stats.values())
    client_failures = sum(s.failures for s in stats.values())
    ratio = max(
        client_failures / client_requests if client_requests else 1.0,
        judgement.server["error_ratio"],
    )
    examples = [e for s in stats.values() for e in s.failure_examples][:2]
    judgement.check(
        "error ratio",
        ratio <= budgets.max_error_ratio,
        f"{ratio:.4f} (client {client_failures} of {client_requests}, server {failed:g} of "
        f"{requests:g}; max {budgets.max_error_ratio:g})" + (f"; {examples}" if examples else ""),
    )
    achieved = sum(s.rate for s in stats.values())
    judgement.check(
        "achieved rate",
        achieved >= budgets.min_rate_ratio * target,
        f"{achieved:.1f} requests/s of {target:g} (at least {budgets.min_rate_ratio:.0%})",
    )
    return judgement
