"""The direct reader of a feature service from Feast's SQLite online store: one SELECT per
view on the same tables (skewless/online/readers.py says why)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from feast import FeatureStore

from skewless.features.service import ServiceSchema
from skewless.online.readers import (
    DirectFeatureReader,
    Fetched,
    UnsupportedService,
    decode_value,
    stamp_seconds,
)


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
            found[v][key] = (features, stamp_seconds(stamp))
        result = []
        for view, view_keys, view_found in zip(self.views, keys, found, strict=True):
            rows = []
            for key in view_keys:
                features, seconds = view_found.get(key, ({}, 0.0))
                rows.append(([decode_value(features.get(name)) for name in view.features], seconds))
            result.append(rows)
        return result
