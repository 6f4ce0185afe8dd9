"""What every pipeline step is given (`StepContext`) and the shape of what it returns.

A step is a typed function `(context, the step before's output) -> output dataclass`: it
takes the data it works on from its input (the extract's dataset, the split's frames, the
trained model) and writes its own artifacts into the run folder, listing them with their
sha256 in `files` (what resume verifies and what later steps' input keys hash). Each output
class can be read back from the run folder (`load`, through a `RunFolder` that reads each file
at most once), so a reused step hands the next one the same typed value as a step that ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureStore

from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.registry.versions import RegisteredModel, Version

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
        self.registry.record_run(self.child_run_id, metrics={key: value})

    def champion_version(self) -> Version | None:
        """The champion to compare with: only one trained on the same feature service."""
        version = self.registry.by_alias(self.config.model_name, CHAMPION)
        if version is None or version.record.feature_service != self.config.feature_service:
            return None
        return version

    def champion(self, version: Version | None = None) -> RegisteredModel | None:
        """The champion's artifacts (not this run's own model, on a resumed registration);
        `version`: the champion already read, so that both come from one read of the alias."""
        version = version or self.champion_version()
        if version is None or version.run_id == self.run_id:
            return None
        return self.registry.fetch(version, self.run_dir / "champion")


def champion_identity(context: StepContext) -> str | None:
    version = context.champion_version()
    return None if version is None else version.identity


class RunFolder:
    """A run's folder, read back on resume: each frame at most once, whoever asks."""

    def __init__(self, path: Path, config: PipelineConfig) -> None:
        self.path, self.config = path, config
        self._frames: dict[str, pd.DataFrame] = {}

    def frame(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            self._frames[name] = pd.read_parquet(self.path / name)
        return self._frames[name]


@dataclass(frozen=True)
class StepOutput:
    files: dict[str, str]  # artifact name in the run folder -> sha256

    @classmethod
    def load(cls, run: RunFolder, files: dict[str, str]) -> Any:
        """The output of a reused step, read back from its verified files."""
        return cls(files)
