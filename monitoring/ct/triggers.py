"""The five retraining triggers, each a pure function from evidence to a verdict with its
reasons and figures, so that every decision can be recorded with why it was taken and
tested on evidence just above and just below its threshold.

Evidence is gathered by `evidence.py` (for a tick; the backtest assembles it from the same
functions): the champion's registered figures, the labels known since its training,
monitoring's result over the lookback, the schedule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .config import CTConfig
from .cron import Cron


@dataclass(frozen=True)
class Evidence:
    now: datetime
    last_tick: datetime | None  # the previous evaluation, for the schedule
    requests: list[str] = field(default_factory=list)  # on-demand reasons not yet acted on
    champion: str | None = None
    champion_test_auc: float | None = None
    labelled_since_training: int | None = None  # labels known after its training window
    recent_auc: float | None = None  # over its last `last_labelled` labelled predictions
    recent_labelled: int = 0
    drifted_importance: float | None = None  # monitoring over the lookback
    drifted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    trigger: str
    fired: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def on_demand(evidence: Evidence) -> Verdict:
    if evidence.requests:
        return Verdict("on_demand", True, "asked: " + "; ".join(evidence.requests))
    return Verdict("on_demand", False, "nobody asked")


def schedule(evidence: Evidence, config: CTConfig) -> Verdict:
    if config.schedule is None:
        return Verdict("schedule", False, "no schedule")
    if evidence.last_tick is None:
        return Verdict("schedule", False, "first evaluation: the schedule counts from now")
    due = Cron.parse(config.schedule).passed_between(evidence.last_tick, evidence.now)
    if due is None:
        return Verdict("schedule", False, f"no {config.schedule!r} moment since the last tick")
    return Verdict("schedule", True, f"{config.schedule!r} was due at {due.isoformat()}")


def new_data(evidence: Evidence, config: CTConfig) -> Verdict:
    if config.new_data is None:
        return Verdict("new_data", False, "off")
    count, needed = evidence.labelled_since_training, config.new_data.min_labelled
    figures = {"labelled_since_training": count, "min_labelled": needed}
    if count is None:
        return Verdict("new_data", False, "no champion training window to count from", figures)
    if count >= needed:
        return Verdict("new_data", True, f"{count:,} labels known since training", figures)
    return Verdict("new_data", False, f"{count:,} of {needed:,} new labels", figures)


def performance(evidence: Evidence, config: CTConfig) -> Verdict:
    cfg = config.performance
    if cfg is None:
        return Verdict("performance", False, "off")
    figures = {
        "recent_auc": evidence.recent_auc,
        "recent_labelled": evidence.recent_labelled,
        "champion_test_auc": evidence.champion_test_auc,
        "auc_drop": cfg.auc_drop,
    }
    if evidence.recent_labelled < cfg.min_labelled or evidence.recent_auc is None:
        return Verdict(
            "performance",
            False,
            f"{evidence.recent_labelled:,} labelled predictions, {cfg.min_labelled:,} needed",
            figures,
        )
    if evidence.champion_test_auc is None:
        return Verdict("performance", False, "the champion has no test AUC", figures)
    floor = evidence.champion_test_auc - cfg.auc_drop
    if evidence.recent_auc < floor:
        return Verdict(
            "performance",
            True,
            f"AUC {evidence.recent_auc:.4f} on the last {evidence.recent_labelled:,} labelled "
            f"predictions < {floor:.4f} (test {evidence.champion_test_auc:.4f} - {cfg.auc_drop})",
            figures,
        )
    return Verdict("performance", False, f"AUC {evidence.recent_auc:.4f} >= {floor:.4f}", figures)


def drift(evidence: Evidence, config: CTConfig) -> Verdict:
    cfg = config.drift
    if cfg is None:
        return Verdict("drift", False, "off")
    weighted = evidence.drifted_importance
    figures = {
        "drifted_importance": weighted,
        "threshold": cfg.drifted_importance,
        "drifted": evidence.drifted,
    }
    if weighted is None:
        return Verdict("drift", False, "no served predictions to measure", figures)
    if weighted >= cfg.drifted_importance:
        named = ", ".join(evidence.drifted)
        reason = f"drifted features carry {weighted:.0%} of the importance: {named}"
        return Verdict("drift", True, reason, figures)
    return Verdict("drift", False, f"{weighted:.0%} < {cfg.drifted_importance:.0%}", figures)


def evaluate(evidence: Evidence, config: CTConfig) -> list[Verdict]:
    return [
        on_demand(evidence),
        schedule(evidence, config),
        new_data(evidence, config),
        performance(evidence, config),
        drift(evidence, config),
    ]


MAX_BACKOFF = 16  # the cooldown grows to at most this many times its length


def ready_at(retrains: list[tuple[datetime, bool]], cooldown_hours: float) -> datetime | None:
    """When an automatic retrain may start again, given the past retrains (moment, whether
    their model was adopted): `cooldown_hours` after the last, doubled for every refused one
    in a row before now. A refused retrain leaves the champion and its drift as they were, so
    its trigger fires again; without backing off it would retrain at every cooldown."""
    if not retrains:
        return None
    refused = 0
    for _, adopted in reversed(retrains):
        if adopted:
            break
        refused += 1
    factor = min(2**refused, MAX_BACKOFF)
    return retrains[-1][0] + timedelta(hours=cooldown_hours * factor)
