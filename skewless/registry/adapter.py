"""The model registry and metadata store: MLflow with a SQLite backend (or PostgreSQL, shared
by several hosts: `registry_uri`), behind one adapter.

Aliases: `challenger` on every blessed model, `champion` on the one being served. Every move
of `champion` goes through `move_champion`, which records who, when and why in the
registered model's history (the record `skewless rollback` reads), and the share of traffic
a running canary sends to the challenger is a tag the service polls.

No model reaches production without the gate: `move_champion` refuses a version without a
passed gate report for its exact artifact hash, except the first champion of a registry that
never had one, whose record says it was ungated. Rollback returns to a version that was
champion before, so it needs no new gate.

Failures are explicit: only MLflow's "does not exist" means absence (`None`, `[]`); any other
error (a locked or read-only database, ...) is a `RegistryUnavailable` that stops the action
with nothing changed, never an empty answer that a caller would act on.

The adapter owns its client: MLflow's client, its entities and its exceptions never leave this
module (an import-linter contract keeps every other module from importing mlflow). Runs are
recorded, tagged and searched through the methods below; versions come back as `Version`,
their pipeline tags typed as `VersionTags` (`skewless/records.py`).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from skewless.errors import BadInput, SkewlessError
from skewless.records import DATA_UNTIL, GateVerdict, VersionTags
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings

MODEL_DIR = "model"  # the artifact folder of a pipeline's parent run
# The champion history: one tag per move, numbered from 1 (a JSON ChampionMove each). One tag
# for the whole list overflowed MLflow's 5,000-character tag value on PostgreSQL after ~20
# moves; one move stays under it (`record_of`). Registries written before kept the list in
# one tag (LEGACY_HISTORY_TAG): `skewless migrate-registry` rewrites it as move tags, and the
# history of a registry not yet migrated is refused with that advice, never read half.
MOVE_TAG_PREFIX = "skewless.champion_move."
LEGACY_HISTORY_TAG = "skewless.champion_history"
TEXT_CAP = 1500  # characters of a move's `why`, `gate` and `by` kept in its record
TAG_LIMIT = 4900  # serialized characters of one move (MLflow's column: 5,000)
CANARY_TAG = "skewless.canary_share"
# The gate's verdict on a version (written by loadtests/records.py, read by move_champion):
# the artifact path of its report, whose verdict is a `GateVerdict`.
GATE_STATUS, GATE_SHA256, GATE_REPORT = "gate.status", "gate.sha256", "gate.report"
# The advisory lock that serializes champion moves on a shared database (any 64-bit number
# the project owns: the first 8 bytes of sha256("skewless champion moves")).
LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"skewless champion moves").digest()[:8], "big", signed=True
)
LOCK_WAIT = "60s"  # a promoter waits this long for another's move, then stops: unavailable
UNGATED = "ungated: the first champion of a registry that had none"
BATCH = 100  # entities per MLflow log_batch: its limit for tags and parameters
REGISTRY_ERRORS: tuple[type[Exception], ...] = (MlflowException, SQLAlchemyError)
# OSError: the artifact store (local files). Only this module catches them: every other one
# sees `RegistryUnavailable`.
STORE_ERRORS: tuple[type[Exception], ...] = (*REGISTRY_ERRORS, OSError)

T = TypeVar("T")


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


def _version(found: ModelVersion) -> Version:
    return Version(str(found.name), str(found.version), str(found.run_id or ""), dict(found.tags))


def run_of(version: Version) -> str:
    """The run that produced a version (every version registered here has one)."""
    if not version.run_id:
        raise RegistryError(f"{version.name} version {version.version} has no run")
    return version.run_id


def _number(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (1 << 30, version)


def _absent(exc: Exception) -> bool:
    return isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def store_failure(exc: BaseException, doing: str) -> str:
    """One line saying what failed in the registry's store."""
    message = exc.message if isinstance(exc, MlflowException) else str(exc)
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return f"model registry failed while {doing}: {first_line}"


def _unavailable(exc: Exception, doing: str) -> RegistryUnavailable:
    return RegistryUnavailable(store_failure(exc, doing))


@dataclass(frozen=True)
class ChampionMove:
    version: str
    previous: str | None
    action: str  # pipeline | promote | rollback
    by: str
    at: str  # ISO time, UTC
    why: str
    gate: str = ""  # the passed gate it went through, or UNGATED (older records: empty)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    sha256: str
    artifacts: Path  # local copy of the run's model folder


def move_tag(number: int) -> str:
    """The tag of the `number`-th recorded move (zero-padded: the tags sort as they happened)."""
    return f"{MOVE_TAG_PREFIX}{number:06d}"


def record_of(move: ChampionMove) -> str:
    """One move as its tag's value, its free texts cut so that it always fits one tag: the
    cap counts the serialized characters (escaped quotes and control characters too)."""
    fields = asdict(move)
    for name in ("why", "gate", "by"):
        if len(fields[name]) > TEXT_CAP:
            fields[name] = fields[name][: TEXT_CAP - 1] + "\u2026"
    record = json.dumps(fields, ensure_ascii=False)
    while len(record) > TAG_LIMIT:
        longest = max(("why", "gate", "by"), key=lambda name: len(fields[name]))
        fields[longest] = fields[longest][: len(fields[longest]) // 2] + "\u2026"
        record = json.dumps(fields, ensure_ascii=False)
    return record


def history_of(tags: dict[str, str]) -> list[ChampionMove]:
    """The champion moves recorded in a registered model's tags, oldest first."""
    if LEGACY_HISTORY_TAG in tags:
        raise RegistryError(
            "the champion history is in an older skewless's form; run `skewless "
            "migrate-registry` once (after upgrading every host that promotes)"
        )
    return [ChampionMove(**json.loads(tags[key])) for key in _move_tags(tags)]


def _move_tags(tags: dict[str, str]) -> list[str]:
    """The numbered move tags, in number order."""
    found = [k for k in tags if k.startswith(MOVE_TAG_PREFIX)]
    numbered = [k for k in found if k.removeprefix(MOVE_TAG_PREFIX).isdigit()]
    return sorted(numbered, key=lambda key: int(key.removeprefix(MOVE_TAG_PREFIX)))


class ModelRegistry:
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
        self.uri = uri or f"sqlite:///{state_dir / 'mlflow.db'}"
        self.artifact_root = artifact_root
        # MLflow's client: used by this module alone (its errors are translated here). Made
        # here, it opens the store: a locked file, a server that does not answer or a schema
        # older than this MLflow fails now, as one line.
        self._client = self.call(
            "opening the registry",
            lambda: MlflowClient(tracking_uri=self.uri, registry_uri=self.uri),
        )
        self._engine: Engine | None = None  # for the database's lock (PostgreSQL)

    @classmethod
    def of(cls, settings: Settings) -> ModelRegistry:
        """The registry the settings name: the one place that reads them."""
        return cls(settings.state_dir, settings.registry_uri, settings.artifact_root)

    @property
    def shared(self) -> bool:
        """A database server that several hosts share (PostgreSQL), not a local file."""
        return self.uri.startswith("postgresql")

    def call(self, doing: str, action: Callable[[], T]) -> T:
        """One registry call; a store failure becomes `RegistryUnavailable`."""
        try:
            return action()
        except STORE_ERRORS as exc:
            raise _unavailable(exc, doing) from exc

    def _call_or_none(self, doing: str, action: Callable[[], T]) -> T | None:
        """One registry call where "does not exist" is an answer (None)."""
        try:
            return action()
        except STORE_ERRORS as exc:
            if _absent(exc):
                return None
            raise _unavailable(exc, doing) from exc

    # --- runs: the pipeline's, the release steps', the controller's ---------------------
    def run_exists(self, run_id: str) -> bool:
        found = self._call_or_none(f"reading run {run_id}", lambda: self._client.get_run(run_id))
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
        model = self._call_or_none(
            f"reading {model_name}", lambda: self._client.get_registered_model(model_name)
        )
        if model is None or alias not in (model.aliases or {}):
            return None
        version = str(model.aliases[alias])
        # Read by number: an alias removed meanwhile does not make this read fail.
        found = self._call_or_none(
            f"reading {model_name}@{alias}",
            lambda: self._client.get_model_version(model_name, version),
        )
        return None if found is None else _version(found)

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
        found = self._call_or_none(
            f"listing {model_name} versions",
            lambda: list(self._client.search_model_versions(f"name='{model_name}'")),
        )
        return sorted((_version(v) for v in found or []), key=lambda v: _number(v.version))

    def version_of_run(self, model_name: str, run_id: str) -> Version | None:
        return next((v for v in self.versions(model_name) if v.run_id == run_id), None)

    def register(self, model_name: str, run_id: str, record: VersionTags) -> Version:
        doing = f"registering {model_name}"
        if self._call_or_none(doing, lambda: self._client.get_registered_model(model_name)) is None:
            self.call(doing, lambda: self._client.create_registered_model(model_name))
        source = f"runs:/{run_id}/{MODEL_DIR}"
        tags = record.to_tags()
        created = self.call(
            doing,
            lambda: self._client.create_model_version(model_name, source, run_id=run_id, tags=tags),
        )
        return _version(created)

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
        found = self._call_or_none(
            f"reading {model_name} version {version}",
            lambda: self._client.get_model_version(model_name, version),
        )
        if found is None:
            raise RegistryError(f"{model_name} has no version {version}")
        return _version(found)

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

    def migrate_history(self, model_name: str, *, dry_run: bool = False) -> int:
        """Rewrite, once, an older registry's champion history (one JSON list in one tag) as
        one tag per move, the list's moves first; the moves it rewrote (0: none to rewrite)."""
        with self._lock():
            model = self._call_or_none(
                f"reading {model_name}", lambda: self._client.get_registered_model(model_name)
            )
            legacy = None if model is None else model.tags.get(LEGACY_HISTORY_TAG)
            if model is None or legacy is None:
                return 0
            older = [ChampionMove(**move) for move in json.loads(legacy)]
            later = [ChampionMove(**json.loads(model.tags[k])) for k in _move_tags(model.tags)]
            if dry_run:
                return len(older)
            moves = [*older, *later]

            def rewrite() -> None:
                for number, move in enumerate(moves, start=1):
                    self._client.set_registered_model_tag(
                        model_name, move_tag(number), record_of(move)
                    )
                self._client.delete_registered_model_tag(model_name, LEGACY_HISTORY_TAG)

            self.call("rewriting the champion history", rewrite)
            return len(older)

    # --- champion moves, recorded -------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer of aliases and history at a time: across processes by a file lock on a
        local SQLite store; across hosts by the database's advisory lock on a shared one (a
        file lock on one host does not stop a promoter on another). Either is released by
        the kernel or the server when its holder dies."""
        if not self.shared:
            with (self.state_dir / "registry.lock").open("w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                yield
            return
        if self._engine is None:
            self._engine = create_engine(self.uri, poolclass=NullPool)
        # A lock of the transaction: released by its end however the body ends (or by the
        # server if this process dies), with no unlock call to fail and hide the body's error.
        with contextlib.ExitStack() as stack:
            try:
                connection = stack.enter_context(self._engine.begin())
                connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
                connection.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            except SQLAlchemyError as exc:
                raise _unavailable(exc, "taking the registry's lock") from exc
            yield

    def champion_history(self, model_name: str) -> list[ChampionMove]:
        model = self._call_or_none(
            f"reading {model_name}'s champion history",
            lambda: self._client.get_registered_model(model_name),
        )
        if model is None:
            return []
        return history_of(model.tags)

    def gate_passed(self, model_name: str, version: str) -> tuple[bool, str]:
        """Has this version a passed gate report for its exact artifact? The report itself is
        read back from the run and compared with the version's recorded sha256."""
        found = self.version(model_name, version)
        artifact = found.tags.get(GATE_REPORT)
        if not artifact:
            return (
                False,
                f"version {version} has no gate report: run `skewless gate --candidate {version}`",
            )
        try:
            verdict = GateVerdict.from_report(
                json.loads(self.read_artifact(run_of(found), artifact))
            )
        except ValueError as exc:
            return False, f"version {version}'s gate report {artifact} is unreadable: {exc}"
        sha256 = found.record.sha256
        if not verdict.passed:
            return False, f"version {version}'s last gate failed ({artifact})"
        if not verdict.covers(version, sha256):
            return False, (
                f"version {version}'s gate report is for version {verdict.version} with "
                f"sha256 {verdict.sha256[:12]}, not this artifact ({sha256[:12]})"
            )
        return True, f"gate passed at {verdict.finished_at} ({artifact})"

    def move_champion(
        self, model_name: str, version: str | int, *, action: str, by: str, why: str
    ) -> ChampionMove:
        """Point `champion` at `version` and record the move, if the version passed the gate
        (or is the first champion of an empty registry). Under a lock; if the record cannot be
        written the alias is put back, so the two never disagree."""
        version = str(version)  # MLflow hands out ints and takes strings
        with self._lock():
            current = self.by_alias(model_name, CHAMPION)
            if current is not None and str(current.version) == version:
                raise RegistryError(f"{model_name} version {version} is already the champion")
            passed, reason = self.gate_passed(model_name, version)
            if not passed:
                first = current is None and not self.champion_history(model_name)
                if not first:
                    raise PromotionRefused(reason)
                reason = UNGATED
            return self._move(model_name, version, action=action, by=by, why=why, gate=reason)

    def rollback_champion(self, model_name: str, *, by: str, why: str) -> ChampionMove:
        """Move `champion` back to `rollback_target`, chosen and moved under one lock."""
        with self._lock():
            target = self.rollback_target(model_name)
            return self._move(
                model_name,
                target,
                action="rollback",
                by=by,
                why=why,
                gate="back to a former champion",
            )

    def _move(
        self, model_name: str, version: str, *, action: str, by: str, why: str, gate: str
    ) -> ChampionMove:
        """The move itself; the caller holds the lock. A move to the champion itself is
        refused: recorded, it would make rollback return to the same version."""
        current = self.by_alias(model_name, CHAMPION)
        previous = str(current.version) if current is not None else None
        self.version(model_name, version)  # an unknown version is bad input, before any write
        move = ChampionMove(
            version,
            previous,
            action,
            by,
            datetime.now(UTC).isoformat(timespec="seconds"),
            why,
            gate,
        )
        # The record first, then the alias: a failure between the two is undone from the
        # record's side, and a failed first write leaves both untouched. The number is taken
        # under the lock, so two promoters never write the same one.
        model = self.call(
            f"reading {model_name}", lambda: self._client.get_registered_model(model_name)
        )
        numbered = _move_tags(model.tags)
        last = int(numbered[-1].removeprefix(MOVE_TAG_PREFIX)) if numbered else 0
        key = move_tag(last + 1)  # after the highest: a deleted tag is never overwritten
        self.call(
            "recording the champion move",
            lambda: self._client.set_registered_model_tag(model_name, key, record_of(move)),
        )
        try:
            self.set_alias(model_name, CHAMPION, version)
        except BaseException:  # a store error, or SIGTERM/Ctrl-C between the two writes
            self._unrecord(model_name, key)
            raise
        return move

    def _unrecord(self, model_name: str, key: str) -> None:
        try:
            self._client.delete_registered_model_tag(model_name, key)
        except STORE_ERRORS:
            logging.getLogger("skewless").error(
                "could not undo the champion record of %s after a failed alias write", model_name
            )

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
        model = self._call_or_none(
            f"reading {model_name}'s canary share",
            lambda: self._client.get_registered_model(model_name),
        )
        value = None if model is None else model.tags.get(CANARY_TAG)
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
            if self._has_canary_tag(model_name):
                self.call(
                    "ending the canary share",
                    lambda: self._client.delete_registered_model_tag(model_name, CANARY_TAG),
                )
        else:
            if until is None:
                raise ValueError("a canary share needs a deadline")
            value = json.dumps({"share": share, "until": until.isoformat()})
            self.call(
                "setting the canary share",
                lambda: self._client.set_registered_model_tag(model_name, CANARY_TAG, value),
            )

    def _has_canary_tag(self, model_name: str) -> bool:
        model = self._call_or_none(
            f"reading {model_name}", lambda: self._client.get_registered_model(model_name)
        )
        return model is not None and CANARY_TAG in model.tags
