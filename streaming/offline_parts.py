"""The processor's rows, offline: each write's rows as a part beside the view's batch table
(the layout and how the ASOF store reads it: skewless/offline/stream_parts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from feast import FeatureStore

from skewless.offline.source_paths import absolute_source
from skewless.offline.stream_parts import table_schema, write_part


class OfflineParts:
    def __init__(self, table_path: Path) -> None:
        self.table_path = table_path
        self.schema = table_schema(table_path)  # None: the parts' types are inferred
        self.parts_written = 0

    @classmethod
    def of(cls, store: FeatureStore, view: str) -> OfflineParts:
        source = store.get_feature_view(view).batch_source
        resolved = absolute_source(source, store.repo_path) if source is not None else None
        path = getattr(resolved, "path", None)
        if not path or "://" in path:
            raise ValueError(f"{view}: the offline parts need a local parquet source, not {path}")
        return cls(Path(path))

    @classmethod
    def beside(cls, parts: dict[str, OfflineParts], table: str) -> OfflineParts:
        """Parts of a table of the processor's own, in the folder of the views' tables."""
        folder = next(iter(parts.values())).table_path.parent
        return cls(folder / f"{table}.parquet")

    def write(self, rows: list[dict[str, Any]], name: str) -> None:
        table = (
            pa.Table.from_pylist(rows, schema=self.schema)
            if self.schema is not None
            else pa.Table.from_pylist(rows)
        )
        write_part(self.table_path, name, table)
        self.parts_written += 1
