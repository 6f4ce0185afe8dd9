"""Fixtures of the serving tests (see serving_setup.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from skewless.settings import Settings

from .serving_setup import ServingWorld, build_world


@pytest.fixture(scope="session")
def serving_world(
    real_repo: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServingWorld]:
    world = build_world(real_repo, tmp_path_factory.mktemp("serving"))
    yield world
    world.redis.stop(save=False)
