"""Does the registry adapter say "absent" only when MLflow says so, leave aliases and history
as they were when its store fails mid-action, and refuse an ungated champion?

A real MLflow on a SQLite file; the store's failures are real database errors, put in with
SQLite triggers that abort one kind of write (an alias, a tag, a version) or a renamed table
that makes every read fail.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pytest

from skewless.records import VersionTags
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.registry.champion_moves import (
    LEGACY_HISTORY_TAG,
    TEXT_CAP,
    UNGATED,
    ChampionMove,
    move_tag,
    record_of,
)
from skewless.registry.versions import PromotionRefused, RegistryError, RegistryUnavailable
from tests.support.registry_state import mlflow_client, record_passed_gate, register_versions

NAME = "m"


@contextmanager
def failing_writes(state_dir: Path, table: str) -> Iterator[None]:
    """Every INSERT or UPDATE on `table` fails inside the database, as a full or broken
    disk would make it fail, until the block ends."""
    db = sqlite3.connect(state_dir / "mlflow.db")
    for when in ("INSERT", "UPDATE"):
        db.execute(
            f"CREATE TRIGGER fail_{when.lower()} BEFORE {when} ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END"
        )
    db.commit()
    try:
        yield
    finally:
        db.execute("DROP TRIGGER fail_insert")
        db.execute("DROP TRIGGER fail_update")
        db.commit()
        db.close()


@contextmanager
def broken_reads(state_dir: Path) -> Iterator[None]:
    db = sqlite3.connect(state_dir / "mlflow.db")
    tables = ("registered_models", "model_versions")
    for table in tables:
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    db.commit()
    try:
        yield
    finally:
        for table in tables:
            db.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
        db.commit()
        db.close()


def snapshot(registry: ModelRegistry) -> tuple[str | None, list[object]]:
    champion = registry.by_alias(NAME, CHAMPION)
    return (
        None if champion is None else str(champion.version),
        registry.champion_history(NAME),
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """v1 champion (the first, ungated), v2 and v3 with passed gates."""
    registry = ModelRegistry(tmp_path)
    versions = register_versions(registry, NAME, 3)
    registry.move_champion(NAME, versions[0], action="pipeline", by="t", why="first")
    for version in versions[1:]:
        record_passed_gate(registry, NAME, version)
    return registry


def test_the_first_champion_is_recorded_as_ungated_and_later_ones_need_the_gate(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path)
    v1, v2, v3 = register_versions(registry, NAME, 3)
    first = registry.move_champion(NAME, v1, action="pipeline", by="t", why="first")
    assert first.gate == UNGATED
    with pytest.raises(PromotionRefused, match="no gate report"):
        registry.move_champion(NAME, v2, action="pipeline", by="t", why="no gate")
    record_passed_gate(registry, NAME, v2)
    moved = registry.move_champion(NAME, v2, action="promote", by="t", why="gated")
    assert moved.gate.startswith("gate passed")
    # A passed gate for another artifact does not count.
    registry.tag_version(NAME, v3, {"sha256": "f" * 64})
    record_passed_gate(registry, NAME, v3)
    registry.tag_version(NAME, v3, {"sha256": "e" * 64})
    with pytest.raises(PromotionRefused, match="not this artifact"):
        registry.move_champion(NAME, v3, action="promote", by="t", why="other bytes")
    assert snapshot(registry)[0] == v2


def test_an_unknown_version_is_bad_input(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="has no version 99"):
        registry.version(NAME, "99")
    assert RegistryError("x").exit_code == 2


@pytest.mark.parametrize("table", ["registered_model_aliases", "registered_model_tags"])
def test_a_store_failing_mid_promote_changes_nothing(
    registry: ModelRegistry, tmp_path: Path, table: str
) -> None:
    before = snapshot(registry)
    with failing_writes(tmp_path, table), pytest.raises(RegistryUnavailable, match="injected"):
        registry.move_champion(NAME, "2", action="promote", by="t", why="try")
    assert snapshot(registry) == before


@pytest.mark.parametrize("table", ["registered_model_aliases", "registered_model_tags"])
def test_a_store_failing_mid_rollback_changes_nothing(
    registry: ModelRegistry, tmp_path: Path, table: str
) -> None:
    registry.move_champion(NAME, "2", action="promote", by="t", why="better")
    before = snapshot(registry)
    with failing_writes(tmp_path, table), pytest.raises(RegistryUnavailable):
        registry.rollback_champion(NAME, by="t", why="slow")
    assert snapshot(registry) == before
    assert registry.rollback_champion(NAME, by="t", why="slow").version == "1"


def test_a_store_failing_mid_register_registers_nothing(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    run_id = registry.start_run(registry.experiment_id(NAME))
    before = [v.version for v in registry.versions(NAME)]
    with failing_writes(tmp_path, "model_versions"), pytest.raises(RegistryUnavailable):
        registry.register(NAME, run_id, VersionTags(sha256="0" * 64))
    assert [v.version for v in registry.versions(NAME)] == before


def test_a_failing_store_is_never_read_as_absence(registry: ModelRegistry, tmp_path: Path) -> None:
    with broken_reads(tmp_path):
        for read in (
            lambda: registry.by_alias(NAME, CHAMPION),
            lambda: registry.champion_history(NAME),
            lambda: registry.versions(NAME),
            lambda: registry.canary_share(NAME),
        ):
            with pytest.raises(RegistryUnavailable, match="model registry failed"):
                read()
    # And what really does not exist is absence, not an error.
    assert registry.by_alias("no_such_model", CHAMPION) is None
    assert registry.champion_history("no_such_model") == []
    assert registry.by_alias(NAME, "no_such_alias") is None


def test_an_older_registrys_history_list_is_refused_until_migrated_then_continued(
    registry: ModelRegistry,
) -> None:
    """Registries written before one-tag-per-move kept their list in one tag: read, it is
    refused with the advice to migrate; `migrate_history` makes it the start of the history,
    new moves follow it, and rollback walks back across both."""
    first = registry.champion_history(NAME)
    assert len(first) == 1
    client = mlflow_client(registry)
    client.delete_registered_model_tag(NAME, move_tag(1))
    client.set_registered_model_tag(NAME, LEGACY_HISTORY_TAG, json.dumps([asdict(first[0])]))
    with pytest.raises(RegistryError, match="migrate-registry"):
        registry.champion_history(NAME)
    assert registry.migrate_history(NAME, dry_run=True) == 1
    with pytest.raises(RegistryError):  # a dry run changes nothing
        registry.champion_history(NAME)
    assert registry.migrate_history(NAME) == 1
    assert registry.champion_history(NAME) == first
    assert registry.migrate_history(NAME) == 0  # once
    registry.move_champion(NAME, "2", action="promote", by="t", why="x" * 5000)
    history = registry.champion_history(NAME)
    assert [m.version for m in history] == ["1", "2"] and history[0] == first[0]
    assert len(history[1].why) == TEXT_CAP  # capped: one move always fits one tag
    assert registry.rollback_champion(NAME, by="t", why="slow").version == "1"
    assert [m.version for m in registry.champion_history(NAME)] == ["1", "2", "1"]


def test_a_move_fits_one_tag_whatever_its_reason_holds() -> None:
    """MLflow's tag column holds 5,000 characters: the cap counts what is written, escaped
    quotes and control characters, and non-ASCII text, too."""
    for why in ("\n" * 6000, '"' * 6000, "причина " * 900, "\x01" * 3000):
        move = ChampionMove("2", "1", "promote", "by" * 2000, "2026-12-03T00:00:00", why, why)
        record = record_of(move)
        assert len(record) <= 5000
        kept = ChampionMove(**json.loads(record))
        assert kept.why[:10] == why[:10] and kept.version == "2"
