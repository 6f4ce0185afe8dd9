"""The controller's decision records: every tick is recorded whatever it decides, with its
evidence, in `<state_dir>/ct/decisions.jsonl` (what `skewless ct status`, the cooldown and the
schedule read) and as a run of the MLflow experiment `<model>-ct`.

One writer (`record`) and one reader (`decisions`). Records written before the notes were
kept apart from the outcome (the notes inside `outcome`, `adopted` absent on the oldest) are
read as well.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from skewless.models.configuration import ModelConfig
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings

from .lock import ct_dir
from .triggers import Verdict

DECISIONS_FILE = "decisions.jsonl"


@dataclass(frozen=True)
class Outcome:
    """What acting on a retrain decision did."""

    result: str
    champion_before: str | None = None
    champion_after: str | None = None
    # It serves now, or (deploy off) it waits as a blessed challenger for a person's deploy.
    adopted: bool = False
    train_exit: int | None = None
    version: str | None = None  # the version the pipeline registered
    deploy_exit: int | None = None
    release: str | None = None  # why the release path stopped, from its recorded verdicts


@dataclass(frozen=True)
class Decision:
    at: str  # the moment evaluated ("now": the clock, or --now)
    evaluated_at: str  # wall clock
    action: str  # none | cooldown | locked | retrain
    reason: str
    verdicts: list[Verdict] = field(default_factory=list)
    # What gathering the evidence noted: the requests acted on, where the evidence is, ...
    notes: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None  # a retrain's
    seconds: float = 0.0

    @property
    def moment(self) -> datetime:
        return datetime.fromisoformat(self.at)

    @property
    def fired(self) -> list[str]:
        return [v.trigger for v in self.verdicts if v.fired]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> Decision:
        verdicts = [Verdict(**v) for v in raw.get("verdicts", [])]
        notes = dict(raw.get("notes") or {})
        outcome = raw.get("outcome")
        if "notes" not in raw and isinstance(outcome, dict):  # older: notes inside the outcome
            known = {f.name for f in fields(Outcome)}
            notes = {k: v for k, v in outcome.items() if k not in known}
            outcome = {k: v for k, v in outcome.items() if k in known} or None
            if outcome is not None and "adopted" not in outcome:  # older still: it moved
                outcome["adopted"] = outcome.get("champion_after") != outcome.get("champion_before")
        return cls(
            at=raw["at"],
            evaluated_at=raw.get("evaluated_at", raw["at"]),
            action=raw["action"],
            reason=raw.get("reason", ""),
            verdicts=verdicts,
            notes=notes,
            outcome=None if not outcome else Outcome(**{"result": "", **outcome}),
            seconds=float(raw.get("seconds", 0.0)),
        )


def decisions(settings: Settings) -> list[Decision]:
    path = ct_dir(settings) / DECISIONS_FILE
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [Decision.from_record(json.loads(line)) for line in lines if line.strip()]


def record(settings: Settings, config: ModelConfig, decision: Decision) -> None:
    line = json.dumps(decision.as_dict(), default=str)
    with (ct_dir(settings) / DECISIONS_FILE).open("a") as out:
        out.write(line + "\n")  # one write of one line: a reader never sees half a record
    registry = ModelRegistry.of(settings)
    run_id = registry.start_run(registry.experiment_id(f"{config.name}-ct"))
    metrics = {
        f"{v.trigger}.{name}": float(value)
        for v in decision.verdicts
        for name, value in v.figures.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    tags = {
        "action": decision.action,
        "reason": decision.reason[:4000],
        "at": decision.at,
        "fired": ",".join(decision.fired),
    }
    registry.record_run(run_id, tags=tags, metrics=metrics)
    registry.log_json(run_id, decision.as_dict(), "decision.json")
    registry.end_run(run_id)


def retrains(settings: Settings) -> list[tuple[datetime, bool]]:
    """Every recorded retrain: its moment, and whether its model was adopted."""
    return [
        (d.moment, d.outcome is not None and d.outcome.adopted)
        for d in decisions(settings)
        if d.action == "retrain"
    ]


def last_tick(settings: Settings) -> datetime | None:
    """The last moment evaluated (a locked tick evaluated nothing)."""
    evaluated = [d.moment for d in decisions(settings) if d.action != "locked"]
    return max(evaluated) if evaluated else None
