"""Fixtures of the serving tests (see serving_setup.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from skewless.features import store as feature_store
from skewless.models.configuration import load_model_config
from skewless.settings import Settings
from tests.support.repos import copy_feature_repo, settings_for

from .monitoring_setup import MonitoringWorld
from .monitoring_setup import build_world as build_monitoring_world
from .serving_setup import ServingWorld, build_world


@pytest.fixture(scope="session")
def serving_world(
    real_repo: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServingWorld]:
    world = build_world(real_repo, tmp_path_factory.mktemp("serving"))
    yield world
    world.redis.stop(save=False)


@pytest.fixture(scope="session")
def monitoring_world(
    real_repo: Settings, tmp_path_factory: pytest.TempPathFactory
) -> MonitoringWorld:
    return build_monitoring_world(real_repo, tmp_path_factory.mktemp("monitoring"))


@pytest.fixture(scope="session")
def sqlite_repo(real_repo: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The real tables in a repository of its own (its own SQLite online store), materialized
    as of the configuration's `as_of`, as the quickstart does: the embedded default."""
    folder = tmp_path_factory.mktemp("sqlite-repo")
    repo = copy_feature_repo(folder / "repo")
    shutil.copytree(real_repo.data_dir, repo / "data", ignore=shutil.ignore_patterns("*.db"))
    settings = settings_for(repo, "sqlite", "unused")
    feature_store.apply(settings)
    feature_store.materialize(
        feature_store.open_store(settings), load_model_config(settings.model_file).as_of
    )
    return settings
