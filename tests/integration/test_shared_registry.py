"""The registries on PostgreSQL (the machine's server, a fresh database per test): MLflow's
keeps what the SQLite one keeps, two promoters racing from two processes with separate state
folders (two hosts' disks: no shared file lock) leave one consistent champion and history,
serialized by the database's advisory lock, and Feast's SQL registry defines the same
service as the file registry."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import psycopg
import pytest

from skewless.features import store as feature_store
from skewless.features.service import read_online, service_schema
from skewless.models.configuration import load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings
from tests.support.registry_state import record_passed_gate, register_versions

NAME = "m"
SERVER = os.environ.get("SKEWLESS_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"no PostgreSQL at {SERVER} ({exc}); set SKEWLESS_TEST_POSTGRES")
    name = f"skewless_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield SERVER.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _moves(registry: ModelRegistry) -> list[dict[str, object]]:
    """The champion history without its times (the gate's report path holds one too): what
    two registries can agree on."""
    return [
        {**{k: v for k, v in asdict(m).items() if k != "at"}, "gate": m.gate.split(" at ")[0]}
        for m in registry.champion_history(NAME)
    ]


def test_postgresql_keeps_what_sqlite_keeps(database: str, tmp_path: Path) -> None:
    registries = [
        ModelRegistry(tmp_path / "sqlite"),
        ModelRegistry(tmp_path / "postgres", database),
    ]
    assert [r.shared for r in registries] == [False, True]
    for registry in registries:
        v1, v2, v3 = register_versions(registry, NAME, 3)
        registry.move_champion(NAME, v1, action="pipeline", by="t", why="first")
        record_passed_gate(registry, NAME, v2)
        registry.move_champion(NAME, v2, action="promote", by="t", why="better")
        registry.set_alias(NAME, "challenger", v3)
        registry.rollback_champion(NAME, by="t", why="slow")
    sqlite, postgres = registries
    assert _moves(postgres) == _moves(sqlite) and len(_moves(sqlite)) == 3
    for alias in (CHAMPION, "challenger"):
        found = [r.by_alias(NAME, alias) for r in registries]
        assert found[0] is not None and found[1] is not None
        assert found[0].version == found[1].version
    assert [v.version for v in postgres.versions(NAME)] == [
        v.version for v in sqlite.versions(NAME)
    ]
    assert postgres.gate_passed(NAME, "2")[0] and not postgres.gate_passed(NAME, "3")[0]


RACER = """
import sys, time
from pathlib import Path
from skewless.registry.adapter import ModelRegistry
from skewless.registry.versions import RegistryError
state, uri, target, start, seconds = sys.argv[1:6]
registry = ModelRegistry(Path(state), uri)
time.sleep(max(0.0, float(start) - time.time()))  # both begin together, imports done
moved = 0
while time.time() < float(start) + float(seconds) and moved < 20:
    current = registry.by_alias("m", "champion")
    if current is not None and str(current.version) == target:
        time.sleep(0.005)  # the other's turn
        continue
    try:
        registry.move_champion("m", target, action="promote", by=target, why="race")
    except RegistryError:  # it moved here between the look and the lock
        continue
    moved += 1
print(moved)
"""


def test_two_promoters_racing_from_two_hosts_leave_one_consistent_history(
    database: str, tmp_path: Path
) -> None:
    setup = ModelRegistry(tmp_path / "setup", database)  # creates the schema before the race
    v1, v2, v3 = register_versions(setup, NAME, 3)
    setup.move_champion(NAME, v1, action="pipeline", by="setup", why="first")
    for version in (v2, v3):
        record_passed_gate(setup, NAME, version)
    # Each promoter wants its own version (2 or 3) and moves the champion back whenever the
    # other has moved it: for a few seconds both move as fast as the registry lets them, up to
    # 20 moves each.
    start = time.time() + 15  # after both have imported MLflow
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACER,
                str(tmp_path / f"host-{target}"),
                database,
                target,
                str(start),
                "4",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for target in (v2, v3)
    ]
    moved = []
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-2000:]
        moved.append(int(out.split()[-1]))
    assert all(m > 0 for m in moved), moved  # both promoted: it was a race
    history = setup.champion_history(NAME)
    assert len(history) == 1 + sum(moved)  # no move lost
    for before, after in zip(history, history[1:], strict=False):
        assert after.previous == before.version, (before, after)  # each saw the one before
    champion = setup.by_alias(NAME, CHAMPION)
    assert champion is not None and str(champion.version) == history[-1].version
    assert {m.version for m in history[1:]} == {v2, v3}


def test_a_long_champion_history_fits_postgresql(database: str, tmp_path: Path) -> None:
    """MLflow caps a tag's value at 5,000 characters on PostgreSQL (SQLite does not enforce
    it): the history once lived in one tag and promotions stopped after ~20 moves. Forty
    moves with a long reason each, every one recorded and the last one in force."""
    registry = ModelRegistry(tmp_path / "host", database)
    v1, v2 = register_versions(registry, NAME, 2)
    registry.move_champion(NAME, v1, action="pipeline", by="t", why="first")
    record_passed_gate(registry, NAME, v2)
    why = "a reason an operator pasted in full " * 100  # 3,600 characters
    for _ in range(20):
        registry.move_champion(NAME, v2, action="promote", by="t", why=why)
        registry.rollback_champion(NAME, by="t", why=why)
    history = registry.champion_history(NAME)
    assert len(history) == 41
    assert [m.version for m in history[-4:]] == [v2, v1, v2, v1]
    assert history[-1].why.startswith("a reason an operator") and len(history[-1].why) <= 1500
    champion = registry.by_alias(NAME, CHAMPION)
    assert champion is not None and str(champion.version) == v1


def test_feasts_registry_on_postgresql_defines_the_same_service(
    database: str, sqlite_repo: Settings, tmp_path: Path
) -> None:
    """`feast apply` into Feast's SQL registry on PostgreSQL, selected by a setting: the same
    views and service as the file registry, and the same online values read through them."""
    shared = sqlite_repo.model_copy(
        update={"feast_registry_uri": database, "state_dir": tmp_path / "state"}
    )
    feature_store.apply(shared)
    on_postgres, on_file = feature_store.open_store(shared), feature_store.open_store(sqlite_repo)
    assert type(on_postgres.registry).__name__ == "SqlRegistry"
    names = [sorted(v.name for v in s.list_feature_views()) for s in (on_postgres, on_file)]
    assert names[0] == names[1] and names[0]
    config = load_model_config(sqlite_repo.model_file)
    schema = service_schema(on_file, config.feature_service)
    assert service_schema(on_postgres, config.feature_service) == schema
    rows = feature_store.recent_entity_rows(on_file, config, schema, 50)[list(schema.inputs)]
    records = [
        {k: v.to_pydatetime() if hasattr(v, "to_pydatetime") else v for k, v in r.items()}
        for r in rows.to_dict(orient="records")
    ]
    through = [read_online(s, schema, records, config.as_of) for s in (on_postgres, on_file)]
    assert through[0].values == through[1].values
    assert sum(v is not None for column in through[0].values.values() for v in column) > 0
