"""Records one room writes and another reads, each with one writer and one reader.

- `VersionTags`: what the training pipeline registers on a model version (hash, blessed,
  windows, when its labels were taken), read by the gate, promotion, the controller and the
  backtest. Stored as MLflow version tags: scalars as JSON scalars (`true`, `0.77661`), times
  in ISO 8601, the windows as a JSON object.
- `StepVerdict` / `GateVerdict`: what a release step decided and why, read back from its
  report by the registry (is the gate passed for this artifact?) and the controller (why did
  the release stop?).

Registries written before these records keep working: the readers take the older forms (the
windows as a Python literal; no `data_until` tag) and say which tags they read that way
(`VersionTags.legacy`); `skewless migrate-registry` rewrites them once.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from skewless.models.configuration import Windows

# The tag names: one place.
SHA256, BLESSED, FEATURE_SERVICE, WINDOWS = "sha256", "blessed", "feature_service", "windows"
GIT_COMMIT, FEAST_REGISTRY = "git_commit", "feast_registry_sha256"
TEST_ROC_AUC, DATA_UNTIL = "test_roc_auc", "data_until"
DEFINITIONS = "definitions"  # the fingerprint of the feature definitions it was trained on
NAMESPACE = "namespace"  # the Feast project it was trained on (skewless/features/namespaces.py)


@dataclass(frozen=True)
class VersionTags:
    sha256: str = ""
    blessed: bool = False
    feature_service: str = ""
    windows: Windows | None = None
    git_commit: str = ""
    feast_registry_sha256: str = ""
    test_roc_auc: float | None = None
    # The moment its labels were taken (`--as-of`, else its test window's end): labels that
    # became known after it are new data to this version.
    data_until: datetime | None = None
    definitions: str = ""  # `definitions_fingerprint` of its features (empty: registered before)
    namespace: str = ""  # the Feast project it read (empty: registered before namespaces)
    legacy: tuple[str, ...] = field(default=(), compare=False)  # tags read in an older form

    @property
    def trained_until(self) -> datetime | None:
        """The one "trained until" of the controller and the backtest: what this version knew
        (its `data_until`; a version registered before that tag: its test window's end)."""
        if self.data_until is not None:
            return self.data_until
        return None if self.windows is None else self.windows.test.end

    @property
    def fitted_until(self) -> datetime | None:
        """The end of the rows it fitted on (its validation window: early stopping and the
        refit saw it); a comparison with it is fair only after this moment."""
        return None if self.windows is None else self.windows.validation.end

    def to_tags(self) -> dict[str, str]:
        tags = {
            SHA256: self.sha256,
            BLESSED: json.dumps(self.blessed),
            FEATURE_SERVICE: self.feature_service,
            GIT_COMMIT: self.git_commit,
            FEAST_REGISTRY: self.feast_registry_sha256,
        }
        if self.windows is not None:
            tags[WINDOWS] = self.windows.model_dump_json()
        if self.test_roc_auc is not None:
            tags[TEST_ROC_AUC] = f"{self.test_roc_auc:.5f}"
        if self.data_until is not None:
            tags[DATA_UNTIL] = self.data_until.isoformat()
        if self.definitions:
            tags[DEFINITIONS] = self.definitions
        if self.namespace:
            tags[NAMESPACE] = self.namespace
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> VersionTags:
        legacy: list[str] = []
        windows = _windows(tags.get(WINDOWS), legacy)
        if DATA_UNTIL not in tags and windows is not None:
            legacy.append(DATA_UNTIL)  # older versions: their test window's end stands for it
        return cls(
            sha256=tags.get(SHA256, ""),
            blessed=tags.get(BLESSED) == "true",  # JSON's true; "True" was never written
            feature_service=tags.get(FEATURE_SERVICE, ""),
            windows=windows,
            git_commit=tags.get(GIT_COMMIT, ""),
            feast_registry_sha256=tags.get(FEAST_REGISTRY, ""),
            test_roc_auc=_float(tags.get(TEST_ROC_AUC)),
            data_until=_time(tags.get(DATA_UNTIL)),
            definitions=tags.get(DEFINITIONS, ""),
            namespace=tags.get(NAMESPACE, ""),
            legacy=tuple(legacy),
        )


def _windows(text: str | None, legacy: list[str]) -> Windows | None:
    if not text:
        return None
    try:
        return Windows.model_validate_json(text)
    except ValidationError:
        pass
    try:  # written with str() of a dict before these records: a Python literal
        raw = ast.literal_eval(text)
        windows = Windows.model_validate(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, ValidationError):
        return None
    legacy.append(WINDOWS)
    return windows


def _float(text: str | None) -> float | None:
    try:
        return None if not text else float(text)
    except ValueError:
        return None


def _time(text: str | None) -> datetime | None:
    try:
        return None if not text else datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    stage: str = ""


@dataclass(frozen=True)
class StepVerdict:
    """What a release step (gate, canary) decided: its checks, and why it ended early if it
    did. The report the step writes holds these keys; `from_report` reads only them."""

    checks: tuple[CheckResult, ...] = ()
    stopped: str | None = None

    @property
    def passed(self) -> bool:
        return self.stopped is None and bool(self.checks) and all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        """Why it did not pass: the failed checks, else why it stopped; [] when it passed."""
        failed = [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]
        if not failed and self.stopped:
            failed = [f"stopped: {self.stopped}"]
        return failed

    def to_report(self) -> dict[str, Any]:
        return {
            "checks": [asdict(c) for c in self.checks],
            "stopped": self.stopped,
            "passed": self.passed,
        }

    @classmethod
    def from_report(cls, raw: Mapping[str, Any]) -> StepVerdict:
        return cls(_checks(raw), raw.get("stopped"))


@dataclass(frozen=True)
class GateVerdict(StepVerdict):
    """The gate's verdict on one version's exact artifact."""

    model_name: str = ""
    version: str = ""
    sha256: str = ""
    finished_at: str = ""

    def to_report(self) -> dict[str, Any]:
        return {
            **super().to_report(),
            "model_name": self.model_name,
            "version": self.version,
            "sha256": self.sha256,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_report(cls, raw: Mapping[str, Any]) -> GateVerdict:
        return cls(
            _checks(raw),
            raw.get("stopped"),
            str(raw.get("model_name", "")),
            str(raw.get("version", "")),
            str(raw.get("sha256", "")),
            str(raw.get("finished_at", "")),
        )

    def covers(self, version: str, sha256: str) -> bool:
        """Is this a verdict on exactly this version's artifact?"""
        return bool(sha256) and self.version == version and self.sha256 == sha256


def _checks(raw: Mapping[str, Any]) -> tuple[CheckResult, ...]:
    return tuple(
        CheckResult(
            str(c.get("name")), bool(c.get("passed")), str(c.get("detail")), str(c.get("stage", ""))
        )
        for c in raw.get("checks", [])
    )
