"""`MonitoringResult`: what `skewless monitor` found, typed. Written once (`to_json`, the
`monitor.json` file) by monitoring's run and read (`from_json`, or in memory) by the HTML
report, the history, the CT controller's evidence and the tests.

Figures that are undefined for the data seen (an AUC with one class, a calibration error with
no label) are None; JSON has no NaN, so a NaN is written as null too.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def _finite(value: Any) -> Any:
    """NaN or an infinity, at any depth, as None: an undefined figure, as JSON writes it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _nan_is_none(cls, value: Any) -> Any:
        return _finite(value)


class Figures(Record):
    """Quality on labelled predictions (`skewless.quality.metrics.metrics`, plus calibration)."""

    rows: float | None = None
    positive_rate: float | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    ece: float | None = None


class FeatureDrift(Record):
    feature: str
    kind: str  # numeric | categorical
    importance: float  # share of the model's total gain
    statistic: str  # ks | psi: what the verdict is on
    value: float | None
    threshold: float | None  # the configured distance, or chance for this many rows if larger
    drifted: bool | None  # None: too few rows for a verdict
    psi: float | None
    rows: int
    missing_rate: float
    reference_missing_rate: float
    unknown_rate: float | None  # categories the model never saw, share of non-null values


class Drift(Record):
    features: list[FeatureDrift]
    drifted: list[str]  # most important first
    drifted_importance: float


class Histogram(Record):
    edges: list[float | None]
    reference: list[float | None]
    current: list[float | None]


class PredictionDrift(Record):
    ks: float | None
    psi: float | None
    mean_score: float | None
    test_median_score: float | None
    histogram: Histogram


class Distribution(Record):
    """Reference and current shares of one feature: bins of a number, top categories."""

    feature: str
    kind: str
    edges: list[float | None] = []
    categories: list[str] = []
    reference: list[float | None]
    current: list[float | None]


class Segment(Figures):
    value: str
    predictions: int
    mean_score: float | None


class Performance(Record):
    overall: Figures
    segments: dict[str, list[Segment]]


class Window(Record):
    """One window of time (hour, day or week) of a version's predictions."""

    start: str
    rows: int
    labelled: int
    mean_score: float | None
    prediction_ks: float | None
    roc_auc: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    ece: float | None = None
    positive_rate: float | None = None
    drifted: list[str]
    drifted_importance: float
    drift_ratio: dict[str, float | None]  # distance / threshold per feature


class Labels(Record):
    labelled: int
    coverage: float
    delay_hours_median: float | None
    delay_hours_p90: float | None


class Reference(Record):
    train_rows: int
    test_rows: int
    test_metrics: dict[str, float | None]


class SkewedFeature(Record):
    feature: str
    rows: int
    share: float
    example_served: str
    example_offline: str


class Skew(Record):
    rows: int
    passed: bool
    tolerance: float
    features: list[SkewedFeature]
    score_mismatches: int
    max_score_diff: float | None


class Alert(Record):
    condition: str
    message: str
    version: str = ""  # set in the result's list of every version's alerts


class VersionResult(Record):
    version: str
    rows: int
    served_by: dict[str, int]
    first: str
    last: str
    reference: Reference
    labels: Labels
    drift: Drift
    prediction_drift: PredictionDrift
    distributions: list[Distribution]
    performance: Performance
    windows: list[Window]
    skew: Skew | None
    alerts: list[Alert]


class Paired(Record):
    """Two versions on the same requests (a canary's paired scores, or shadow mode)."""

    served: str
    shadow: str
    rows: int
    labelled: int
    served_metrics: Figures
    shadow_metrics: Figures
    score_ks: float | None


class MonitoringResult(Record):
    model: str
    monitored_at: str
    since: str
    until: str
    window: str
    prediction_log: str
    predictions: int
    thresholds: dict[str, Any]  # the monitoring configuration it ran with
    versions: list[VersionResult]
    paired: list[Paired]
    alerts: list[Alert]
    seconds: float = 0.0

    def version(self, version: str) -> VersionResult | None:
        return next((v for v in self.versions if v.version == version), None)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> MonitoringResult:
        return cls.model_validate_json(text)
