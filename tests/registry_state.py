"""Registry states for tests: versions with a recorded sha256, and a gate verdict recorded by
the gate's own writer (`loadtests.records.record_gate`), so that what the registry reads back
is what the real gate writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from loadtests.gate import Check, GateReport
from loadtests.records import record_gate
from loadtests.report import write_report
from skewless.registry import ModelRegistry


def register_versions(registry: ModelRegistry, name: str, count: int) -> list[str]:
    experiment = registry.experiment_id(name)
    versions = []
    for i in range(count):
        run = registry.client.create_run(experiment)
        tags = {"sha256": f"{i:064x}", "blessed": "true"}
        versions.append(str(registry.register(name, run.info.run_id, tags).version))
    return versions


def record_passed_gate(registry: ModelRegistry, name: str, version: str) -> None:
    sha256 = registry.version(name, version).tags["sha256"]
    report = GateReport(name, version, sha256, True, {}, "", "t0", "t1")
    report.checks = [Check("load", "server p99", True, "1 ms (budget 25 ms)")]
    with tempfile.TemporaryDirectory() as tmp:
        json_path, _ = write_report(report, Path(tmp))
        record_gate(registry, report, [json_path])
