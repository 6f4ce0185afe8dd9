"""From a candidate to production: gate (report written and recorded), then canary, then
promotion; `deploy` chains them and stops at the first step that fails. Every verdict is in
the MLflow run of the model version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from skewless.models.configuration import load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.registry.versions import RegistryError
from skewless.settings import Settings

from .canary import CanaryReport, run_canary
from .config import CanaryConfig, GateConfig
from .gate import Gate
from .gate_report import GateReport
from .records import record_gate, record_step
from .report import write_report


@dataclass(frozen=True)
class GateOutcome:
    report: GateReport
    json_path: Path
    html_path: Path


def resolve_version(settings: Settings, version: str | None, alias: str | None) -> str:
    registry = ModelRegistry.of(settings)
    name = load_model_config(settings.model_file).name
    if version:
        return str(registry.version(name, version).version)
    found = registry.by_alias(name, alias or CHALLENGER)
    if found is None:
        raise RegistryError(
            f"{name} has no {alias or CHALLENGER!r} version; train one with `skewless train`"
        )
    return str(found.version)


def gate_dir(settings: Settings, version: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return settings.state_dir / "gates" / f"v{version}-{stamp}"


def run_gate(
    settings: Settings,
    version: str,
    config: GateConfig,
    *,
    out_dir: Path | None = None,
    program: list[str] | None = None,
    progress: Callable[[str], None] = print,
) -> GateOutcome:
    """The gate, its report files, and its verdict recorded on the version. An interrupted
    gate writes its report but records nothing."""
    out = out_dir or gate_dir(settings, version)
    gate = Gate(settings, version, config, out, program=program, progress=progress)
    try:
        report = gate.run()
    except KeyboardInterrupt:
        write_report(gate.report, out)
        raise
    json_path, html_path = write_report(report, out)
    record_gate(ModelRegistry.of(settings), report, [json_path, html_path])
    return GateOutcome(report, json_path, html_path)


def deploy(
    settings: Settings,
    gate_config: GateConfig,
    canary_config: CanaryConfig,
    *,
    version: str | None,
    url: str | None,
    by: str,
    progress: Callable[[str], None] = print,
) -> tuple[GateOutcome, CanaryReport | None]:
    registry = ModelRegistry.of(settings)
    name = load_model_config(settings.model_file).name
    candidate = resolve_version(settings, version, None)
    if not registry.version(name, candidate).record.blessed:
        raise RegistryError(f"version {candidate} is not blessed by its pipeline run")
    champion = registry.by_alias(name, CHAMPION)
    if champion is not None and str(champion.version) == candidate:
        raise RegistryError(f"version {candidate} is already the champion")
    progress(f"deploy: {name} version {candidate}: gate, canary, promotion")
    gate = run_gate(settings, candidate, gate_config, progress=progress)
    progress(f"gate report: {gate.html_path}")
    if not gate.report.passed:
        record_step(registry, name, candidate, "deploy", "stopped at the gate", {})
        return gate, None
    challenger = registry.by_alias(name, CHALLENGER)
    if challenger is None or str(challenger.version) != candidate:
        registry.set_alias(name, CHALLENGER, candidate)  # gated: the canary routes to it
    canary = run_canary(
        settings,
        canary_config,
        gate.json_path.parent / "canary",
        url=url,
        by=by,
        progress=progress,
    )
    record_step(registry, name, candidate, "deploy", canary.action, {"gate": str(gate.json_path)})
    return gate, canary
