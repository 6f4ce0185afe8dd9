"""Batch scoring: entity rows in, predictions out, through the same feature service (offline,
point in time) and the same encoder and scorer as the online path.

Chunked and resumable: chunk k is written as `part-<k>.parquet` (atomically) next to a
manifest naming the input's sha256, the model version and hash and the chunk size; a rerun
with the same manifest skips the parts already written.

With `batch_engine: ray` the chunks are scored by Ray Data workers on the cluster (each with
the store opened and the model rebuilt from its verified bytes once), which write the same
parts: the output is the same row for row, and a run resumes whichever engine began it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore

from skewless.errors import BadInput, SkewlessError
from skewless.features import store as feature_store
from skewless.features.service import ENTITY_TIMESTAMP, ServiceSchema, historical_features
from skewless.hashing import sha256_file
from skewless.models.artifacts import ServedModel, ShippedModel
from skewless.offline.ray_batch import WorkerStats, for_workers, map_blocks, worker_stats
from skewless.settings import Settings

TIMESTAMP = ENTITY_TIMESTAMP
MANIFEST = "_manifest.json"
PARQUET = (".parquet", ".pq")
CHUNK = "_skewless_chunk"  # a chunk's number, riding with its rows to a Ray worker


class BatchInputError(BadInput):
    """The input file cannot be scored as given (missing columns, unreadable times)."""


@dataclass(frozen=True)
class ChunkStats(WorkerStats):
    chunk: int = 0


@dataclass(frozen=True)
class ScoreResult:
    rows: int
    chunks: int
    skipped: int  # chunks found already written (resumed)
    seconds: float
    output: Path
    workers: tuple[ChunkStats, ...] = ()  # what each Ray worker reported, chunk by chunk


def read_entity_rows(path: Path, schema: ServiceSchema) -> pd.DataFrame:
    if path.suffix == ".csv":
        rows = pd.read_csv(path)
    elif path.suffix in PARQUET:
        rows = pd.read_parquet(path)
    else:
        raise BatchInputError(f"{path}: expected a .parquet or .csv file")
    return _parsed(rows, path, schema)


def read_row_range(
    path: Path, schema: ServiceSchema, start: int, stop: int, total: int
) -> pd.DataFrame:
    """Rows [start, stop) of a parquet input of `total` rows, read from the row groups that
    hold them only, and parsed as `read_entity_rows` parses the whole file. A file of another
    length is not the input the job was given (another node's copy, changed since)."""
    file = pq.ParquetFile(path)
    if file.metadata.num_rows != total:
        raise BatchInputError(
            f"{path} holds {file.metadata.num_rows:,} rows here, {total:,} where the job began: "
            "every node must read the same input (a shared file system)"
        )
    groups: list[int] = []
    first = offset = 0
    for group in range(file.num_row_groups):
        n = file.metadata.row_group(group).num_rows
        if offset + n > start and offset < stop:
            first = first if groups else offset
            groups.append(group)
        offset += n
    table = file.read_row_groups(groups).slice(start - first, stop - start)
    return _parsed(table.to_pandas(), path, schema)


def _parsed(rows: pd.DataFrame, path: Path, schema: ServiceSchema) -> pd.DataFrame:
    needed = [TIMESTAMP, *schema.join_keys, *schema.request_fields]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise BatchInputError(f"{path} lacks the columns {missing}")
    stamps = [TIMESTAMP, *(f for f in schema.request_fields if schema.kinds[f] == "timestamp")]
    for column in stamps:
        try:
            rows[column] = pd.to_datetime(rows[column], utc=True)
        except (ValueError, TypeError) as exc:
            raise BatchInputError(f"{path}: column {column!r} is not a timestamp: {exc}") from None
    return rows


def score_rows(
    store: FeatureStore, schema: ServiceSchema, model: ServedModel, rows: pd.DataFrame
) -> pd.DataFrame:
    """Point-in-time features for `rows`, scored: the rows plus probability and decision."""
    return score_features(rows, historical_features(store, schema.name, rows), model)


def score_features(
    rows: pd.DataFrame, features: pd.DataFrame, model: ServedModel, threads: int = 0
) -> pd.DataFrame:
    # A batch: every core by default (no request waits); a Ray worker owns one CPU.
    scores = model.model.score(features, threads=threads)
    out = rows.reset_index(drop=True).copy()
    out["probability"] = scores
    out["decision"] = scores >= model.model.contract.threshold
    out["model_name"] = model.name
    out["model_version"] = model.version
    return out


def score_file(
    store: FeatureStore,
    schema: ServiceSchema,
    model: ServedModel,
    input_path: Path,
    output_dir: Path,
    *,
    chunk_rows: int,
    progress: Callable[[str], None] = print,
    settings: Settings | None = None,
) -> ScoreResult:
    """Score `input_path` into `output_dir`, on the batch engine `settings` choose (this
    process when none are given)."""
    started = time.perf_counter()
    rows = read_entity_rows(input_path, schema)
    manifest = {
        "input": str(input_path.resolve()),
        "input_sha256": sha256_file(input_path),
        "model_name": model.name,
        "model_version": model.version,
        "model_sha256": model.sha256,
        "chunk_rows": chunk_rows,
        "rows": len(rows),
    }
    output_dir = output_dir.resolve()  # the Ray workers write here from folders of their own
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = output_dir / MANIFEST
    if manifest_path.exists():
        if json.loads(manifest_path.read_text()) != manifest:
            raise BatchInputError(
                f"{output_dir} holds the output of another job (input, model or chunk size "
                "differ): choose another --output or remove it"
            )
    else:
        manifest_path.write_text(json.dumps(manifest, indent=2))
    chunks = max(1, -(-len(rows) // chunk_rows))
    parts = [output_dir / f"part-{k:05d}.parquet" for k in range(chunks)]
    todo = [k for k in range(chunks) if not parts[k].exists()]

    def chunk(k: int) -> pd.DataFrame:
        return rows.iloc[k * chunk_rows : (k + 1) * chunk_rows]

    # On Ray only when there is work (a finished job resumes without a cluster; Ray Data
    # skips empty blocks, so an empty input's one empty part is written here).
    if settings is not None and settings.batch_engine == "ray" and todo and len(rows):
        # A parquet input is read by the workers, each its chunk's rows (so every node must
        # see it at the same path, as it sees the output folder); a CSV one goes through this
        # process's memory.
        if input_path.suffix in PARQUET:
            frames = [pd.DataFrame({CHUNK: [k]}) for k in todo]
            source: tuple[Path, int, int] | None = (input_path.resolve(), chunk_rows, len(rows))
        else:
            frames = [chunk(k).assign(**{CHUNK: k}) for k in todo]
            source = None
        reports = []
        for stats in score_on_ray(settings, schema, model, frames, parts, source):
            reports.append(stats)
            progress(
                f"chunk {stats.chunk + 1}/{chunks}: {stats.rows:,} rows in "
                f"{stats.seconds:.1f} s ({stats.rows / stats.seconds:,.0f} rows/s) on "
                f"node {stats.node} ({stats.worker})"
            )
        lost = [str(parts[k]) for k in todo if not parts[k].exists()]
        if lost:
            raise SkewlessError(f"the Ray workers did not write {lost[:3]} ({len(lost)} parts)")
        seconds = time.perf_counter() - started
        return ScoreResult(
            len(rows), chunks, chunks - len(todo), seconds, output_dir, tuple(reports)
        )

    def features(k: int) -> pd.DataFrame:
        return historical_features(store, schema.name, chunk(k))

    # The next chunk's features are read (DuckDB, which releases the GIL) while this one is
    # scored (LightGBM, likewise) and written: at most two chunks in memory.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading: dict[int, Future[pd.DataFrame]] = {}

        def read(i: int) -> None:
            if i < len(todo):
                reading[i] = pool.submit(features, todo[i])

        read(0)
        for i, k in enumerate(todo):
            t0 = time.perf_counter()
            ready = reading.pop(i).result()
            read(i + 1)
            scored = score_features(chunk(k), ready, model)
            write_part(scored, parts[k])
            seconds = time.perf_counter() - t0
            progress(
                f"chunk {k + 1}/{chunks}: {len(scored):,} rows in {seconds:.1f} s "
                f"({len(scored) / seconds:,.0f} rows/s)"
            )
    skipped = chunks - len(todo)
    return ScoreResult(len(rows), chunks, skipped, time.perf_counter() - started, output_dir)


def write_part(scored: pd.DataFrame, part: Path) -> None:
    """Atomically: a part that exists is whole (a rerun skips it)."""
    tmp = part.with_name(f".{part.name}.{os.getpid()}")
    scored.to_parquet(tmp, index=False)
    tmp.replace(part)


class _ChunkScorer:
    """A Ray Data actor: the store opened and the model rebuilt (from its verified bytes)
    once; each call scores one chunk and writes its part."""

    def __init__(
        self,
        settings: Settings,
        schema: ServiceSchema,
        shipped: ShippedModel,
        parts: list[Path],
        source: tuple[Path, int, int] | None,
    ) -> None:
        self.store = feature_store.open_store(settings)
        self.schema = schema
        self.source = (
            source  # (a parquet input, rows per chunk, its rows), or None: rows come along
        )
        # Verified from its bytes in a folder removed at once (Ray ends actors without
        # running __del__): the model lives on in memory.
        with tempfile.TemporaryDirectory(prefix="skewless-model-") as folder:
            self.model = shipped.load(Path(folder))
        self.parts = parts

    def __call__(self, block: pa.Table) -> pd.DataFrame:
        started = time.perf_counter()
        frame = block.to_pandas()
        k = int(frame[CHUNK].iloc[0])
        if self.source is None:
            rows = frame.drop(columns=[CHUNK])
        else:
            path, chunk_rows, total = self.source
            stop = min((k + 1) * chunk_rows, total)
            rows = read_row_range(path, self.schema, k * chunk_rows, stop, total)
        features = historical_features(self.store, self.schema.name, rows)
        write_part(score_features(rows, features, self.model, threads=1), self.parts[k])
        stats = worker_stats(len(rows), time.perf_counter() - started)
        return pd.DataFrame([{**asdict(stats), "chunk": k}])


def score_on_ray(
    settings: Settings,
    schema: ServiceSchema,
    model: ServedModel,
    frames: list[pd.DataFrame],
    parts: list[Path],
    source: tuple[Path, int, int] | None = None,
) -> Iterator[ChunkStats]:
    """Score each chunk (its number in CHUNK; its rows in the frame, or read by the worker
    from `source`) on the Ray cluster into its part; what each worker reported, as the
    chunks finish."""
    args = (for_workers(settings), schema, ShippedModel.of(model), parts, source)
    for result in map_blocks(settings, frames, _ChunkScorer, args):
        for record in result.to_dict("records"):
            yield ChunkStats(**record)


def read_scores(output_dir: Path) -> pd.DataFrame:
    parts = sorted(output_dir.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
