"""MLflow behind one class: runs, artifacts, registered versions and aliases, with every
failure of its store translated (`RegistryUnavailable`, or None where "does not exist" is an
answer). MLflow's client, entities and exceptions never leave this module and the adapter
(an import-linter contract keeps every other module from importing mlflow)."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from skewless.errors import BadInput
from skewless.records import DATA_UNTIL, VersionTags

from .versions import (
    MODEL_DIR,
    RegisteredModel,
    RegistryError,
    RegistryUnavailable,
    Version,
    run_of,
)

# MLflow's SQL store uses a loader strategy SQLAlchemy deprecates; it says so on stderr at the
# first registry read of every command, where a user reads it as a fault of theirs.
warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")

SQLITE_FILE = "mlflow.db"  # the embedded default's registry, in the state folder
BATCH = 100  # entities per MLflow log_batch: its limit for tags and parameters
REGISTRY_ERRORS: tuple[type[Exception], ...] = (MlflowException, SQLAlchemyError)
# OSError: the artifact store (local files). Every other module sees `RegistryUnavailable`.
STORE_ERRORS: tuple[type[Exception], ...] = (*REGISTRY_ERRORS, OSError)

T = TypeVar("T")


def version_of(found: ModelVersion) -> Version:
    return Version(str(found.name), str(found.version), str(found.run_id or ""), dict(found.tags))


def number_order(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (1 << 30, version)


def is_absent(exc: Exception) -> bool:
    return isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def store_failure(exc: BaseException, doing: str) -> str:
    """One line saying what failed in the registry's store."""
    message = exc.message if isinstance(exc, MlflowException) else str(exc)
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return f"model registry failed while {doing}: {first_line}"


def unavailable(exc: Exception, doing: str) -> RegistryUnavailable:
    return RegistryUnavailable(store_failure(exc, doing))


class MlflowStore:
    """Runs, artifacts, versions and aliases in MLflow's tracking and registry store."""

    def __init__(
        self, state_dir: Path, uri: str | None = None, artifact_root: str | None = None
    ) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # Artifacts are a few local files: a progress bar per download is only noise.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.state_dir = state_dir
        if uri and not uri.startswith(("sqlite:", "postgresql")):
            raise BadInput(
                f"registry_uri {uri.split('://')[0]}://...: a SQLite file or a PostgreSQL "
                "database (postgresql://...); other stores do not serialize champion moves"
            )
        self.uri = uri or f"sqlite:///{state_dir / SQLITE_FILE}"
        self.artifact_root = artifact_root
        # MLflow's client: used by this module alone (its errors are translated here). Made
        # here, it opens the store: a locked file, a server that does not answer or a schema
        # older than this MLflow fails now, as one line.
        self._client = self.call(
            "opening the registry",
            lambda: MlflowClient(tracking_uri=self.uri, registry_uri=self.uri),
        )
        self._engine: Engine | None = None  # for the database's lock (PostgreSQL)

    @property
    def shared(self) -> bool:
        """A database server that several hosts share (PostgreSQL), not a local file."""
        return self.uri.startswith("postgresql")

    def call(self, doing: str, action: Callable[[], T]) -> T:
        """One registry call; a store failure becomes `RegistryUnavailable`."""
        try:
            return action()
        except STORE_ERRORS as exc:
            raise unavailable(exc, doing) from exc

    def call_or_none(self, doing: str, action: Callable[[], T]) -> T | None:
        """One registry call where "does not exist" is an answer (None)."""
        try:
            return action()
        except STORE_ERRORS as exc:
            if is_absent(exc):
                return None
            raise unavailable(exc, doing) from exc

    # --- runs: the pipeline's, the release steps', the controller's ---------------------
    def run_exists(self, run_id: str) -> bool:
        found = self.call_or_none(f"reading run {run_id}", lambda: self._client.get_run(run_id))
        return found is not None

    def start_run(
        self, experiment_id: str, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """A new run (its id); `end_run` finishes it."""
        run = self.call(
            "starting a run",
            lambda: self._client.create_run(experiment_id, run_name=name, tags=dict(tags or {})),
        )
        return str(run.info.run_id)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.call(f"ending run {run_id}", lambda: self._client.set_terminated(run_id, status))

    def experiment_of(self, run_id: str) -> str:
        run = self.call(f"reading run {run_id}", lambda: self._client.get_run(run_id))
        return str(run.info.experiment_id)

    def run_tags(self, run_id: str) -> dict[str, str]:
        run = self.call(f"reading run {run_id}", lambda: self._client.get_run(run_id))
        return dict(run.data.tags)

    def record_run(
        self,
        run_id: str,
        *,
        tags: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Tags, metrics and parameters of a run, in as few writes as MLflow takes (it
        accepts at most 100 tags and parameters per batch)."""
        stamp = int(datetime.now(UTC).timestamp() * 1000)
        entities: list[RunTag | Metric | Param] = [
            *(RunTag(k, str(v)) for k, v in (tags or {}).items()),
            *(Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items()),
            *(Param(k, str(v)) for k, v in (params or {}).items()),
        ]
        for start in range(0, len(entities), BATCH):
            chunk = entities[start : start + BATCH]
            run_tags = [e for e in chunk if isinstance(e, RunTag)]
            run_metrics = [e for e in chunk if isinstance(e, Metric)]
            run_params = [e for e in chunk if isinstance(e, Param)]
            self.call(
                f"recording run {run_id}",
                lambda: self._client.log_batch(run_id, run_metrics, run_params, run_tags),  # noqa: B023 -- called at once
            )

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.call(
            f"storing {path.name}", lambda: self._client.log_artifact(run_id, str(path), folder)
        )

    def log_json(self, run_id: str, data: Mapping[str, Any], name: str) -> None:
        self.call(f"storing {name}", lambda: self._client.log_dict(run_id, dict(data), name))

    def read_artifact(self, run_id: str, path: str) -> str:
        """One artifact file's text."""
        with tempfile.TemporaryDirectory() as tmp:
            return self.call(
                f"reading {path}",
                lambda: Path(self._client.download_artifacts(run_id, path, tmp)).read_text(),
            )

    def artifact_folders(self, run_id: str, folder: str) -> list[str]:
        """The folders under `folder` in a run's artifacts (their paths), sorted."""
        listed = self.call(f"listing {folder}", lambda: self._client.list_artifacts(run_id, folder))
        return sorted(f.path for f in listed if f.is_dir)

    def experiment_id(self, name: str) -> str:
        found = self.call("reading experiments", lambda: self._client.get_experiment_by_name(name))
        if found is not None:
            return str(found.experiment_id)
        if self.artifact_root:
            location = f"{self.artifact_root.rstrip('/')}/{name}"
        else:
            location = (self.state_dir / "artifacts" / name).resolve().as_uri()
        return self.call(
            "creating an experiment",
            lambda: self._client.create_experiment(name, artifact_location=location),
        )

    # --- versions ------------------------------------------------------------------------
    def by_alias(self, model_name: str, alias: str) -> Version | None:
        """The version `alias` points at; None when the model or the alias does not exist."""
        model = self.call_or_none(
            f"reading {model_name}", lambda: self._client.get_registered_model(model_name)
        )
        if model is None or alias not in (model.aliases or {}):
            return None
        version = str(model.aliases[alias])
        # Read by number: an alias removed meanwhile does not make this read fail.
        found = self.call_or_none(
            f"reading {model_name}@{alias}",
            lambda: self._client.get_model_version(model_name, version),
        )
        return None if found is None else version_of(found)

    def fetch(self, version: Version, into: Path) -> RegisteredModel:
        into.mkdir(parents=True, exist_ok=True)
        run_id = run_of(version)
        local = self.call(
            f"downloading version {version.version}",
            lambda: self._client.download_artifacts(run_id, MODEL_DIR, str(into)),
        )
        return RegisteredModel(
            version.name,
            version.version,
            run_id,
            version.tags.get("sha256", ""),
            Path(local),
        )

    def versions(self, model_name: str) -> list[Version]:
        """Every version of a model, oldest first."""
        found = self.call_or_none(
            f"listing {model_name} versions",
            lambda: list(self._client.search_model_versions(f"name='{model_name}'")),
        )
        return sorted((version_of(v) for v in found or []), key=lambda v: number_order(v.version))

    def version_of_run(self, model_name: str, run_id: str) -> Version | None:
        return next((v for v in self.versions(model_name) if v.run_id == run_id), None)

    def register(self, model_name: str, run_id: str, record: VersionTags) -> Version:
        doing = f"registering {model_name}"
        if self.call_or_none(doing, lambda: self._client.get_registered_model(model_name)) is None:
            self.call(doing, lambda: self._client.create_registered_model(model_name))
        source = f"runs:/{run_id}/{MODEL_DIR}"
        tags = record.to_tags()
        created = self.call(
            doing,
            lambda: self._client.create_model_version(model_name, source, run_id=run_id, tags=tags),
        )
        return version_of(created)

    def tag_version(self, model_name: str, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.call(
                f"tagging version {version}",
                lambda: self._client.set_model_version_tag(model_name, version, key, value),  # noqa: B023 -- called at once
            )

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.call(
            f"setting {alias}",
            lambda: self._client.set_registered_model_alias(model_name, alias, version),
        )

    def version(self, model_name: str, version: str) -> Version:
        found = self.call_or_none(
            f"reading {model_name} version {version}",
            lambda: self._client.get_model_version(model_name, version),
        )
        if found is None:
            raise RegistryError(f"{model_name} has no version {version}")
        return version_of(found)

    def delete_alias(self, model_name: str, alias: str) -> None:
        if self.by_alias(model_name, alias) is not None:
            self.call(
                f"removing {alias}",
                lambda: self._client.delete_registered_model_alias(model_name, alias),
            )

    def migrate_tags(self, model_name: str, *, dry_run: bool = False) -> dict[str, list[str]]:
        """Rewrite, once, the tags of versions registered before `VersionTags` in their
        current form (the windows as JSON, `data_until` set from the test window's end); the
        readers take either form, so this only makes the registry say one thing. Returns the
        tags rewritten per version."""
        rewritten: dict[str, list[str]] = {}
        for found in self.versions(model_name):
            record = found.record
            if not record.legacy:
                continue
            current = record.to_tags()
            if record.data_until is None and record.trained_until is not None:
                current[DATA_UNTIL] = record.trained_until.isoformat()
            changed = {k: current[k] for k in record.legacy if k in current}
            rewritten[found.version] = sorted(changed)
            if not dry_run:
                self.tag_version(model_name, found.version, changed)
        return rewritten
