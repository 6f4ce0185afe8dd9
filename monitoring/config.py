"""The monitoring configuration: the `monitoring:` section of the model configuration file,
strict (extra="forbid"). Every threshold has a default stated here and in docs/monitoring.md;
a model's file only names what differs. Where the labels are is the model configuration's
top-level `outcomes:` (the pipeline reads it too).

Drift is a verdict per feature (a distance above its threshold, and beyond what chance gives
a window of that size); an *alert* (exit status 1) is one of the conditions under `alerts:`,
each switched off with `null`. Data drift alerts only when the drifted features together carry
a large share of the model's feature importance: seasonal drift in a feature the model barely
uses is reported, not paged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from skewless.models.configuration import ModelConfig
from skewless.strict_yaml import StrictModel, validate_as

WindowSize = Literal["hour", "day", "week"]


class Drift(StrictModel):
    numeric_ks: float = Field(0.1, gt=0, le=1)  # Kolmogorov-Smirnov distance
    categorical_psi: float = Field(0.2, gt=0)  # population stability index over categories
    # ... and beyond chance at this level for the window's size (KS critical value; chi-square
    # bound for PSI), so that a small window's noise is not called drift.
    alpha: float = Field(0.001, gt=0, lt=1)
    min_rows: PositiveInt = 200  # fewer rows in a window: no verdict


class Alerts(StrictModel):
    # Data drift: the drifted features' importance shares add up to at least this.
    drifted_importance: float | None = Field(0.3, gt=0, le=1)
    # Prediction drift: KS distance of served scores vs the test window's scores.
    prediction_ks: float | None = Field(0.1, gt=0, le=1)
    # Performance, once min_labelled predictions have labels: ROC AUC below the version's
    # test-window AUC by more than this, or an expected calibration error above this.
    auc_drop: float | None = Field(0.05, gt=0, le=1)
    max_ece: float | None = Field(0.05, gt=0, le=1)
    min_labelled: PositiveInt = 500
    # A feature missing more often than in training by this share of rows (absolute); 0.2 as
    # in data validation: some nulls carry meaning and vary with the weather (no gust reported).
    missing_increase: float | None = Field(0.2, gt=0, le=1)
    # Categorical values the model never saw in training, share of non-null values.
    unknown_category_rate: float | None = Field(0.05, gt=0, le=1)
    skew: bool = True  # the sampled skew check found served values that differ from offline


class MonitoringConfig(StrictModel):
    window: WindowSize = "day"
    drift: Drift = Drift()
    alerts: Alerts = Alerts()
    skew_sample: int = Field(200, ge=0)  # prediction-log rows recomputed offline; 0: skip
    skew_tolerance: float = Field(0.0, ge=0, le=1)
    plotted_features: PositiveInt = Field(6, le=20)  # reference vs current, most drifted first


def load_monitoring_config(config: ModelConfig) -> MonitoringConfig:
    return validate_as(MonitoringConfig, config.monitoring, str(config.source), "monitoring")
