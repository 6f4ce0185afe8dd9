"""The evidence a retraining decision is judged by, assembled the same way by the controller
(`gather`, on the served predictions) and by the backtest (on its replayed ones):

- the champion's registered facts (`VersionTags`): its test AUC and what it was trained
  until, the one "trained until" both use (`VersionTags.trained_until`);
- the labels known since then (new data);
- its recent performance on the last labelled predictions;
- its drift, against its training window's or its test window's statistics.

A tick analyses the lookback as `skewless monitor` does (a typed `MonitoringResult`) and keeps
that result under `<state_dir>/ct/evidence/`; the operator's report and history are never
touched by it.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from skewless.errors import BadInput
from skewless.features import store as feature_store
from skewless.features.outcomes import LABEL, KnownTimes, known_times, outcome_source
from skewless.models.configuration import ModelConfig
from skewless.quality.metrics import metrics
from skewless.registry.versions import Version
from skewless.settings import Settings

from ..analysis import TIME, VersionAnalysis
from ..config import load_monitoring_config
from ..run import Period, analyse
from .config import CTConfig
from .lock import ct_dir
from .triggers import Evidence

KEPT_EVIDENCE = 100  # the newest evidence files a controller keeps


@dataclass(frozen=True)
class Champion:
    """What the registry says of the model being judged."""

    version: str
    test_auc: float | None
    trained_until: datetime | None

    @classmethod
    def of(cls, version: Version) -> Champion:
        record = version.record
        return cls(version.version, record.test_roc_auc, record.trained_until)


def labelled_since(known: KnownTimes, champion: Champion, now: datetime) -> int | None:
    """Labels that became known after the champion's data: new data it never saw."""
    if champion.trained_until is None:
        return None
    return known.between(champion.trained_until, now)


def recent_auc(labelled: pd.DataFrame, last: int) -> tuple[float | None, int]:
    """ROC AUC over the last `last` labelled predictions (`TIME`, `LABEL`, `probability`),
    and how many there were; None where it is undefined (one class)."""
    tail = labelled.sort_values(TIME).tail(last)
    if not len(tail):
        return None, 0
    auc = metrics(
        tail[LABEL].to_numpy(dtype="float64"), tail["probability"].to_numpy(dtype="float64")
    )["roc_auc"]
    return (None if auc is None or math.isnan(auc) else auc), len(tail)


def gather(
    settings: Settings,
    config: ModelConfig,
    ct: CTConfig,
    now: datetime,
    *,
    champion: Version | None,
    requests: list[str],
    last_tick: datetime | None,
) -> tuple[Evidence, dict[str, Any]]:
    """The evidence of one tick, and notes on what could not be measured and where the
    analysis it rests on was kept."""
    notes: dict[str, Any] = {}
    facts = None if champion is None else Champion.of(champion)
    labelled_new = None
    if facts is not None and facts.trained_until is not None:
        known = known_times(outcome_source(feature_store.open_store(settings), config))
        labelled_new = labelled_since(known, facts, now)
    auc, labelled_n, weighted, drifted = None, 0, None, []
    try:  # a bad `monitoring:` section is no evidence, as no log is: the other triggers judge
        monitoring_config = load_monitoring_config(config)
        period = Period(now - timedelta(days=ct.lookback_days), now)
        outcome = analyse(settings, config, monitoring_config, period, labels_optional=True)
        notes["monitoring"] = str(_keep(settings, outcome.result.to_json(), now))
        mine = None if facts is None else outcome.result.version(facts.version)
        if facts is not None and mine is not None:
            rows = outcome.rows[outcome.rows["model_version"].astype(str) == facts.version]
            against = ct.drift.against if ct.drift else "training"
            if against == "training":  # monitoring's own figure
                weighted, drifted = mine.drift.drifted_importance, mine.drift.drifted
            else:
                reference = outcome.references[facts.version].against(against)
                weighted, drifted = VersionAnalysis(reference, monitoring_config).drift_summary(
                    rows
                )
            notes["drift_against"] = against
            labelled_rows = rows[rows[LABEL].notna()]
            last = ct.performance.last_labelled if ct.performance else len(labelled_rows)
            auc, labelled_n = recent_auc(labelled_rows, last)
    except BadInput as exc:  # no log yet, no predictions in the lookback: no evidence
        notes["monitoring"] = f"no evidence: {exc}"
    evidence = Evidence(
        now=now,
        last_tick=last_tick,
        requests=requests,
        champion=None if facts is None else facts.version,
        champion_test_auc=None if facts is None else facts.test_auc,
        labelled_since_training=labelled_new,
        recent_auc=auc,
        recent_labelled=labelled_n,
        drifted_importance=weighted,
        drifted=drifted,
    )
    return evidence, notes


def _keep(settings: Settings, text: str, now: datetime) -> Path:
    """The analysis a tick judged by, as a file of its own; the oldest beyond
    `KEPT_EVIDENCE` are removed."""
    folder = ct_dir(settings) / "evidence"
    folder.mkdir(exist_ok=True)
    # Named by the moment judged and the tick itself: ticks at the same moment (a replay's
    # fixed clock, `--now` twice) keep their own evidence.
    stamp = f"{now.strftime('%Y%m%dT%H%M%S')}-{time.time_ns()}-{uuid.uuid4().hex[:6]}"
    path = folder / f"monitoring-{stamp}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    kept = sorted(folder.glob("monitoring-*.json"), key=lambda p: p.stat().st_mtime)
    for old in kept[:-KEPT_EVIDENCE]:
        old.unlink(missing_ok=True)
    return path
