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

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from feast import FeatureStore, FeatureView, OnDemandFeatureView
from feast.errors import FeatureViewNotFoundException
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from google.protobuf.timestamp_pb2 import Timestamp

from skewless.features.service import OnlineRead, ServiceSchema, apply_ttl, null_key

_SCALARS = {"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val"}


class UnsupportedService(ValueError):
    """The feature service uses something this reader does not implement; use the SDK."""


@dataclass(frozen=True)
class View:
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
        self.views: list[View] = []
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
    ) -> View:
        stored = compute_versioned_name(view, versioning)
        keys = sorted((c.name, key_map.get(c.name, c.name)) for c in view.entity_columns)
        fields = tuple(_mmh3(f"{stored}:{n}") for n in names) + (f"_ts:{stored}".encode(),)
        return View(stored, tuple(keys), names, fields)

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

    def _entity_key(self, view: View, row: dict[str, Any]) -> bytes:
        values = tuple(row.get(request) for _, request in view.join_keys)
        return self._serialized_key(view, values)

    @lru_cache(maxsize=1 << 16)  # noqa: B019 -- one reader per process; keys repeat a lot
    def _serialized_key(self, view: View, values: tuple[Any, ...]) -> bytes:
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


_STAMPS: dict[int | str, float] = {}


def stamp_seconds(stamp: int | str | datetime | None) -> float:
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
    _STAMPS[stamp] = seconds = stamp_seconds(moment)
    return seconds


# Decoded scalars and timestamps by their stored bytes. Values repeat a lot (an airport's
# weather for the hour, a carrier's rates for the day): parsing a ValueProto costs ~2 µs, a
# lookup ~0.1 µs, and a prediction decodes ~40 of them. Bounded: cleared when full.
_DECODED: dict[bytes, Any] = {}
_SECONDS: dict[bytes, float] = {}
_CACHE_LIMIT = 1 << 16
_MISS = object()


def decode_value(raw: bytes | None) -> Any:
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


def seconds_of(raw: bytes | None) -> float:
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
