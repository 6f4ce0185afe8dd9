"""Direct readers of a feature service from Feast's Redis online store, one server or a
cluster: the same HMGETs Feast sends, in one pipeline (skewless/online/readers.py says why)."""

from __future__ import annotations

from typing import Any

import redis
from feast import FeatureStore
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from skewless.features.service import ServiceSchema
from skewless.online.readers import (
    DirectFeatureReader,
    Fetched,
    UnsupportedService,
    View,
    decode_value,
    seconds_of,
)
from skewless.online.resp import RespConnection, pack


class RedisFeatureReader(DirectFeatureReader):
    """Feast's Redis layout: a hash per entity key (+ project), murmur3 field names."""

    def __init__(self, store: FeatureStore, schema: ServiceSchema, client: redis.Redis) -> None:
        _check_redis(store, "redis")
        try:
            RespConnection(client)
        except ValueError as exc:
            raise UnsupportedService(str(exc)) from None
        self.client = client
        # Idle connections: a caller takes one and gives it back (list pop/append are atomic,
        # so a reader shared with a thread never hands one connection to two callers).
        self._idle: list[RespConnection] = []
        super().__init__(store, schema)
        self._hmget = _hmget_heads(self.views)

    def _key_suffix(self) -> bytes:
        return self.project

    def _fetch(self, keys: list[list[bytes]]) -> list[Fetched]:
        connection = self._idle.pop() if self._idle else RespConnection(self.client)
        try:
            replies = connection.execute(_hmgets(self._hmget, keys))
        finally:
            self._idle.append(connection)  # after an error it reconnects on its next call
        return _fetched(keys, replies)


class RedisClusterFeatureReader(DirectFeatureReader):
    """The same layout and commands on a Redis Cluster: each key's hash slot by redis-py's
    CRC16, the slot's master from redis-py's slot map, one pipeline per master, all sent
    before any is read.

    A master that does not answer fails the read (503, and the circuit opens), and the slot map
    is fetched again before the next read, so the service recovers by itself once the cluster
    has promoted a replica. A MOVED reply (the slot has moved: a failover seen late, a
    rebalance) fetches the map and reads once more; an ASK (a slot being migrated) fails the
    read: resharding under traffic costs 503s for the keys in flight."""

    def __init__(self, store: FeatureStore, schema: ServiceSchema, cluster: RedisCluster) -> None:
        _check_redis(store, "redis_cluster")
        self.cluster = cluster
        self._idle: dict[str, list[RespConnection]] = {}  # per node, as for one server
        self._stale = False
        super().__init__(store, schema)
        self._hmget = _hmget_heads(self.views)

    def _key_suffix(self) -> bytes:
        return self.project

    def _fetch(self, keys: list[list[bytes]]) -> list[Fetched]:
        try:
            if self._stale:
                self._refresh()
                self._stale = False  # one refresh per failed read, not one per request
            try:
                return self._fetch_by_node(keys)
            except ResponseError as exc:
                if not str(exc).startswith("MOVED"):
                    raise
                # A slot moved (a failover, a rebalance): the map again, and once more.
                self._refresh()
                return self._fetch_by_node(keys)
        except (redis.RedisError, RedisClusterException):
            self._stale = True
            raise

    def _refresh(self) -> None:
        """The slot map again; the kept connections of nodes no longer in it are closed (a
        dead master's would otherwise be kept for good)."""
        nodes = self.cluster.nodes_manager
        nodes.initialize()
        for name in set(self._idle) - set(nodes.nodes_cache):
            for connection in self._idle.pop(name):
                connection.close()

    def _fetch_by_node(self, keys: list[list[bytes]]) -> list[Fetched]:
        nodes = self.cluster.nodes_manager
        commands = _hmgets(self._hmget, keys)
        flat = [key for view_keys in keys for key in view_keys]
        by_node: dict[str, tuple[Any, list[int]]] = {}
        for index, key in enumerate(flat):
            node = nodes.get_node_from_slot(key_slot(key))
            by_node.setdefault(node.name, (node, []))[1].append(index)
        replies: list[Any] = [None] * len(flat)
        # Every master's pipeline is sent before any is read: the round trips overlap.
        asked: list[tuple[RespConnection, list[int]]] = []
        try:
            for name, (node, indices) in by_node.items():
                idle = self._idle.setdefault(name, [])
                connection = idle.pop() if idle else RespConnection(node.redis_connection)
                asked.append((connection, indices))
                connection.send([commands[i] for i in indices])
            for connection, indices in asked:
                for index, reply in zip(indices, connection.receive(), strict=True):
                    replies[index] = reply
        except BaseException:
            for connection, _ in asked:
                connection.close()  # replies may be owed: the next use connects afresh
            raise
        finally:
            for (name, _), (connection, _) in zip(by_node.items(), asked, strict=False):
                self._idle[name].append(connection)
        return _fetched(keys, replies)


def _check_redis(store: FeatureStore, redis_type: str) -> None:
    config = store.config
    if config.online_store.type not in (
        "redis",
        "feast.infra.online_stores.redis.RedisOnlineStore",
    ):
        raise UnsupportedService("the online store is not Redis")
    if getattr(config.online_store, "redis_type", "redis") != redis_type:
        raise UnsupportedService(f"the online store is not {redis_type} (sentinel is not read)")


def _hmget_heads(views: list[View]) -> list[tuple[bytes, bytes]]:
    """HMGET <key> <fields...> in RESP, per view: only the key changes between requests."""
    return [
        (
            b"*%d\r\n$5\r\nHMGET\r\n" % (len(view.fields) + 2),
            pack(*view.fields)[_header(len(view.fields)) :],
        )
        for view in views
    ]


def _hmgets(heads: list[tuple[bytes, bytes]], keys: list[list[bytes]]) -> list[bytes]:
    return [
        b"%s$%d\r\n%s\r\n%s" % (head, len(key), key, fields)
        for (head, fields), view_keys in zip(heads, keys, strict=True)
        for key in view_keys
    ]


def _fetched(keys: list[list[bytes]], replies: list[Any]) -> list[Fetched]:
    """The replies of each view, in the order they were asked."""
    result: list[Fetched] = []
    start = 0
    for view_keys in keys:
        chunk = replies[start : start + len(view_keys)]
        start += len(view_keys)
        result.append([([decode_value(raw) for raw in r[:-1]], seconds_of(r[-1])) for r in chunk])
    return result


def _header(arguments: int) -> int:
    """The length of RESP's array header for `arguments` items: `*<n>\\r\\n`."""
    return len(b"*%d\r\n" % arguments)
