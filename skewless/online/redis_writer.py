"""A direct writer of one feature view's rows into Feast's Redis online store: the stream
processor's fast alternative to `FeatureStore.write_to_online_store`.

Why: Feast's write goes DataFrame -> Arrow -> protos row by row and reads every row's stored
timestamp before writing it (two round trips); for the stream's small, frequent batches that
conversion is most of the processor's time (docs/benchmarks.md). This writer builds the same
hash Feast builds — the serialized entity key plus project as the key, `_ts:<view>` and the
murmur3 field names as fields, each value a serialized ValueProto, an empty one for a missing
value — in one pipelined round trip. It does not compare timestamps: its caller writes a
view's rows one writer at a time and only forward (streaming/tile_store.py `writing`), and a
late row it rewrites is meant to replace the older one.

It writes Feast's storage layout, so it is tied to the pinned Feast version, as the direct
readers are (skewless/online/readers.py); tests/integration/test_direct_writer_parity.py
proves its hashes equal, byte for byte, what Feast's own write stores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from feast import FeatureStore
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from skewless.online.readers import UnsupportedService

# The scalar types written here, as Feast converts them (type_map: field and Python type).
_SCALARS: dict[ValueType, tuple[str, Callable[[Any], Any]]] = {
    ValueType.DOUBLE: ("double_val", float),
    ValueType.FLOAT: ("float_val", float),
    ValueType.INT64: ("int64_val", int),
    ValueType.INT32: ("int32_val", int),
    ValueType.STRING: ("string_val", str),
    ValueType.BOOL: ("bool_val", bool),
}
_EMPTY: bytes = ValueProto().SerializeToString()


class RedisRowWriter:
    """Rows of one feature view: dicts holding its join keys and features."""

    def __init__(self, store: FeatureStore, view_name: str, client: redis.Redis) -> None:
        config = store.config
        online = config.online_store
        if online.type not in ("redis", "feast.infra.online_stores.redis.RedisOnlineStore"):
            raise UnsupportedService("the online store is not Redis")
        if getattr(online, "redis_type", "redis") != "redis":
            raise UnsupportedService("the online store is not one Redis server")
        view = store.get_feature_view(view_name)
        stored = compute_versioned_name(view, config.registry.enable_online_feature_view_versioning)
        self.client = client
        self.project = config.project.encode()
        self.key_version = config.entity_key_serialization_version
        self.key_ttl: int | None = getattr(online, "key_ttl_seconds", None)
        self.ts_field = f"_ts:{stored}".encode()
        self.keys = [
            (c.name, _scalar(c.name, c.dtype.to_value_type())) for c in view.entity_columns
        ]
        self._keys: dict[tuple[Any, ...], bytes] = {}
        self.features = [
            (f.name, _mmh3(f"{stored}:{f.name}"), _scalar(f.name, f.dtype.to_value_type()))
            for f in view.features
        ]

    def write(self, rows: Sequence[dict[str, Any]], stamps: Sequence[datetime]) -> int:
        """Each row with its event time; the rows written."""
        pipe = self.client.pipeline(transaction=False)
        timestamps: dict[datetime, bytes] = {}  # a stream's rows share a few stamps
        for row, stamp in zip(rows, stamps, strict=True):
            key = self._key(tuple(row[name] for name, _ in self.keys))
            encoded = timestamps.get(stamp)
            if encoded is None:
                encoded = timestamps[stamp] = _timestamp(stamp)
            mapping: dict[bytes, bytes] = {self.ts_field: encoded}
            for name, field, (attribute, convert) in self.features:
                mapping[field] = _value(row.get(name), attribute, convert)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            if self.key_ttl:
                pipe.expire(key, self.key_ttl)
        pipe.execute()
        return len(rows)

    def _key(self, values: tuple[Any, ...]) -> bytes:
        # The same keys come back at every boundary: each serialized once.
        key = self._keys.get(values)
        if key is None:
            key = self._keys[values] = self._serialized_key(values)
        return key

    def _serialized_key(self, values: tuple[Any, ...]) -> bytes:
        key = EntityKeyProto(
            join_keys=[name for name, _ in self.keys],
            entity_values=[
                ValueProto(**{attribute: convert(value)})
                for (_, (attribute, convert)), value in zip(self.keys, values, strict=True)
            ],
        )
        return serialize_entity_key(key, self.key_version) + self.project


def row_writer(store: FeatureStore, view_name: str) -> RedisRowWriter | None:
    """The direct writer of a view, on the client Feast builds from its connection string;
    None where this writer does not apply (another store, a cluster, a non-scalar field)."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    try:
        if getattr(store.config.online_store, "redis_type", None) != "redis":
            raise UnsupportedService("not one Redis server")
        client = RedisOnlineStore()._get_client(store.config.online_store)
        return RedisRowWriter(store, view_name, client)
    except UnsupportedService:
        return None


def _scalar(name: str, kind: ValueType) -> tuple[str, Callable[[Any], Any]]:
    if kind not in _SCALARS:
        raise UnsupportedService(f"{name} is a {kind.name}: only scalars are written directly")
    return _SCALARS[kind]


def _value(value: Any, attribute: str, convert: Callable[[Any], Any]) -> bytes:
    if value is None or value != value:  # None or NaN: missing, as Feast stores it
        return _EMPTY
    serialized: bytes = ValueProto(**{attribute: convert(value)}).SerializeToString()
    return serialized


def _timestamp(stamp: datetime) -> bytes:
    moment = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    proto = Timestamp()
    proto.FromDatetime(moment)
    serialized: bytes = proto.SerializeToString()
    return serialized
