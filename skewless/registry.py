"""The model registry and metadata store: MLflow with a SQLite backend, behind one adapter.

Aliases: `challenger` on every blessed model, `champion` on the one being served.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_DIR = "model"  # the artifact folder of a pipeline's parent run


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    sha256: str
    artifacts: Path  # local copy of the run's model folder


class ModelRegistry:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # Artifacts are a few local files: a progress bar per download is only noise.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.state_dir = state_dir
        self.uri = f"sqlite:///{state_dir / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = (self.state_dir / "artifacts" / name).resolve().as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def by_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        try:
            return self.client.get_model_version_by_alias(model_name, alias)
        except MlflowException:
            return None

    def fetch(self, version: ModelVersion, into: Path) -> RegisteredModel:
        into.mkdir(parents=True, exist_ok=True)
        local = self.client.download_artifacts(version.run_id, MODEL_DIR, str(into))
        return RegisteredModel(
            version.name,
            version.version,
            version.run_id,
            version.tags.get("sha256", ""),
            Path(local),
        )

    def versions(self, model_name: str) -> list[ModelVersion]:
        try:
            return list(self.client.search_model_versions(f"name='{model_name}'"))
        except MlflowException:
            return []

    def version_of_run(self, model_name: str, run_id: str) -> ModelVersion | None:
        return next((v for v in self.versions(model_name) if v.run_id == run_id), None)

    def register(self, model_name: str, run_id: str, tags: dict[str, str]) -> ModelVersion:
        try:
            self.client.get_registered_model(model_name)
        except MlflowException:
            self.client.create_registered_model(model_name)
        source = f"runs:/{run_id}/{MODEL_DIR}"
        return self.client.create_model_version(model_name, source, run_id=run_id, tags=tags)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name, alias, version)
