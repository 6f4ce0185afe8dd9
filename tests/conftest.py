"""Shared fixtures: a real Redis, and a temporary Feast repository built from the real data."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from skewless.features import store as feature_store
from skewless.settings import Settings
from tests.support.repos import copy_feature_repo, settings_for

LEAD_TIME_MINUTES = 60


# Fixtures that need a running service or the full data set: integration tests' alone.
SERVICE_FIXTURES = frozenset({"redis_connection", "real_repo", "real_repo_redis"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration talks to real services or builds the full data set;
    # a unit test may not (`scripts/test tests/unit` starts no service).
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
            continue
        wanted = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if wanted:
            raise pytest.UsageError(
                f"{item.nodeid}: a unit test uses {sorted(wanted)}; move it to tests/integration"
            )


@pytest.fixture(scope="session")
def redis_connection() -> str:
    """A Redis server that answers; scripts/test starts one when none runs. Never skipped."""
    connection = os.environ.get("SKEWLESS_TEST_REDIS", "127.0.0.1:6379")
    host, port = connection.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(16)
    except OSError as exc:
        pytest.fail(f"no Redis at {connection} ({exc}); run the tests with scripts/test")
    assert reply.startswith(b"+PONG"), f"{connection} is not a Redis server: {reply!r}"
    return connection


@pytest.fixture(scope="session")
def real_repo(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The project's Feast repository in a temporary folder: real tables built, applied."""
    from feature_repo.tables.build import build_tables

    repo = copy_feature_repo(tmp_path_factory.mktemp("feature_repo"))
    settings = settings_for(repo, "sqlite", "unused")
    build_tables(settings.data_dir, LEAD_TIME_MINUTES, progress=lambda _: None)
    feature_store.apply(settings)
    return settings


@pytest.fixture(scope="session")
def real_repo_redis(real_repo: Settings, redis_connection: str) -> Iterator[Settings]:
    """The same repository and tables, registered for the Redis online store."""
    settings = settings_for(real_repo.repo_path, "redis", redis_connection)
    feature_store.apply(settings)
    yield settings
    feature_store.open_store(settings).teardown()  # removes this test project's keys from Redis
