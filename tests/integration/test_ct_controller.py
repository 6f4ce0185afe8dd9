"""Does the controller act only when it should, one pipeline at a time, and record why?"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from monitoring.ct.config import CTConfig, DistributionChange
from monitoring.ct.controller import tick
from monitoring.ct.decisions import decisions
from monitoring.ct.lock import pipeline_lock
from monitoring.ct.requests import request_retrain
from skewless.models.configuration import load_model_config
from skewless.quality.monitoring_result import MonitoringResult
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings

from .monitoring_setup import MonitoringWorld

SEPT_16 = datetime(2013, 9, 16, tzinfo=UTC)  # after the September log's fortnight


class Commands:
    """Stands in for `skewless train` / `deploy`: records what the controller ran."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None, **more: object) -> int:
        self.calls.append(args)
        self.env = env or {}
        self.passed_fds = more.get("pass_fds")  # the lock, kept by the pipeline it runs
        return self.status


def _own_state(world: MonitoringWorld, tmp_path: Path) -> Settings:
    """The world's registry and the September log (v1, trained in March, is champion), in a
    state folder of this test's own."""
    shutil.copytree(world.settings.state_dir, tmp_path / "state")
    return world.with_log("september", state_dir=tmp_path / "state")


def _files(folder: Path) -> dict[str, float]:
    """Every file under a folder, with its modification time."""
    return {str(p): p.stat().st_mtime for p in folder.rglob("*") if p.is_file()}


def _tick(world: MonitoringWorld, settings: Settings, ct: CTConfig, runner: Commands):  # type: ignore[no-untyped-def]
    config = load_model_config(world.config_file(0))
    return tick(settings, config, ct, SEPT_16, runner=runner)


def test_drift_triggers_a_retrain_as_of_now_and_a_failed_pipeline_leaves_the_champion(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    settings = _own_state(monitoring_world, tmp_path)
    champion = ModelRegistry(settings.state_dir).by_alias("departure_delay", CHAMPION)
    assert champion is not None and str(champion.version) == "1"
    failing = Commands(status=1)
    ct = CTConfig(drift=DistributionChange(drifted_importance=0.2), performance=None)
    operators = _files(settings.state_dir / "monitoring")
    decision = _tick(monitoring_world, settings, ct, failing)
    assert decision.action == "retrain", decision.reason
    assert "drift:" in decision.reason
    assert failing.calls == [("train", "--as-of", SEPT_16.isoformat())]  # no deploy after it
    assert failing.passed_fds  # the pipeline holds the lock too, should the controller die
    # ... and acts on this controller's repository and state, not the environment's defaults
    assert failing.env["SKEWLESS_REPO_PATH"] == str(settings.repo_path)
    assert failing.env["SKEWLESS_STATE_DIR"] == str(settings.state_dir)
    assert decision.outcome is not None
    assert "the pipeline stopped (exit 1): the champion stays" in decision.outcome.result
    assert decision.outcome.champion_before == decision.outcome.champion_after == "1"
    recorded = decisions(settings)[-1]  # what was decided is what is read back
    assert (recorded.action, recorded.reason, recorded.outcome) == (
        decision.action,
        decision.reason,
        decision.outcome,
    )
    # The tick kept the analysis it judged by under ct/, and never wrote the operator's report
    # or history (`skewless monitor`'s alone).
    evidence = Path(decision.notes["monitoring"])
    assert evidence.parent == settings.state_dir / "ct" / "evidence" and evidence.exists()
    assert MonitoringResult.from_json(evidence.read_text()).version("1") is not None
    assert _files(settings.state_dir / "monitoring") == operators
    drift = next(v for v in recorded.verdicts if v.trigger == "drift")
    assert drift.fired and drift.figures["drifted_importance"] >= 0.2


def test_nothing_fires_below_the_thresholds_and_the_cooldown_holds_a_firing_trigger(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    settings = _own_state(monitoring_world, tmp_path)
    calm = CTConfig(drift=DistributionChange(drifted_importance=1.0), performance=None)
    runner = Commands(status=0)
    assert _tick(monitoring_world, settings, calm, runner).action == "none"
    fires = CTConfig(drift=DistributionChange(drifted_importance=0.2), performance=None)
    assert _tick(monitoring_world, settings, fires, runner).action == "retrain"
    held = _tick(monitoring_world, settings, fires, runner)
    assert held.action == "cooldown" and "cooldown until" in held.reason
    assert len(runner.calls) == 1  # only the first retrain ran anything
    request_retrain(settings, "a person asked")  # on demand is not held back
    asked = _tick(monitoring_world, settings, fires, runner)
    assert asked.action == "retrain" and "a person asked" in asked.reason
    assert not list((settings.state_dir / "ct" / "requests").glob("*.json"))  # consumed


HOLDER = """
import sys, time
from pathlib import Path
from monitoring.ct.lock import pipeline_lock
from skewless.settings import Settings
with pipeline_lock(Settings(state_dir=Path(sys.argv[1]))) as held:
    print("held" if held else "refused", flush=True)
    time.sleep(600)
"""


def test_a_second_controller_is_refused_and_a_killed_one_leaves_no_lock(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    settings = _own_state(monitoring_world, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(settings.state_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        runner = Commands(status=0)
        request_retrain(settings, "while another controller runs")
        ct = CTConfig()
        refused = _tick(monitoring_world, settings, ct, runner)
        assert refused.action == "locked" and str(holder.pid) in refused.reason
        assert runner.calls == []
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no chance to unlock
        holder.wait(10)
    time.sleep(0.1)
    with pipeline_lock(settings) as held:
        assert held  # the kernel dropped the dead holder's lock
    recovered = _tick(monitoring_world, settings, ct, runner)
    assert recovered.action == "retrain"  # the pending request, now acted on
    assert [
        json.loads(line)["action"]
        for line in (settings.state_dir / "ct" / "decisions.jsonl").read_text().splitlines()
    ] == ["locked", "retrain"]


def test_drift_is_measured_since_the_champion_was_made_unless_told_training(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    """v1 learned March 1-22 and was tested on March 22-29; it serves the first half of
    March. Against its training window that is no change; against its test window (the
    default, change since it was made) the first half of March is earlier data: measured on
    its own reference, registered with the version."""
    settings = _own_state(monitoring_world, tmp_path)
    settings = monitoring_world.with_log("march", state_dir=settings.state_dir)
    runner = Commands(status=0)
    config = load_model_config(monitoring_world.config_file(0))
    march_16 = datetime(2013, 3, 16, tzinfo=UTC)
    figures = {}
    for against in ("training", "recent"):
        ct = CTConfig(
            drift=DistributionChange(drifted_importance=1.0, against=against),
            performance=None,
            lookback_days=15,
        )
        decision = tick(settings, config, ct, march_16, runner=runner)
        assert decision.notes["drift_against"] == against
        drift = next(v for v in decision.verdicts if v.trigger == "drift")
        figures[against] = drift.figures["drifted_importance"]
    assert figures["training"] < 0.05  # its own training fortnight
    assert figures["recent"] > figures["training"]  # another reference, another figure
    reference = json.loads(
        next((settings.state_dir / "artifacts").rglob("reference.json")).read_text()
    )
    assert reference["recent_schema"]["rows"] > 0
