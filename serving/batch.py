"""Batch scoring: entity rows in, predictions out, through the same feature service (offline,
point in time) and the same `feature_matrix` and scorer as the online path.

Chunked and resumable: chunk k is written as `part-<k>.parquet` (atomically) next to a
manifest naming the input's sha256, the model version and hash and the chunk size; a rerun
with the same manifest skips the parts already written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from skewless.errors import BadInput
from skewless.features import ENTITY_TIMESTAMP, ServiceSchema, historical_features
from skewless.hashing import sha256_file
from skewless.model_artifacts import ServedModel

TIMESTAMP = ENTITY_TIMESTAMP
MANIFEST = "_manifest.json"


class BatchInputError(BadInput):
    """The input file cannot be scored as given (missing columns, unreadable times)."""


@dataclass(frozen=True)
class ScoreResult:
    rows: int
    chunks: int
    skipped: int  # chunks found already written (resumed)
    seconds: float
    output: Path


def read_entity_rows(path: Path, schema: ServiceSchema) -> pd.DataFrame:
    if path.suffix == ".csv":
        rows = pd.read_csv(path)
    elif path.suffix in (".parquet", ".pq"):
        rows = pd.read_parquet(path)
    else:
        raise BatchInputError(f"{path}: expected a .parquet or .csv file")
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


def score_features(rows: pd.DataFrame, features: pd.DataFrame, model: ServedModel) -> pd.DataFrame:
    scores = model.model.score(features, threads=0)  # a batch: every core, no request waits
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
) -> ScoreResult:
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
            tmp = parts[k].with_name("." + parts[k].name)
            scored.to_parquet(tmp, index=False)
            tmp.replace(parts[k])
            seconds = time.perf_counter() - t0
            progress(
                f"chunk {k + 1}/{chunks}: {len(scored):,} rows in {seconds:.1f} s "
                f"({len(scored) / seconds:,.0f} rows/s)"
            )
    skipped = chunks - len(todo)
    return ScoreResult(len(rows), chunks, skipped, time.perf_counter() - started, output_dir)


def read_scores(output_dir: Path) -> pd.DataFrame:
    parts = sorted(output_dir.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
