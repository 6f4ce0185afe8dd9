"""Direct readers of a feature service from Feast's online stores, Redis and SQLite: the
request path's fast alternative to `FeatureStore.get_online_features`.

Why: on this machine the Feast SDK spends ~1.9 ms per single-row call on the 41-feature
service on Redis (2-3 ms on SQLite), of which the store's own work is ~0.1-0.3 ms; the rest is
Python-side conversion between protos, dicts and responses (profile in docs/benchmarks.md).
These readers fetch the same rows (Redis: the same HMGETs in one pipeline; SQLite: the same
table, one SELECT per view), decode the same ValueProtos, run the same on-demand view
(`OnDemandFeatureView.transform_dict`), and apply the same TTL rule as `read_online`.

They read Feast's storage layout (entity key serialization, murmur3 field names and
`_ts:<view>` on Redis, `<project>_<view>` tables on SQLite), so they are tied to the pinned
Feast version; `tests/integration/test_direct_reader_parity.py` proves each returns exactly
what `read_online` returns, value by value.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import redis
from feast import FeatureStore, FeatureView, OnDemandFeatureView
from feast.errors import FeatureViewNotFoundException
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from google.protobuf.timestamp_pb2 import Timestamp
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from skewless.features.service import OnlineRead, ServiceSchema, apply_ttl, null_key
from skewless.online.resp import RespConnection, pack

_SCALARS = {"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val"}


class UnsupportedService(ValueError):
    """The feature service uses something this reader does not implement; use the SDK."""


@dataclass(frozen=True)
class _View:
    name: str  # the name Feast stores it under (versioned when versioning is on)
    join_keys: tuple[tuple[str, str], ...]  # (key in the view, key in the request), sorted
    features: tuple[str, ...]
    fields: tuple[bytes, ...]  # murmur3 field names of `features`, then the timestamp field


# Per view, per row: the decoded values of the view's features (None where absent) and the
# row's write time in whole seconds (0.0: never written).
Fetched = list[tuple[list[Any], float]]


class DirectFeatureReader:
    """What both stores share: the service's views and on-demand views, entity keys, the
    assembly of a read and its TTL rule. A store says how to fetch (`_fetch`)."""

    def __init__(self, store: FeatureStore, schema: ServiceSchema) -> None:
        config = store.config
        self.schema = schema
        self.project = config.project.encode()
        self.key_version = config.entity_key_serialization_version
        versioning = config.registry.enable_online_feature_view_versioning
        self.views: list[_View] = []
        self.on_demand: list[tuple[OnDemandFeatureView, tuple[str, ...]]] = []
        service = store.get_feature_service(schema.name)
        for projection in service.feature_view_projections:
            if getattr(projection, "version_tag", None) is not None:
                raise UnsupportedService(f"{projection.name} is pinned to a version")
            names = tuple(f.name for f in projection.features)
            try:
                view = store.get_feature_view(projection.name)
            except FeatureViewNotFoundException:
                odfv = store.get_on_demand_feature_view(projection.name)
                if odfv.source_feature_view_projections or odfv.write_to_online_store:
                    raise UnsupportedService(
                        f"{odfv.name} reads other views or is written to the online store"
                    ) from None
                self.on_demand.append((odfv, names))
                continue
            if projection.name_alias:
                raise UnsupportedService(f"{projection.name} is aliased")
            self.views.append(self._view(view, names, projection.join_key_map, versioning))

    def _view(
        self, view: FeatureView, names: tuple[str, ...], key_map: dict[str, str], versioning: bool
    ) -> _View:
        stored = compute_versioned_name(view, versioning)
        keys = sorted((c.name, key_map.get(c.name, c.name)) for c in view.entity_columns)
        fields = tuple(_mmh3(f"{stored}:{n}") for n in names) + (f"_ts:{stored}".encode(),)
        return _View(stored, tuple(keys), names, fields)

    def _fetch(self, keys: list[list[bytes]]) -> list[Fetched]:
        """Per view (in `self.views` order), the rows of `keys[v]`."""
        raise NotImplementedError

    def _key_suffix(self) -> bytes:
        return b""

    def read(self, rows: list[dict[str, Any]], now: datetime) -> OnlineRead:
        keys = [[self._entity_key(view, row) for row in rows] for view in self.views]
        values: dict[str, list[Any]] = {}
        stamps: dict[str, list[float]] = {}
        for view, fetched in zip(self.views, self._fetch(keys), strict=True):
            columns: list[list[Any]] = [[] for _ in view.features]
            written: list[float] = []
            for decoded, seconds in fetched:
                for column, value in zip(columns, decoded, strict=True):
                    column.append(value)
                written.append(seconds)
            for name, column in zip(view.features, columns, strict=True):
                values[name] = column
                stamps[name] = written
        for odfv, names in self.on_demand:
            inputs = {
                f.name: [_whole_seconds(row.get(f.name)) for row in rows]
                for source in odfv.source_request_sources.values()
                for f in source.schema
            }
            # Request fields only (checked above), so the name aliasing transform_dict adds
            # first has nothing to do; the transformation itself is the same call.
            if (
                odfv.mode == "python"
                and not odfv.singleton
                and odfv.feature_transformation is not None
            ):
                out = odfv.feature_transformation.transform(inputs)
            else:
                out = odfv.transform_dict(inputs)
            for name in names:
                values[name] = list(out[name])
        ordered = {name: values[name] for name in self.schema.features}
        return apply_ttl(self.schema, ordered, stamps, now)

    def _entity_key(self, view: _View, row: dict[str, Any]) -> bytes:
        values = tuple(row.get(request) for _, request in view.join_keys)
        return self._serialized_key(view, values)

    @lru_cache(maxsize=1 << 16)  # noqa: B019 -- one reader per process; keys repeat a lot
    def _serialized_key(self, view: _View, values: tuple[Any, ...]) -> bytes:
        key = EntityKeyProto(
            join_keys=[k for k, _ in view.join_keys],
            entity_values=[
                self._key_value(request, value)
                for (_, request), value in zip(view.join_keys, values, strict=True)
            ],
        )
        return serialize_entity_key(key, self.key_version) + self._key_suffix()

    def _key_value(self, name: str, value: Any) -> ValueProto:
        if null_key(value):
            return ValueProto(string_val="")  # no entity's key: reads as missing, as offline
        if self.schema.kinds.get(name) == "int":
            return ValueProto(int64_val=int(value))
        return ValueProto(string_val=str(value))


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


def _hmget_heads(views: list[_View]) -> list[tuple[bytes, bytes]]:
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
        result.append([([_decode(raw) for raw in r[:-1]], _seconds(r[-1])) for r in chunk])
    return result


def _header(arguments: int) -> int:
    """The length of RESP's array header for `arguments` items: `*<n>\\r\\n`."""
    return len(b"*%d\r\n" % arguments)


class SqliteFeatureReader(DirectFeatureReader):
    """Feast's SQLite layout: a table per view (`<project>_<view>`), a row per entity key and
    feature, the ValueProto in `value`, the write time in `event_ts`. Its own read-only
    connection: the service never writes the online store."""

    def __init__(self, store: FeatureStore, schema: ServiceSchema) -> None:
        config = store.config
        if config.online_store.type not in (
            "sqlite",
            "feast.infra.online_stores.sqlite.SqliteOnlineStore",
        ):
            raise UnsupportedService("the online store is not SQLite")
        path = Path(config.online_store.path)
        if config.repo_path and not path.is_absolute():
            path = Path(config.repo_path) / path
        if not path.exists():
            raise UnsupportedService(f"no SQLite online store at {path} yet (materialize)")
        self.connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            check_same_thread=False,
            timeout=0.1,  # a write lock (materialize) costs a request 100 ms, as Redis's timeout
        )
        super().__init__(store, schema)
        project = config.project
        self.tables = [
            '"{}"'.format((project + "_" + view.name).replace('"', '""')) for view in self.views
        ]
        self._queries: dict[tuple[int, ...], str] = {}

    def _query(self, counts: tuple[int, ...]) -> str:
        """One statement for every view (a UNION ALL; sqlite keeps it prepared): one call into
        sqlite per request instead of one per view."""
        query = self._queries.get(counts)
        if query is None:
            if len(self._queries) >= 256:  # batches of many sizes: keep the cache bounded
                self._queries.clear()
            query = self._queries[counts] = " UNION ALL ".join(
                f"SELECT {v}, entity_key, feature_name, value, event_ts FROM {table} "
                f"WHERE entity_key IN ({','.join('?' * n)})"
                for v, (table, n) in enumerate(zip(self.tables, counts, strict=True))
            )
        return query

    def _fetch(self, keys: list[list[bytes]]) -> list[Fetched]:
        unique = [list(dict.fromkeys(view_keys)) for view_keys in keys]
        query = self._query(tuple(len(u) for u in unique))
        found: list[dict[bytes, tuple[dict[str, bytes], float]]] = [{} for _ in self.views]
        parameters = [key for view_keys in unique for key in view_keys]
        for v, key, feature, raw, stamp in self.connection.execute(query, parameters):
            features, _ = found[v].get(key, ({}, 0.0))
            features[feature] = raw
            found[v][key] = (features, _stamp_seconds(stamp))
        result = []
        for view, view_keys, view_found in zip(self.views, keys, found, strict=True):
            rows = []
            for key in view_keys:
                features, seconds = view_found.get(key, ({}, 0.0))
                rows.append(([_decode(features.get(name)) for name in view.features], seconds))
            result.append(rows)
        return result


_STAMPS: dict[int | str, float] = {}


def _stamp_seconds(stamp: int | str | datetime | None) -> float:
    """Whole seconds of a stored `event_ts`, read as sqlite holds it: Feast writes a Unix
    epoch integer and its SDK reads it back as a naive local time taken for UTC, which this
    repeats (equal to the SDK on any machine's zone). Kept by value: write times repeat."""
    if stamp is None:
        return 0.0
    if isinstance(stamp, datetime):
        return float(int((stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()))
    known = _STAMPS.get(stamp)
    if known is not None:
        return known
    moment = (
        datetime.fromisoformat(stamp) if isinstance(stamp, str) else datetime.fromtimestamp(stamp)
    )
    if len(_STAMPS) >= _CACHE_LIMIT:
        _STAMPS.clear()
    _STAMPS[stamp] = seconds = _stamp_seconds(moment)
    return seconds


# Decoded scalars and timestamps by their stored bytes. Values repeat a lot (an airport's
# weather for the hour, a carrier's rates for the day): parsing a ValueProto costs ~2 µs, a
# lookup ~0.1 µs, and a prediction decodes ~40 of them. Bounded: cleared when full.
_DECODED: dict[bytes, Any] = {}
_SECONDS: dict[bytes, float] = {}
_CACHE_LIMIT = 1 << 16
_MISS = object()


def _decode(raw: bytes | None) -> Any:
    if not raw:
        return None
    known = _DECODED.get(raw, _MISS)
    if known is not _MISS:
        return known
    value = ValueProto()
    value.ParseFromString(raw)
    kind = value.WhichOneof("val")
    if kind is None:
        decoded = None
    elif kind in _SCALARS:
        decoded = getattr(value, kind)
    else:  # lists and other kinds: mutable or rare, never cached
        return feast_value_type_to_python_type(value)
    if len(_DECODED) >= _CACHE_LIMIT:
        _DECODED.clear()
    _DECODED[raw] = decoded
    return decoded


def _seconds(raw: bytes | None) -> float:
    """Whole seconds, as the SDK's response reports a feature's timestamp."""
    if not raw:
        return 0.0
    known = _SECONDS.get(raw)
    if known is not None:
        return known
    stamp = Timestamp()
    stamp.ParseFromString(raw)
    if len(_SECONDS) >= _CACHE_LIMIT:
        _SECONDS.clear()
    _SECONDS[raw] = seconds = float(stamp.seconds)
    return seconds


def _whole_seconds(value: Any) -> Any:
    """The SDK passes request data through protos, whose Unix timestamps hold whole seconds."""
    return value.replace(microsecond=0) if isinstance(value, datetime) else value
