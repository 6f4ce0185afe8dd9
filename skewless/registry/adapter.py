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

The adapter owns its client: MLflow's client, its entities and its exceptions never leave
`mlflow_store.py`, its base (runs, artifacts, versions, aliases) — an import-linter contract
keeps every other module from importing mlflow. Versions come back as `Version`
(`versions.py`), their pipeline tags typed as `VersionTags` (`skewless/records.py`); the
champion history's records are `champion_moves.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from skewless.records import GateVerdict
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings

from .champion_moves import (
    LEGACY_HISTORY_TAG,
    MOVE_TAG_PREFIX,
    UNGATED,
    ChampionMove,
    history_of,
    move_tag,
    move_tags,
    previous_champion,
    record_of,
)
from .mlflow_store import SQLITE_FILE, STORE_ERRORS, MlflowStore, unavailable
from .versions import GATE_REPORT, PromotionRefused, RegistryError, run_of

CANARY_TAG = "skewless.canary_share"
# The advisory lock that serializes champion moves on a shared database (any 64-bit number
# the project owns: the first 8 bytes of sha256("skewless champion moves")).
LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"skewless champion moves").digest()[:8], "big", signed=True
)
LOCK_WAIT = "60s"  # a promoter waits this long for another's move, then stops: unavailable


class ModelRegistry(MlflowStore):
    """The registry as the project uses it: MLflow's store (the base) with the champion's
    moves, recorded under a lock, and the canary's share."""

    @classmethod
    def of(cls, settings: Settings) -> ModelRegistry:
        """The registry the settings name: the one place that reads them."""
        return cls(settings.state_dir, settings.registry_uri, settings.artifact_root)

    @staticmethod
    def exists(settings: Settings) -> bool:
        """Could the settings' registry hold a model (a database named, or the embedded
        file made)? Asked before opening it creates an empty one."""
        return settings.registry_uri is not None or (settings.state_dir / SQLITE_FILE).is_file()

    def migrate_history(self, model_name: str, *, dry_run: bool = False) -> int:
        """Rewrite, once, an older registry's champion history (one JSON list in one tag) as
        one tag per move, the list's moves first; the moves it rewrote (0: none to rewrite)."""
        with self._lock():
            model = self.call_or_none(
                f"reading {model_name}", lambda: self._client.get_registered_model(model_name)
            )
            legacy = None if model is None else model.tags.get(LEGACY_HISTORY_TAG)
            if model is None or legacy is None:
                return 0
            older = [ChampionMove(**move) for move in json.loads(legacy)]
            later = [ChampionMove(**json.loads(model.tags[k])) for k in move_tags(model.tags)]
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
                raise unavailable(exc, "taking the registry's lock") from exc
            yield

    def champion_history(self, model_name: str) -> list[ChampionMove]:
        model = self.call_or_none(
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
        numbered = move_tags(model.tags)
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
        target = previous_champion(self.champion_history(model_name), str(current.version))
        if target is None:
            raise RegistryError(
                f"{model_name} version {current.version} has no previous champion on record"
            )
        return target

    # --- canary share --------------------------------------------------------------------
    def canary_share(self, model_name: str) -> float | None:
        """The running canary's share, or None. A canary killed before it could clean up
        stops counting at its deadline."""
        model = self.call_or_none(
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
        model = self.call_or_none(
            f"reading {model_name}", lambda: self._client.get_registered_model(model_name)
        )
        return model is not None and CANARY_TAG in model.tags
