"""A direct reader of a feature service from Feast's Redis online store: the request path's
fast alternative to `FeatureStore.get_online_features`.

Why: on this machine the Feast SDK spends ~1.9 ms per single-row call on the 41-feature
service, of which the Redis round trip is ~0.3 ms; the rest is Python-side conversion
between protos, dicts and responses (profile in docs/benchmarks.md). This reader issues the
same HMGETs in one pipeline, decodes the same ValueProtos, runs the same on-demand view
(`OnDemandFeatureView.transform_dict`), and applies the same TTL rule as `read_online`.

It reads Feast's storage layout (entity key serialization, murmur3 field names, `_ts:<view>`),
so it is tied to the pinned Feast version; `tests/integration/test_redis_reader_parity.py`
proves it returns exactly what `read_online` returns, value by value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
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

from .features import OnlineRead, ServiceSchema, apply_ttl, null_key

_SCALARS = {"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val"}


class UnsupportedService(ValueError):
    """The feature service uses something this reader does not implement; use the SDK."""


@dataclass(frozen=True)
class _View:
    name: str  # the name Feast stores it under (versioned when versioning is on)
    join_keys: tuple[tuple[str, str], ...]  # (key in the view, key in the request), sorted
    features: tuple[str, ...]
    fields: tuple[bytes, ...]  # murmur3 field names of `features`, then the timestamp field


class RedisFeatureReader:
    def __init__(self, store: FeatureStore, schema: ServiceSchema, client: redis.Redis) -> None:
        config = store.config
        if config.online_store.type not in (
            "redis",
            "feast.infra.online_stores.redis.RedisOnlineStore",
        ):
            raise UnsupportedService("the online store is not Redis")
        if getattr(config.online_store, "redis_type", "redis") != "redis":
            raise UnsupportedService("only a single Redis server (not cluster or sentinel)")
        self.client = client
        self.schema = schema
        self.project = config.project.encode()
        self.key_version = config.entity_key_serialization_version
        versioning = config.registry.enable_online_feature_view_versioning
        self.views: list[_View] = []
        self.on_demand: list[tuple[OnDemandFeatureView, tuple[str, ...]]] = []
        service = store.get_feature_service(schema.name)
        for projection in service.feature_view_projections:
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

    def read(self, rows: list[dict[str, Any]], now: datetime) -> OnlineRead:
        pipe = self.client.pipeline(transaction=False)
        for view in self.views:
            for row in rows:
                pipe.hmget(self._redis_key(view, row), view.fields)  # type: ignore[arg-type]
        replies = pipe.execute()
        values: dict[str, list[Any]] = {}
        stamps: dict[str, list[float]] = {}
        n = len(rows)
        for v, view in enumerate(self.views):
            columns: list[list[Any]] = [[] for _ in view.features]
            written: list[float] = []
            for reply in replies[v * n : (v + 1) * n]:
                for column, raw in zip(columns, reply, strict=False):
                    column.append(_decode(raw))
                written.append(_seconds(reply[-1]))
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

    def _redis_key(self, view: _View, row: dict[str, Any]) -> bytes:
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
        return serialize_entity_key(key, self.key_version) + self.project

    def _key_value(self, name: str, value: Any) -> ValueProto:
        if null_key(value):
            return ValueProto(string_val="")  # no entity's key: reads as missing, as offline
        if self.schema.kinds.get(name) == "int":
            return ValueProto(int64_val=int(value))
        return ValueProto(string_val=str(value))


def _decode(raw: bytes | None) -> Any:
    if not raw:
        return None
    value = ValueProto()
    value.ParseFromString(raw)
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    return getattr(value, kind) if kind in _SCALARS else feast_value_type_to_python_type(value)


def _seconds(raw: bytes | None) -> float:
    """Whole seconds, as the SDK's response reports a feature's timestamp."""
    if not raw:
        return 0.0
    stamp = Timestamp()
    stamp.ParseFromString(raw)
    return float(stamp.seconds)


def _whole_seconds(value: Any) -> Any:
    """The SDK passes request data through protos, whose Unix timestamps hold whole seconds."""
    return value.replace(microsecond=0) if isinstance(value, datetime) else value
