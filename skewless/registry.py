"""The model registry and metadata store: MLflow with a SQLite backend, behind one adapter.

Aliases: `challenger` on every blessed model, `champion` on the one being served. Every move
of `champion` goes through `move_champion`, which records who, when and why in the
registered model's history (the record `skewless rollback` reads), and the share of traffic
a running canary sends to the challenger is a tag the service polls.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_DIR = "model"  # the artifact folder of a pipeline's parent run
HISTORY_TAG = "skewless.champion_history"  # JSON list of ChampionMove, oldest first
CANARY_TAG = "skewless.canary_share"


def operator() -> str:
    """Who is acting, for the record: user@host, or SKEWLESS_OPERATOR where a CI job acts
    for somebody."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return os.environ.get("SKEWLESS_OPERATOR") or f"{user}@{socket.gethostname()}"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done as asked (said why, nothing changed)."""


@dataclass(frozen=True)
class ChampionMove:
    version: str
    previous: str | None
    action: str  # pipeline | promote | rollback
    by: str
    at: str  # ISO time, UTC
    why: str


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

    def version(self, model_name: str, version: str) -> ModelVersion:
        try:
            return self.client.get_model_version(model_name, version)
        except MlflowException as exc:
            raise RegistryError(f"{model_name} version {version}: {exc.message}") from None

    def delete_alias(self, model_name: str, alias: str) -> None:
        try:
            self.client.delete_registered_model_alias(model_name, alias)
        except MlflowException:
            pass  # already gone

    # --- champion moves, recorded -------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer of aliases and history at a time, across processes."""
        with (self.state_dir / "registry.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def champion_history(self, model_name: str) -> list[ChampionMove]:
        try:
            tags = self.client.get_registered_model(model_name).tags
        except MlflowException:
            return []
        return [ChampionMove(**move) for move in json.loads(tags.get(HISTORY_TAG, "[]"))]

    def move_champion(
        self, model_name: str, version: str | int, *, action: str, by: str, why: str
    ) -> ChampionMove:
        """Point `champion` at `version` and record the move. Under a lock; if the record
        cannot be written the alias is put back, so the two never disagree."""
        with self._lock():
            return self._move(model_name, version, action=action, by=by, why=why)

    def rollback_champion(self, model_name: str, *, by: str, why: str) -> ChampionMove:
        """Move `champion` back to `rollback_target`, chosen and moved under one lock."""
        with self._lock():
            target = self.rollback_target(model_name)
            return self._move(model_name, target, action="rollback", by=by, why=why)

    def _move(
        self, model_name: str, version: str | int, *, action: str, by: str, why: str
    ) -> ChampionMove:
        """The move itself; the caller holds the lock. A move to the champion itself is
        refused: recorded, it would make rollback return to the same version."""
        current = self.by_alias(model_name, CHAMPION)
        previous = str(current.version) if current is not None else None
        version = str(version)  # MLflow hands out ints and takes strings
        if version == previous:
            raise RegistryError(f"{model_name} version {version} is already the champion")
        move = ChampionMove(
            version, previous, action, by, datetime.now(UTC).isoformat(timespec="seconds"), why
        )
        history = [asdict(m) for m in self.champion_history(model_name)] + [asdict(move)]
        self.set_alias(model_name, CHAMPION, version)
        try:
            self.client.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(history))
        except MlflowException:
            if previous is not None:
                self.set_alias(model_name, CHAMPION, previous)
            else:
                self.delete_alias(model_name, CHAMPION)
            raise
        return move

    def rollback_target(self, model_name: str) -> str:
        """The champion before the current one: the version the current champion's last
        promotion replaced. Walking back twice goes two promotions back."""
        current = self.by_alias(model_name, CHAMPION)
        if current is None:
            raise RegistryError(f"{model_name} has no champion to roll back")
        for move in reversed(self.champion_history(model_name)):
            if (
                move.version == str(current.version)
                and move.action != "rollback"
                and move.previous != move.version
            ):
                if move.previous is None:
                    break
                return move.previous
        raise RegistryError(
            f"{model_name} version {current.version} has no previous champion on record"
        )

    # --- canary share --------------------------------------------------------------------
    def canary_share(self, model_name: str) -> float | None:
        """The running canary's share, or None. A canary killed before it could clean up
        stops counting at its deadline."""
        try:
            value = self.client.get_registered_model(model_name).tags.get(CANARY_TAG)
        except MlflowException:
            return None
        if value is None:
            return None
        canary = json.loads(value)
        if datetime.fromisoformat(canary["until"]) < datetime.now(UTC):
            return None
        return float(canary["share"])

    def set_canary_share(
        self, model_name: str, share: float | None, until: datetime | None = None
    ) -> None:
        if share is None:
            try:
                self.client.delete_registered_model_tag(model_name, CANARY_TAG)
            except MlflowException:
                pass
        else:
            if until is None:
                raise ValueError("a canary share needs a deadline")
            value = json.dumps({"share": share, "until": until.isoformat()})
            self.client.set_registered_model_tag(model_name, CANARY_TAG, value)
