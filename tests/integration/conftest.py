"""Fixtures of the serving tests (see serving_setup.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from skewless.settings import Settings

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
