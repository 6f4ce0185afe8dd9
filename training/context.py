"""What every pipeline step is given (`StepContext`) and the shape of what it returns.

A step is a typed function `(context, earlier outputs) -> output dataclass`; it reads the
artifacts it needs from the run folder and writes its own there, listing them with their
sha256 in `files` (what resume verifies and what later steps' input keys hash). Each output
class can be read back from the run folder (`load`), so a reused step hands the next one the
same typed value as a step that ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureStore
from mlflow.entities.model_registry import ModelVersion

from skewless.aliases import CHAMPION
from skewless.registry import ModelRegistry, RegisteredModel

from .config import PipelineConfig

ExtractFn = Callable[[FeatureStore, PipelineConfig], pd.DataFrame]
Progress = Callable[[str], None]
# Called with "<step>" after each step and with named moments inside one
# ("register:registered"); the default does nothing. Tests kill the process from it.
Hook = Callable[[str], None]


def no_hook(_: str) -> None:
    return None


@dataclass(frozen=True)
class StepContext:
    config: PipelineConfig
    store: FeatureStore
    registry: ModelRegistry
    run_id: str
    run_dir: Path
    child_run_id: str  # the step's own MLflow run: its metrics and tags go there
    extract_fn: ExtractFn
    progress: Progress
    hook: Hook

    def path(self, name: str) -> Path:
        return self.run_dir / name

    def log_metric(self, key: str, value: float) -> None:
        self.registry.client.log_metric(self.child_run_id, key, value)

    def champion_version(self) -> ModelVersion | None:
        """The champion to compare with: only one trained on the same feature service."""
        version = self.registry.by_alias(self.config.model_name, CHAMPION)
        if version is None or version.tags.get("feature_service") != self.config.feature_service:
            return None
        return version

    def champion(self, version: ModelVersion | None = None) -> RegisteredModel | None:
        """The champion's artifacts (not this run's own model, on a resumed registration);
        `version`: the champion already read, so that both come from one read of the alias."""
        version = version or self.champion_version()
        if version is None or version.run_id == self.run_id:
            return None
        return self.registry.fetch(version, self.run_dir / "champion")


def champion_identity(context: StepContext) -> str | None:
    version = context.champion_version()
    return None if version is None else f"{version.version}:{version.tags.get('sha256')}"


@dataclass(frozen=True)
class StepOutput:
    files: dict[str, str]  # artifact name in the run folder -> sha256

    @classmethod
    def load(cls, run_dir: Path, files: dict[str, str]) -> Any:
        """The output of a reused step, read back from its verified files."""
        return cls(files)
