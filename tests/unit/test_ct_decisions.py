"""Are the controller's decision records read back as written, older records included?"""

from __future__ import annotations

from monitoring.ct.decisions import Decision, Outcome
from monitoring.ct.triggers import Verdict


def test_a_decision_reads_back_as_it_was_recorded() -> None:
    decision = Decision(
        at="2013-09-16T00:00:00+00:00",
        evaluated_at="2026-12-06T00:00:00+00:00",
        action="retrain",
        reason="drift: ...",
        verdicts=[Verdict("drift", True, "drifted", {"drifted_importance": 0.4})],
        notes={"requests": [], "drift_against": "recent"},
        outcome=Outcome("version 3 is not blessed", "1", "1", False, 0, "3"),
        seconds=1.5,
    )
    assert Decision.from_record(decision.as_dict()) == decision
    assert decision.fired == ["drift"]


def test_older_records_keep_their_meaning() -> None:
    """Recorded before the notes were kept apart: notes inside the outcome; the oldest have
    no `adopted` (then: adopted when the champion moved)."""
    outcome = {
        "requests": ["a.json"],
        "monitoring": "report.html",
        "champion_before": "1",
        "champion_after": "2",
        "train_exit": 0,
        "version": "2",
        "result": "version 2 promoted",
    }
    raw = {
        "at": "2013-09-16T00:00:00+00:00",
        "evaluated_at": "x",
        "action": "retrain",
        "reason": "r",
        "verdicts": [],
        "seconds": 2.0,
        "outcome": outcome,
    }
    old = Decision.from_record(raw)
    assert old.notes == {"requests": ["a.json"], "monitoring": "report.html"}
    assert old.outcome is not None and old.outcome.adopted and old.outcome.version == "2"
    raw["outcome"] |= {"champion_after": "1"}
    assert Decision.from_record(raw).outcome.adopted is False  # type: ignore[union-attr]
    quiet = {
        "at": raw["at"],
        "action": "none",
        "reason": "no trigger fired",
        "outcome": {"requests": [], "monitoring": "report.html"},
    }
    assert Decision.from_record(quiet).outcome is None
