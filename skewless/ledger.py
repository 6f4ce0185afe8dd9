"""The release ledger: releases, the CI checks each passed or failed with their evidence, and
the runs each environment recorded for them. It is the one state environments share (each
has its own registries, online store and state folder), so it is a small SQLite file of its
own (`Settings.ledger_file`), written by `skewless release` and read by everyone.

Writes are single statements in WAL mode, so a build in one environment and a deploy in
another can write at the same time. A release is immutable once built: its id is the hash of
its content (loadtests/release/manifest.py); building the same content again records a new
set of checks beside the old, and the release passes when its latest checks all passed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skewless.errors import BadInput

SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    id TEXT PRIMARY KEY,
    built_at TEXT NOT NULL,
    manifest TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS checks (
    release TEXT NOT NULL REFERENCES releases(id),
    build INTEGER NOT NULL,
    name TEXT NOT NULL,
    passed INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    release TEXT NOT NULL REFERENCES releases(id),
    environment TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    version TEXT,
    namespace TEXT,
    detail TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL DEFAULT '[]'
);
"""

RUN_COLUMNS = (
    "id, release, environment, started_at, finished_at, outcome, version, namespace, detail, steps"
)

# A run's outcome: `running` until it ends; `switched` (its model and namespace went live),
# `first` (an environment's first champion), `gate_failed` and `failed` (nothing switched).
SUCCESSFUL = ("switched", "first")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    evidence: str  # what was measured, in one or a few lines
    seconds: float = 0.0


@dataclass(frozen=True)
class Release:
    id: str
    built_at: str
    manifest: dict[str, Any]
    checks: list[Check] = field(default_factory=list)  # the latest build's
    source: str = ""  # the commit it was first built from (deploy checks that out)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def require_passed(self) -> None:
        """No environment deploys a release whose latest build failed a check."""
        if not self.passed:
            failed = [c.name for c in self.checks if not c.passed] or ["never built"]
            raise BadInput(
                f"release {self.id} did not pass its checks ({', '.join(failed)}): "
                "`skewless release build` again once they pass"
            )


@dataclass(frozen=True)
class Run:
    id: int
    release: str
    environment: str
    started_at: str
    finished_at: str | None
    outcome: str
    version: str | None
    namespace: str | None
    detail: str
    steps: list[dict[str, Any]]

    @property
    def successful(self) -> bool:
        return self.outcome in SUCCESSFUL


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
        finally:
            db.close()

    # --- releases -------------------------------------------------------------------------
    def record_build(
        self,
        release_id: str,
        manifest: dict[str, Any],
        checks: list[Check],
        source: str = "",
    ) -> None:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR IGNORE INTO releases (id, built_at, manifest, source) "
                "VALUES (?, ?, ?, ?)",
                (release_id, _now(), json.dumps(manifest, sort_keys=True), source),
            )
            (build,) = db.execute(
                "SELECT COALESCE(MAX(build), 0) + 1 FROM checks WHERE release = ?", (release_id,)
            ).fetchone()
            db.executemany(
                "INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?)",
                [(release_id, build, c.name, int(c.passed), c.evidence, c.seconds) for c in checks],
            )
            db.execute("COMMIT")

    def release(self, release_id: str) -> Release:
        with self._db() as db:
            found = db.execute(
                "SELECT id, built_at, manifest, source FROM releases WHERE id = ? OR id LIKE ?",
                (release_id, f"{release_id}%"),
            ).fetchall()
            if len(found) != 1:
                known = "several releases start so" if found else "no such release"
                raise BadInput(f"release {release_id!r}: {known} in the ledger {self.path}")
            rid, built_at, manifest, source = found[0]
            rows = db.execute(
                "SELECT name, passed, evidence, seconds FROM checks WHERE release = ? AND "
                "build = (SELECT MAX(build) FROM checks WHERE release = ?) ORDER BY rowid",
                (rid, rid),
            ).fetchall()
        checks = [Check(n, bool(p), e, s) for n, p, e, s in rows]
        return Release(rid, built_at, json.loads(manifest), checks, source)

    def releases(self) -> list[Release]:
        with self._db() as db:
            ids = [r for (r,) in db.execute("SELECT id FROM releases ORDER BY built_at, id")]
        return [self.release(i) for i in ids]

    # --- runs -----------------------------------------------------------------------------
    def start_run(self, release_id: str, environment: str) -> int:
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO runs (release, environment, started_at, outcome) "
                "VALUES (?, ?, ?, 'running')",
                (release_id, environment, _now()),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def step(self, run_id: int, name: str, passed: bool, detail: str = "") -> None:
        """One step of a run (apply, materialize, train, gate, switch), as it finishes."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            (steps,) = db.execute("SELECT steps FROM runs WHERE id = ?", (run_id,)).fetchone()
            done = [*json.loads(steps), {"step": name, "passed": passed, "detail": detail}]
            db.execute("UPDATE runs SET steps = ? WHERE id = ?", (json.dumps(done), run_id))
            db.execute("COMMIT")

    def finish_run(
        self,
        run_id: int,
        outcome: str,
        *,
        version: str | None = None,
        namespace: str | None = None,
        detail: str = "",
    ) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ?, version = ?, namespace = ?, "
                "detail = ? WHERE id = ?",
                (_now(), outcome, version, namespace, detail, run_id),
            )

    def runs(self, release_id: str | None = None, environment: str | None = None) -> list[Run]:
        query, args = f"SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1", list[str]()
        if release_id is not None:
            query, args = query + " AND release = ?", [*args, release_id]
        if environment is not None:
            query, args = query + " AND environment = ?", [*args, environment]
        with self._db() as db:
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        return [
            Run(
                id=row[0],
                release=row[1],
                environment=row[2],
                started_at=row[3],
                finished_at=row[4],
                outcome=row[5],
                version=row[6],
                namespace=row[7],
                detail=row[8],
                steps=json.loads(row[9]),
            )
            for row in rows
        ]


def as_json(value: Release | Run) -> dict[str, Any]:
    return asdict(value)
