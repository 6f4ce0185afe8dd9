"""Registry states for tests: versions with a recorded sha256, and a gate verdict recorded by
the gate's own writer (`loadtests.records.record_gate`), so that what the registry reads back
is what the real gate writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from loadtests.gate_report import GateReport
from loadtests.records import record_gate
from loadtests.report import write_report
from skewless.records import CheckResult, VersionTags
from skewless.registry.adapter import ModelRegistry


def mlflow_client(registry: ModelRegistry) -> MlflowClient:
    """MLflow's own client on the registry's store: for a test that sets up a state the
    adapter would never write (an older registry's records, say)."""
    return MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)


def register_versions(registry: ModelRegistry, name: str, count: int) -> list[str]:
    experiment = registry.experiment_id(name)
    versions = []
    for i in range(count):
        run_id = registry.start_run(experiment)
        record = VersionTags(sha256=f"{i:064x}", blessed=True)
        versions.append(registry.register(name, run_id, record).version)
    return versions


def record_passed_gate(registry: ModelRegistry, name: str, version: str) -> None:
    sha256 = registry.version(name, version).tags["sha256"]
    report = GateReport(name, version, sha256, True, {}, "", "t0", "t1")
    report.checks = [CheckResult("server p99", True, "1 ms (budget 25 ms)", "load")]
    with tempfile.TemporaryDirectory() as tmp:
        json_path, _ = write_report(report, Path(tmp))
        record_gate(registry, report, [json_path])
