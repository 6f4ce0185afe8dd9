"""What the registry hands out and refuses with: a registered version as the project reads it,
the registry's errors, and who is acting. Free of MLflow: every room may import these."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from skewless.errors import BadInput, SkewlessError
from skewless.records import VersionTags

MODEL_DIR = "model"  # the artifact folder of a pipeline's parent run
# The gate's verdict on a version (written by loadtests/records.py, read by move_champion):
# the artifact path of its report, whose verdict is a `GateVerdict`.
GATE_STATUS, GATE_SHA256, GATE_REPORT = "gate.status", "gate.sha256", "gate.report"


def operator() -> str:
    """Who is acting, for the record: user@host, or SKEWLESS_OPERATOR where a CI job acts
    for somebody."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return os.environ.get("SKEWLESS_OPERATOR") or f"{user}@{socket.gethostname()}"


class RegistryError(BadInput):
    """A registry operation that cannot be done as asked (said why, nothing changed)."""


class PromotionRefused(RegistryError):
    """The version may not become champion; the registry is unchanged."""


class RegistryUnavailable(SkewlessError):
    """The registry's store failed (locked, read-only, unreachable): the action stopped and
    nothing was changed."""


@dataclass(frozen=True)
class Version:
    """A registered model version as the project reads it."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]  # every tag, as stored: the pipeline's and the release steps'

    @property
    def record(self) -> VersionTags:
        """The pipeline's tags, typed."""
        return VersionTags.from_tags(self.tags)

    @property
    def identity(self) -> str:
        """Version and artifact hash: what changes when a different model is behind it."""
        return f"{self.version}:{self.tags.get('sha256', '')}"


def run_of(version: Version) -> str:
    """The run that produced a version (every version registered here has one)."""
    if not version.run_id:
        raise RegistryError(f"{version.name} version {version.version} has no run")
    return version.run_id


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    sha256: str
    artifacts: Path  # local copy of the run's model folder
