"""The deployment gate, promotion, rollback, canary and deploy, on the real service, real
Redis, real MLflow and real locust. Seconds of load each: the full-length gate is a command.

The tests share one registry of their own (champion v1, challenger v2 from two real pipeline
runs, v3 a copy whose contract names a feature the service lacks), so that moving aliases here
never changes what the other serving tests serve. Each test that moves the champion starts
from champion v1 (`champion_v1`), so they pass in any order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from loadtests.config import CanaryConfig, GateConfig
from loadtests.deploy import GateOutcome, deploy, run_gate
from loadtests.promotion import promote, rollback
from skewless.hashing import sha256_file
from skewless.models.artifacts import MODEL_FILE
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.registry.versions import MODEL_DIR, PromotionRefused, RegistryError
from skewless.settings import Settings
from tests.support.registry_state import mlflow_client
from training.config import load_pipeline_config
from training.pipeline import Pipeline

from .serving_setup import SMALL_PIPELINE, ServingWorld

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]
FAULTY = [sys.executable, "-m", "tests.integration.faulty_service"]

QUICK_GATE = {
    "golden": {"requests": 10},
    "load": {"protocol": "rest", "rate": 40, "seconds": 3, "unknown_entity_share": 0.2},
    "budgets": {
        "server": {"p50_ms": 10, "p95_ms": 20, "p99_ms": 25},
        "client": {"p50_ms": 200, "p95_ms": 400, "p99_ms": 800},
        "max_error_ratio": 0.01,
        "min_rate_ratio": 0.8,
    },
    "skew": {"sample": 100},
}


def gate_config(**overrides: dict) -> GateConfig:
    merged = {k: {**v, **overrides.get(k, {})} for k, v in QUICK_GATE.items()}
    return GateConfig.model_validate(merged)


@dataclass
class DeployWorld:
    settings: Settings
    registry: ModelRegistry
    name: str
    folder: Path
    env: dict[str, str]

    def champion(self) -> str:
        found = self.registry.by_alias(self.name, CHAMPION)
        assert found is not None
        return str(found.version)


@pytest.fixture(scope="module")
def world(serving_world: ServingWorld, tmp_path_factory: pytest.TempPathFactory) -> DeployWorld:
    folder = tmp_path_factory.mktemp("deploy")
    settings = serving_world.settings.model_copy(update={"state_dir": folder / "state"})
    pipeline_yaml = folder / "pipeline.yaml"
    pipeline_yaml.write_text(SMALL_PIPELINE)
    for expected in ([CHAMPION, CHALLENGER], [CHALLENGER]):  # v1 champion, v2 challenger
        result = Pipeline(settings, load_pipeline_config(pipeline_yaml), progress=print).run()
        assert sorted(result.aliases) == sorted(expected), result.verdict
    registry = ModelRegistry(settings.state_dir)
    name = serving_world.config.name
    _register_unfit_copy(registry, name, folder)
    env = {
        **serving_world.env(),
        "SKEWLESS_STATE_DIR": str(settings.state_dir),
        "PYTHONPATH": str(PROJECT),
    }
    return DeployWorld(settings, registry, name, folder, env)


def _register_unfit_copy(registry: ModelRegistry, name: str, folder: Path) -> None:
    """Version 3: version 1's model with its first feature renamed, in the model file and the
    contract alike (a consistent artifact, sha256 recorded), to one the feature service does
    not have."""
    v1 = registry.version(name, "1")
    local = registry.fetch(v1, folder / "v1").artifacts
    contract = json.loads((local / "contract.json").read_text())
    first = contract["features"][0]["name"]
    contract["features"][0]["name"] = "no_such_feature"
    (local / "contract.json").write_text(json.dumps(contract))
    model = (local / MODEL_FILE).read_text().splitlines(keepends=True)
    model = [
        line.replace(f"={first} ", "=no_such_feature ", 1)
        if line.startswith("feature_names=")
        else line
        for line in model
    ]
    (local / MODEL_FILE).write_text("".join(model))
    run_id = registry.start_run(registry.experiment_id("unfit-copies"))
    for path in local.iterdir():
        registry.log_artifact(run_id, path, MODEL_DIR)
    registry.end_run(run_id)
    record = replace(v1.record, blessed=True, sha256=sha256_file(local / MODEL_FILE))
    version = registry.register(name, run_id, record)
    assert str(version.version) == "3"


@pytest.fixture(scope="module")
def healthy_gate(world: DeployWorld) -> GateOutcome:
    return run_gate(
        world.settings, "2", gate_config(), out_dir=world.folder / "gate-v2", progress=print
    )


def test_a_healthy_candidate_passes_the_gate(world: DeployWorld, healthy_gate: GateOutcome):
    report = healthy_gate.report
    assert report.passed, [c for c in report.checks if not c.passed]
    stages = {c.stage for c in report.checks}
    assert stages == {"preflight", "start", "contract", "load", "skew"}
    # Both views measured the same load: the server counted what locust sent.
    client = report.client["rest"]
    assert client["requests"] >= 0.8 * 40 * 3
    assert abs(report.server["requests"] - client["requests"]) <= 0.05 * client["requests"]
    assert 0 < report.server["latency_ms"]["p50"] <= report.server["latency_ms"]["p99"]
    assert report.skew["rows"] == 100 and report.skew["score_mismatches"] == 0
    saved = json.loads(healthy_gate.json_path.read_text())
    assert saved["passed"] is True and saved["sha256"] == report.sha256
    html = healthy_gate.html_path.read_text()
    assert "<svg" in html and "PASSED" in html
    assert (healthy_gate.json_path.parent / "locust-rest.html").exists()
    version = world.registry.version(world.name, "2")
    assert version.tags["gate.status"] == "passed"
    assert version.tags["gate.sha256"] == version.tags["sha256"]
    run = mlflow_client(world.registry).get_run(version.run_id)
    assert run.data.tags["skewless.gate.verdict"] == "passed"
    assert "gate_server_p99_ms" in run.data.metrics


def test_a_slow_candidate_fails_on_latency(world: DeployWorld, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAULT_DELAY_MS", "15")  # 60 % busy at 40/s: slow, not overloaded
    outcome = run_gate(
        world.settings, "1", gate_config(), out_dir=world.folder / "gate-slow", program=FAULTY
    )
    failed = {c.name for c in outcome.report.checks if not c.passed}
    assert "server p50" in failed  # every request waits 15 ms: the budget is 10
    assert "error ratio" not in failed
    assert outcome.report.server["latency_ms"]["p50"] >= 15
    assert not outcome.report.passed and outcome.report.stopped.startswith("load failed")


def test_a_candidate_that_errors_on_some_inputs_fails_on_error_ratio(
    world: DeployWorld, monkeypatch: pytest.MonkeyPatch
):
    # Unknown entities (20 % of the load, none of the golden requests) lack carrier_name.
    monkeypatch.setenv("FAULT_ERROR_WHEN_MISSING", "carrier_name")
    outcome = run_gate(
        world.settings, "1", gate_config(), out_dir=world.folder / "gate-errors", program=FAULTY
    )
    report = outcome.report
    passed = {c.name for c in report.checks if c.passed}
    failed = {c.name for c in report.checks if not c.passed}
    assert {"golden responses well-formed", "scores match batch scoring"} <= passed
    assert "error ratio" in failed
    # About the unknown share (0.2), on a sample of ~120 requests: a clean-clone run measured
    # exactly 0.1 once, so the lower bound only says "far above the 0.01 budget".
    assert 0.05 < report.server["error_ratio"] < 0.35
    assert report.client["rest"]["failures"] > 0


def test_a_build_whose_scores_differ_from_batch_scoring_fails_the_contract_before_load(
    world: DeployWorld, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FAULT_SCORE_OFFSET", "0.01")
    out = world.folder / "gate-offset"
    report = run_gate(world.settings, "1", gate_config(), out_dir=out, program=FAULTY).report
    failed = [c.name for c in report.checks if not c.passed]
    assert failed == ["scores match batch scoring"]
    assert report.stopped.startswith("contract failed") and report.server == {}
    assert not list(out.glob("locust-*"))  # no load was run


def test_a_candidate_whose_contract_does_not_fit_fails_before_load(world: DeployWorld):
    out = world.folder / "gate-unfit"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "gate", "--candidate", "3", "--out", str(out)],
        env={**os.environ, **world.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no_such_feature" in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is False and report["stopped"].startswith("preflight failed")
    assert [c["stage"] for c in report["checks"]] == ["preflight"]
    assert report["server"] == {} and not (out / "service.log").exists()  # nothing started


@pytest.fixture
def champion_v1(world: DeployWorld) -> None:
    """Champion v1, as the registry starts: a test that promoted v2 left it there, and v2's
    promotion is on record, so a rollback returns to v1."""
    if world.champion() != "1":
        world.registry.rollback_champion(world.name, by="test", why="back to the start")
    assert world.champion() == "1"


def test_promote_refuses_a_version_without_a_passed_gate(world: DeployWorld):
    before = world.champion()
    history = world.registry.champion_history(world.name)
    run_gate(world.settings, "3", gate_config(), out_dir=world.folder / "gate-unfit-again")
    with pytest.raises(PromotionRefused, match="last gate failed"):
        promote(world.settings, "3", by="test", why="try")  # its gate failed at preflight
    # A blessed version never gated at all: a fourth copy of the unfit contract's run.
    v3 = world.registry.version(world.name, "3")
    v4 = world.registry.register(world.name, v3.run_id, v3.record)  # its tags, no gate
    with pytest.raises(PromotionRefused, match="no gate report"):
        promote(world.settings, str(v4.version), by="test", why="try")
    done = subprocess.run(
        [sys.executable, "-m", "cli", "promote", str(v4.version), "--why", "try"],
        env={**os.environ, **world.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: version {v4.version} has no gate report" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    with pytest.raises(RegistryError, match="already the champion"):
        world.registry.move_champion(world.name, before, action="promote", by="t", why="t")
    assert world.champion() == before
    assert world.registry.champion_history(world.name) == history


@pytest.fixture
def running_service(world: DeployWorld) -> Iterator[str]:
    from serving.process import ServiceProcess

    service = ServiceProcess(world.env, world.folder / "following.log").start()
    try:
        yield service.url
    finally:
        service.stop()


def _served_version(url: str) -> str:
    return str(httpx.get(url + "/readyz", timeout=5).json()["model_version"])


def _wait_served(url: str, version: str, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if _served_version(url) == version:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{url} still serves {_served_version(url)}, not {version}")


def test_promote_then_rollback_are_served_within_the_poll_interval(
    world: DeployWorld, healthy_gate: GateOutcome, champion_v1: None, running_service: str
):
    poll = float(world.env["SKEWLESS_MODEL_POLL_SECONDS"])
    assert _served_version(running_service) == "1"
    move = promote(world.settings, "2", by="alice@test", why="gate passed")
    assert (move.version, move.previous, move.action) == ("2", "1", "promote")
    # One poll to notice, plus loading a small model: well under two poll intervals + 1 s.
    _wait_served(running_service, "2", 2 * poll + 1)
    assert world.registry.by_alias(world.name, CHALLENGER) is None  # it is champion now

    back = rollback(world.settings, by="bob@test", why="p99 regression seen by on-call")
    assert (back.version, back.previous, back.action) == ("1", "2", "rollback")
    _wait_served(running_service, "1", 2 * poll + 1)
    history = world.registry.champion_history(world.name)
    assert [(m.version, m.action, m.by) for m in history[-2:]] == [
        ("2", "promote", "alice@test"),
        ("1", "rollback", "bob@test"),
    ]
    assert history[-1].why == "p99 regression seen by on-call" and history[-1].at
    v2_tags = world.registry.run_tags(world.registry.version(world.name, "2").run_id)
    assert v2_tags["skewless.promote.verdict"] == "promoted"
    assert v2_tags["skewless.rollback.verdict"] == "rolled back"


def test_deploy_takes_the_challenger_through_gate_canary_and_promotion(
    world: DeployWorld, champion_v1: None
):
    canary = CanaryConfig.model_validate(
        {
            "share": 0.5,
            "seconds": 4,
            "replay_rate": 40,
            "thresholds": {
                "max_error_ratio": 0.01,
                "max_error_ratio_increase": 0.01,
                "max_p99_ratio": 5.0,
                "max_score_ks": 0.5,
                "min_predictions": 20,
            },
        }
    )
    gate, report = deploy(
        world.settings, gate_config(), canary, version="2", url=None, by="ci@test"
    )
    assert gate.report.passed
    assert report is not None and report.action == "promoted", report
    assert report.roles["challenger"]["predictions"] >= 20
    assert report.roles["champion"]["predictions"] >= 20  # sticky split: both got traffic
    # Two runs of one pipeline: the same model twice. On the same rows (the champion also
    # scores the challenger's requests) their scores agree; on the two sticky halves, which
    # hold different entities, they differed by KS 0.087.
    assert report.score_paired and report.score_ks < 0.02, report.score_ks
    assert world.champion() == "2"
    tags = world.registry.run_tags(world.registry.version(world.name, "2").run_id)
    assert tags["skewless.gate.verdict"] == "passed"
    assert tags["skewless.canary.verdict"] == "promoted"
    assert tags["skewless.deploy.verdict"] == "promoted"
    assert world.registry.canary_share(world.name) is None  # the canary's share is gone


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(f"{cmdline.parent.name}: {line}")
    return found


def test_an_interrupted_gate_leaves_no_process_or_port(world: DeployWorld):
    out = world.folder / "gate-interrupted"
    config = world.folder / "long-gate.yaml"
    config.write_text(json.dumps(gate_config(load={"seconds": 300}).model_dump()))
    gate = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "gate",
            "--candidate",
            "2",
            "--config",
            str(config),
            "--out",
            str(out),
        ],
        env={**os.environ, **world.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A test run started in the background of a shell has SIGINT ignored, and children
        # inherit that: the gate must see the Ctrl-C this test sends.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    ports: list[int] = []
    assert gate.stdout is not None
    for line in gate.stdout:
        ports += [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line)]
        if line.startswith("load:"):
            break
    else:
        raise AssertionError("the gate never reached its load stage")
    assert len(ports) == 2
    time.sleep(3)  # locust is running now
    assert _processes_mentioning(str(out / "locust-rest")), "locust should be running"
    gate.send_signal(signal.SIGINT)
    rest = gate.stdout.read()
    assert gate.wait(timeout=60) == 130, rest
    assert "interrupted" in rest
    assert _processes_mentioning(str(out)) == []
    assert _processes_mentioning(f"--rest-port {ports[0]}") == []
    assert all(_port_free(p) for p in ports)
    report = json.loads((out / "report.json").read_text())
    assert report["stopped"] == "interrupted" and report["passed"] is False
    shutil.rmtree(out / "prediction_log", ignore_errors=True)
