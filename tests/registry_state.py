"""Registry states for tests: versions with a recorded sha256, and a gate report that passed
for a version's exact artifact (what `skewless gate` records), written into a real MLflow."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from skewless.registry import GATE_REPORT, GATE_SHA256, GATE_STATUS, ModelRegistry


def register_versions(registry: ModelRegistry, name: str, count: int) -> list[str]:
    experiment = registry.experiment_id(name)
    versions = []
    for i in range(count):
        run = registry.client.create_run(experiment)
        tags = {"sha256": f"{i:064x}", "blessed": "true"}
        versions.append(str(registry.register(name, run.info.run_id, tags).version))
    return versions


def record_passed_gate(registry: ModelRegistry, name: str, version: str) -> None:
    found = registry.version(name, version)
    sha256 = found.tags["sha256"]
    report = {"passed": True, "version": version, "sha256": sha256, "finished_at": "t"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(json.dumps(report))
        registry.client.log_artifact(found.run_id, str(path), "deployment/gate-test")
    for key, value in (
        (GATE_STATUS, "passed"),
        (GATE_SHA256, sha256),
        (GATE_REPORT, "deployment/gate-test/report.json"),
    ):
        registry.client.set_model_version_tag(name, version, key, value)
