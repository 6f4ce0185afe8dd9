"""A real Redis Cluster on loopback (three masters, three replicas) as the online store: the
same features as from one Redis, through the direct reader and the SDK; a master killed under
a stream of requests costs 503s during the failover, then the service recovers by itself, and
nothing it answers is wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from serving.schemas import rest_body
from skewless.features import store as feature_store
from skewless.features.service import read_online
from skewless.online.redis_readers import RedisClusterFeatureReader
from skewless.settings import Settings
from tests.support.redis_cluster import RedisCluster as ClusterProcesses

from .serving_setup import ServingWorld
from .test_direct_reader_parity import _assert_equal, _records


@dataclass
class ClusterWorld:
    settings: Settings  # the serving world's repository and state, the cluster as online store
    cluster: ClusterProcesses


@pytest.fixture(scope="module")
def cluster_world(
    serving_world: ServingWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterWorld]:
    cluster = ClusterProcesses(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        settings = serving_world.settings.model_copy(
            update={"online_store": "redis_cluster", "redis_connection": cluster.connection}
        )
        feature_store.apply(settings)
        feature_store.materialize(feature_store.open_store(settings), serving_world.config.as_of)
        yield ClusterWorld(settings, cluster)
    finally:
        cluster.stop()


def _client(world: ClusterWorld) -> RedisCluster:
    port = next(iter(world.cluster.processes))
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port)])


def test_the_cluster_serves_what_one_redis_serves(
    serving_world: ServingWorld, cluster_world: ClusterWorld
) -> None:
    schema = serving_world.schema
    records = _records(serving_world.requests(400)[list(schema.inputs)])
    now = serving_world.config.as_of
    single = read_online(feature_store.open_store(serving_world.settings), schema, records, now)
    store = feature_store.open_store(cluster_world.settings)
    sdk = read_online(store, schema, records, now)
    direct = RedisClusterFeatureReader(store, schema, _client(cluster_world)).read(records, now)
    _assert_equal(schema, records, single, sdk)
    _assert_equal(schema, records, single, direct)
    # A cluster, not one node holding everything: every master holds a share of the keys.
    sizes = [redis.Redis(port=port).dbsize() for port in cluster_world.cluster.masters()]
    assert len(sizes) == 3 and min(sizes) > 0.2 * sum(sizes), sizes


def test_a_master_killed_under_a_stream_costs_503s_then_the_service_recovers(
    serving_world: ServingWorld, cluster_world: ClusterWorld, tmp_path: Path
) -> None:
    rows = serving_world.requests(30)
    bodies = [rest_body(row, serving_world.schema) for _, row in rows.iterrows()]
    env = {
        "online_store": "redis_cluster",
        "redis_connection": cluster_world.settings.redis_connection,
        "prediction_log": str(tmp_path / "log"),
    }
    answers: list[tuple[float, int, int, Any]] = []  # (sent, row, status, probability)

    def send(client: httpx.Client, count: int) -> None:
        for k in range(count):
            row = k % len(bodies)
            sent = time.monotonic()
            reply = client.post("/v1/predict", json=bodies[row])
            probability = reply.json().get("probability") if reply.status_code == 200 else None
            answers.append((sent, row, reply.status_code, probability))

    with (
        serving_world.service("cluster", **env) as service,
        httpx.Client(base_url=service.url, timeout=10) as client,
    ):
        send(client, 2 * len(bodies))  # every row answered while the cluster is whole
        expected = {row: p for _, row, status, p in answers if status == 200}
        assert len(expected) == len(bodies), answers
        dead = cluster_world.cluster.masters()[0]
        cluster_world.cluster.kill(dead)
        killed_at = time.monotonic()
        failed_over_at = None
        while failed_over_at is None or time.monotonic() < failed_over_at + 2.0:
            send(client, 10)
            masters = cluster_world.cluster.masters()
            if failed_over_at is None and dead not in masters and len(masters) == 3:
                failed_over_at = time.monotonic()
            assert time.monotonic() - killed_at < 60, "no failover within a minute"
        cluster_world.cluster.wait_ok(30)
        send(client, len(bodies))
    after = [a for a in answers if a[0] >= killed_at]
    statuses = {status for _, _, status, _ in after}
    assert statuses <= {200, 503}, statuses  # refused or right: never a 500
    assert 503 in statuses  # the dead master's slots were unreachable for a while
    # Nothing served wrong: every answer equals what the whole cluster answered for the row.
    for _, row, status, probability in after:
        if status == 200:
            assert probability == expected[row], (row, probability, expected[row])
    # Recovered by itself: the last round, after the failover, answered every row.
    last = answers[-len(bodies) :]
    assert all(status == 200 for _, _, status, _ in last), last
    recovered = next(
        sent for sent, _, status, _ in after if sent > failed_over_at and status == 200
    )
    assert recovered - failed_over_at < 2.0
    # It was the direct cluster reader that did all this, not the SDK fallback.
    assert "through the Feast SDK" not in (serving_world.folder / "cluster.log").read_text()
