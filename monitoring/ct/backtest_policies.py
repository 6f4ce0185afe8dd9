"""The retraining policies a backtest compares, each a controller configuration, and what a
policy's replay holds: its current model and every request's score."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from skewless.errors import BadInput
from skewless.models.artifacts import LoadedModel

from ..analysis import VersionAnalysis
from .config import CTConfig, Degradation, DistributionChange, NewData
from .evidence import Champion

POLICIES = ("static", "monthly", "weekly", "new-data", "performance", "drift", "combined")


def policy_config(name: str, base: CTConfig) -> CTConfig:
    """The policy as a controller configuration: which triggers are on (thresholds from the
    model's `ct:` section, or their defaults)."""
    off: dict[str, Any] = {"schedule": None, "new_data": None, "performance": None, "drift": None}
    on = {
        "new_data": base.new_data or NewData(),
        "performance": base.performance or Degradation(),
        "drift": base.drift or DistributionChange(),
    }
    updates: dict[str, dict[str, Any]] = {
        "static": off,
        "monthly": {**off, "schedule": "0 0 1 * *", "cooldown_hours": 0.0},
        "weekly": {**off, "schedule": "0 0 * * 1", "cooldown_hours": 0.0},
        "new-data": {**off, "new_data": on["new_data"]},
        "performance": {**off, "performance": on["performance"]},
        "drift": {**off, "drift": on["drift"]},
        "combined": {**off, **on},
    }
    if name not in updates:
        raise BadInput(f"--policy: {name!r} is not one of {', '.join(POLICIES)}")
    return base.model_copy(update=updates[name])


@dataclass
class Model:
    version: str
    loaded: LoadedModel
    analysis: VersionAnalysis  # the drift trigger's, against `ct.drift.against`
    facts: Champion  # its registered test AUC and what it was trained until


@dataclass
class PolicyRun:
    name: str
    config: CTConfig
    model: Model
    scores: np.ndarray  # per request of the period, NaN until served
    versions: np.ndarray  # the version that served each request
    retrains: list[dict[str, Any]] = field(default_factory=list)
    last_tick: datetime | None = None
