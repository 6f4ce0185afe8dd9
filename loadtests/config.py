"""Strict YAML for the gate and the canary (extra="forbid": a typo fails loudly)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from skewless.strict_yaml import StrictModel, load_strict

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class LatencyBudget(StrictModel):
    p50_ms: PositiveFloat
    p95_ms: PositiveFloat
    p99_ms: PositiveFloat


class Budgets(StrictModel):
    server: LatencyBudget  # read off the service's own /metrics histograms
    client: LatencyBudget  # locust's view: includes locust itself (see docs/deployment.md)
    max_error_ratio: float = Field(ge=0, le=1)
    min_rate_ratio: float = Field(gt=0, le=1.5)  # achieved / target rate


class GoldenConfig(StrictModel):
    requests: PositiveInt = 20
    score_tolerance: NonNegativeFloat = 1e-6  # |served - batch scoring|, probability units


class LoadConfig(StrictModel):
    protocol: Literal["rest", "grpc", "both"] = "rest"  # both: two locusts at half rate each
    rate: PositiveFloat  # requests per second in all
    seconds: PositiveFloat
    user_rate: PositiveFloat = 10.0  # per locust user; users = rate / user_rate
    unknown_entity_share: float = Field(default=0.05, ge=0, le=1)
    payload_rows: PositiveInt = 2000
    seed: int = 7


class SkewConfig(StrictModel):
    sample: PositiveInt = 500
    tolerance: float = Field(default=0.0, ge=0, le=1)


class ServiceConfig(StrictModel):
    # One worker always: /metrics is per process, so the server's view needs one process.
    ready_timeout_seconds: PositiveFloat = 120


class GateConfig(StrictModel):
    golden: GoldenConfig = GoldenConfig()
    load: LoadConfig
    budgets: Budgets
    skew: SkewConfig = SkewConfig()
    service: ServiceConfig = ServiceConfig()


class CanaryThresholds(StrictModel):
    max_error_ratio: float = Field(ge=0, le=1)  # the challenger's own
    max_error_ratio_increase: float = Field(ge=0, le=1)  # over the champion's
    max_p99_ratio: PositiveFloat  # challenger p99 / champion p99
    # Score distribution, challenger vs champion (two-sample Kolmogorov-Smirnov distance on
    # the score buckets): fails only when the distance is both larger than max_score_ks and
    # significant at score_alpha. The two roles see different entities (a sticky split), so
    # a test of size alone would fail identical models on small canaries (PSI did, here).
    max_score_ks: float = Field(gt=0, le=1)
    score_alpha: float = Field(default=0.001, gt=0, lt=1)
    min_predictions: PositiveInt  # by the challenger, for a verdict at all


class CanaryConfig(StrictModel):
    share: float = Field(gt=0, le=1)
    seconds: PositiveFloat
    thresholds: CanaryThresholds
    replay_rate: PositiveFloat = 50.0  # traffic the canary makes itself when it has no live service
    protocol: Literal["rest", "grpc"] = "rest"


def load_gate_config(path: Path | None = None) -> GateConfig:
    return load_strict(path or CONFIG_DIR / "gate.yaml", GateConfig)


def load_canary_config(path: Path | None = None) -> CanaryConfig:
    return load_strict(path or CONFIG_DIR / "canary.yaml", CanaryConfig)
