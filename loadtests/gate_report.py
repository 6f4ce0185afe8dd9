"""The gate's report: every check by stage, why it stopped, the server's and the clients' view
of the load, the skew check; written as report.json, its verdict read back by the registry."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from skewless.records import CheckResult, GateVerdict


@dataclass
class GateReport:
    model_name: str
    version: str
    sha256: str
    blessed: bool
    config: dict[str, Any]
    out_dir: str
    started_at: str
    finished_at: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    stopped: str | None = None  # why the gate ended early, if it did
    server: dict[str, Any] = field(default_factory=dict)  # latency and errors, service view
    client: dict[str, Any] = field(default_factory=dict)  # per protocol, locust's view
    skew: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)  # the cores' use during the load

    @property
    def verdict(self) -> GateVerdict:
        """What the registry and the controller read back from report.json."""
        return GateVerdict(
            tuple(self.checks),
            self.stopped,
            self.model_name,
            self.version,
            self.sha256,
            self.finished_at,
        )

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), **self.verdict.to_report()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
