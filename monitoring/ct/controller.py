"""The continuous-training controller: evaluate the triggers, and when one fires (and the
cooldown allows), retrain as of now and send the new version through the release path.

One evaluation is a `tick`: idempotent, cron-able, and recorded whatever it decides
(`decisions.py`). It holds the pipeline lock (`lock.py`) while it evaluates and acts, gathers
its evidence (`evidence.py`), judges it with the triggers (`triggers.py`), and acts through
the commands (`acting.py`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from skewless.command_support import run_command
from skewless.models.configuration import ModelConfig
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings

from . import decisions, requests
from .acting import Runner, retrain
from .config import CTConfig
from .decisions import Decision
from .evidence import gather
from .lock import lock_holder, pipeline_lock
from .triggers import evaluate, ready_at


def tick(
    settings: Settings,
    config: ModelConfig,
    ct: CTConfig,
    now: datetime,
    *,
    runner: Runner = run_command,
) -> Decision:
    started = time.perf_counter()
    wall = datetime.now(UTC).isoformat()
    with pipeline_lock(settings) as held:
        if held is None:
            holder = lock_holder(settings)
            why = f"another controller holds the pipeline lock (pid, since: {holder})"
            decision = Decision(now.isoformat(), wall, "locked", why)
        else:
            decision = _decide(settings, config, ct, now, runner, wall, held)
        decision = replace(decision, seconds=round(time.perf_counter() - started, 3))
        decisions.record(settings, config, decision)
    return decision


def _decide(
    settings: Settings,
    config: ModelConfig,
    ct: CTConfig,
    now: datetime,
    runner: Runner,
    wall: str,
    lock_fd: int,
) -> Decision:
    asked = requests.pending(settings)
    champion = ModelRegistry.of(settings).by_alias(config.name, CHAMPION)
    evidence, notes = gather(
        settings,
        config,
        ct,
        now,
        champion=champion,
        requests=[r.why for r in asked],
        last_tick=decisions.last_tick(settings),
    )
    notes["requests"] = [str(r.path) for r in asked]
    verdicts = evaluate(evidence, ct)
    fired = [v for v in verdicts if v.fired]
    if not fired:
        return Decision(now.isoformat(), wall, "none", "no trigger fired", verdicts, notes)
    why = "; ".join(f"{v.trigger}: {v.reason}" for v in fired)
    on_demand = any(v.trigger == "on_demand" for v in fired)
    cooling = _cooling(settings, ct, now)
    if cooling and not on_demand:  # a person's explicit request is not held back by it
        return Decision(
            now.isoformat(), wall, "cooldown", f"{why} (held: {cooling})", verdicts, notes
        )
    outcome = retrain(settings, config, ct, now, runner, lock_fd)
    requests.done(asked)  # exactly those acted on; a newer one waits for the next tick
    return Decision(now.isoformat(), wall, "retrain", why, verdicts, notes, outcome)


def _cooling(settings: Settings, ct: CTConfig, now: datetime) -> str | None:
    past = decisions.retrains(settings)
    ready = ready_at(past, ct.cooldown_hours)
    if ready is None or now >= ready:
        return None
    last, adopted = past[-1]
    refused = "" if adopted else " (longer after refused retrains)"
    return (
        f"the last retrain was at {last.isoformat()}; cooldown until {ready.isoformat()}{refused}"
    )
