"""The README's `skewless train && skewless deploy` on the embedded default (SQLite online
store, no servers): the gate at its real rate and client budgets (the service's doubled for
a shared test host), with its load kept short (3 s at 200 requests/s; the full-length run is
reported in docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings
from tests.support.repos import CHECKOUT
from training.config import load_pipeline_config
from training.pipeline import Pipeline

from .serving_setup import SMALL_PIPELINE

GATE = CHECKOUT / "loadtests" / "configs" / "gate.yaml"


def test_train_then_deploy_passes_the_gate_on_the_embedded_default(
    sqlite_repo: Settings, tmp_path: Path
) -> None:
    settings = sqlite_repo.model_copy(update={"state_dir": tmp_path / "state"})
    pipeline_yaml = tmp_path / "pipeline.yaml"
    pipeline_yaml.write_text(SMALL_PIPELINE)
    for _ in range(2):  # the quickstart's champion, then `skewless train`'s challenger
        result = Pipeline(settings, load_pipeline_config(pipeline_yaml), progress=print).run()
        assert result.version is not None, result.verdict
    gate = yaml.safe_load(GATE.read_text())  # the real rate and client budgets, a short load
    gate["load"]["seconds"] = 3
    # The service's own budgets doubled: on the shared 2-core test host, with locust beside the
    # service, its p50 at 200 requests/s measured 4.8-6.0 ms with the code before and after
    # issue 23 alike (docs/benchmarks.md) against the real 5 ms: that is the host, and this test
    # is about the path (train, gate, canary, promotion) on the embedded default.
    gate["budgets"]["server"] = {k: 2 * v for k, v in gate["budgets"]["server"].items()}
    gate["skew"] = {"sample": 50}
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(gate))
    canary = {
        "share": 0.5,
        "seconds": 3,
        "replay_rate": 40,
        "thresholds": {
            "max_error_ratio": 0.01,
            "max_error_ratio_increase": 0.01,
            "max_p99_ratio": 5.0,
            "max_score_ks": 0.5,
            "min_predictions": 20,
        },
    }
    (tmp_path / "canary.yaml").write_text(yaml.safe_dump(canary))
    env = {
        **os.environ,
        **settings.as_env(),
        "SKEWLESS_MODEL_FILE": str(pipeline_yaml),
        "PYTHONPATH": str(CHECKOUT),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "deploy",
            "--gate-config",
            str(tmp_path / "gate.yaml"),
            "--canary-config",
            str(tmp_path / "canary.yaml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    reports = sorted((settings.state_dir / "gates").glob("v2-*/report.json"))
    report = json.loads(reports[-1].read_text())
    assert report["passed"], (report["checks"], report["host"])
    latency = report["server"]["latency_ms"]
    assert latency["p50"] <= gate["budgets"]["server"]["p50_ms"], latency
    registry = ModelRegistry(settings.state_dir)
    champion = registry.by_alias("departure_delay", CHAMPION)
    assert champion is not None and str(champion.version) == "2"
