"""The continuous-training controller's configuration: the `ct:` section of the model
configuration file, strict. Each trigger is switched off by `null`; on demand is always on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from skewless.models.configuration import ModelConfig
from skewless.strict_yaml import StrictModel, validate_as

from .cron import Cron


class NewData(StrictModel):
    # Labels that became known after the champion's training window ended.
    min_labelled: PositiveInt = 30_000


class Degradation(StrictModel):
    # ROC AUC over the champion's last `last_labelled` labelled predictions, below its own
    # test-window AUC by more than `auc_drop`; no verdict under `min_labelled` of them.
    last_labelled: PositiveInt = 5_000
    auc_drop: float = Field(0.03, gt=0, le=1)
    min_labelled: PositiveInt = 1_000


class DistributionChange(StrictModel):
    # Monitoring's importance-weighted drift of the champion over the lookback.
    drifted_importance: float = Field(0.5, gt=0, le=1)
    # Against what: `recent`, the champion's test window (change since it was made: the
    # newest data it was judged on); `training`, its training window, as monitoring's report
    # compares (on seasonal data that drifts at once and keeps firing after every retrain).
    against: Literal["recent", "training"] = "recent"


class CTConfig(StrictModel):
    schedule: str | None = None  # cron, e.g. "0 3 1 * *": 03:00 on the 1st of each month
    new_data: NewData | None = None
    performance: Degradation | None = Degradation()
    drift: DistributionChange | None = DistributionChange()
    lookback_days: PositiveFloat = 7.0  # the served period monitoring looks at per tick
    # No automatic retrain sooner than this after the last: a week. On a year of flights the
    # drift trigger fires at nearly every tick (every week's weather and congestion differ from
    # the last), so this is what bounds a drift policy's retrains (docs/benchmarks.md).
    cooldown_hours: float = Field(168.0, ge=0)
    deploy: bool = True  # a blessed retrain goes on through `skewless deploy`
    deploy_url: str | None = None  # a running service for the canary (else deploy starts one)
    # The release path's own configuration files (`skewless deploy --gate-config/--canary-
    # config`); relative paths are read from the model configuration file's folder.
    gate_config: str | None = None
    canary_config: str | None = None
    tick_seconds: PositiveFloat = 3600.0  # `skewless ct run`: the time between ticks

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            Cron.parse(value)  # a bad expression is refused when the file is read
        return value


def load_ct_config(config: ModelConfig) -> CTConfig:
    return validate_as(CTConfig, config.ct, str(config.source), "ct")
