"""What the deployment steps leave in MLflow: each verdict in the run of the model version
(tags, metrics, the reports as artifacts) and, on the version itself, the gate's result for
its exact artifact hash, which `ModelRegistry.move_champion` reads back."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skewless.registry.adapter import ModelRegistry
from skewless.registry.versions import GATE_REPORT, GATE_SHA256, GATE_STATUS, run_of

from .gate_report import GateReport

ARTIFACT_DIR = "deployment"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def record_gate(registry: ModelRegistry, report: GateReport, files: list[Path]) -> str:
    """The report files into the version's run, its verdict on run and version. Returns the
    artifact path of report.json."""
    run_id = run_of(registry.version(report.model_name, report.version))
    folder = f"{ARTIFACT_DIR}/gate-{_stamp()}"
    for path in files:
        registry.log_artifact(run_id, path, folder)
    verdict = "passed" if report.passed else "failed"
    metrics = {
        f"gate_server_{key}_ms": value
        for key, value in (report.server.get("latency_ms") or {}).items()
    }
    for protocol, stats in report.client.items():
        for key in ("50%", "95%", "99%"):
            if key in stats["percentiles_ms"]:
                name = f"gate_client_{protocol}_p{key.rstrip('%')}_ms"
                metrics[name] = stats["percentiles_ms"][key]
    registry.record_run(run_id, tags={"skewless.gate.verdict": verdict}, metrics=metrics)
    report_artifact = f"{folder}/report.json"
    registry.tag_version(
        report.model_name,
        report.version,
        {
            GATE_STATUS: verdict,
            GATE_SHA256: report.sha256,
            GATE_REPORT: report_artifact,
            "gate.at": report.finished_at,
        },
    )
    return report_artifact


def record_step(
    registry: ModelRegistry,
    model_name: str,
    version: str,
    step: str,
    verdict: str,
    detail: dict[str, Any],
) -> None:
    """A deployment step's verdict (canary, promote, rollback) in the version's run."""
    run_id = run_of(registry.version(model_name, version))
    registry.record_run(run_id, tags={f"skewless.{step}.verdict": verdict})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{step}.json"
        path.write_text(json.dumps({"verdict": verdict, **detail}, indent=2, default=str))
        registry.log_artifact(run_id, path, f"{ARTIFACT_DIR}/{step}-{_stamp()}")
    registry.tag_version(model_name, version, {f"{step}.status": verdict})
