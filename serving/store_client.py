"""The online store's client on the request path: Redis options and a client with short
timeouts, a bounded pool and no retries, and the probe that says whether the store answers."""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from .core import STORE_ERRORS
from .settings import ServingSettings


def request_path_settings(settings: ServingSettings) -> ServingSettings:
    """Redis options for the request path: short timeouts, a bounded pool and no retries, so
    that a stopped or frozen Redis costs a request one timeout, not seconds of backoff."""
    if not settings.redis_online:
        return settings
    timeout = settings.redis_timeout_ms / 1000
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "max_connections": settings.redis_max_connections,
    }
    if (
        settings.online_store == "redis"
    ):  # a cluster keeps redis-py's retries: they follow a failover
        options["retry"] = "null"  # Feast json-decodes values: null -> redis-py's no-retry policy
    given = {part.split("=", 1)[0] for part in settings.redis_connection.split(",")}
    extra = [f"{k}={v}" for k, v in options.items() if k not in given]
    return settings.model_copy(
        update={"redis_connection": ",".join([settings.redis_connection, *extra])}
    )


RedisClient = redis.Redis | RedisCluster


def request_path_redis(settings: ServingSettings) -> RedisClient:
    """A Redis client for the request path, from Feast's connection string (host:port, then
    db=, password=, username=, ssl=; a cluster: its nodes' host:port, then the options), with
    the service's timeouts, pool bound and, on one server, no retries."""
    parts = settings.redis_connection.split(",")
    params = dict(part.split("=", 1) for part in parts if "=" in part)
    nodes = [part.partition(":") for part in parts if "=" not in part]
    timeout = settings.redis_timeout_ms / 1000
    common: dict[str, Any] = {
        "username": params.get("username"),
        "password": params.get("password"),
        "ssl": params.get("ssl", "false").lower() == "true",
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "max_connections": settings.redis_max_connections,
    }
    if settings.online_store == "redis_cluster":
        return RedisCluster(
            startup_nodes=[
                ClusterNode(host, int(port or 6379))  # type: ignore[no-untyped-call]
                for host, _, port in nodes
            ],
            **common,
        )
    host, _, port = nodes[0]
    return redis.Redis(
        host=host,
        port=int(port or 6379),
        db=int(params.get("db", 0)),
        retry=None,  # type: ignore[arg-type]  # redis-py: None means no retries
        **common,
    )


class StoreProbe:
    """Does the online store answer? A Redis PING with the request path's timeout; on a
    cluster, the slot map fetched again and a PING to every master in it, so that it answers
    yes only once every slot is served (after a failover: once a replica was promoted)."""

    def __init__(self, client: RedisClient | None) -> None:
        self.client = client

    def ok(self) -> bool:
        if self.client is None:
            return True
        try:
            if isinstance(self.client, RedisCluster):
                self.client.nodes_manager.initialize()
                masters = self.client.get_primaries()  # type: ignore[no-untyped-call]
                return bool(masters) and all(m.redis_connection.ping() for m in masters)
            return bool(self.client.ping())
        except STORE_ERRORS:
            return False
