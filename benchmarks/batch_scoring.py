"""Batch scoring throughput on the whole year (336,776 requests): `skewless score` (chunked,
resumable, through `serving.batch`) against the naive way, one `get_historical_features` on
the whole entity frame followed by `Booster.predict`.

    python -m benchmarks.batch_scoring [--chunk-rows 50000] [--rows N]

Needs `skewless quickstart` (tables and a champion). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from serving.batch import read_scores, score_file
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.artifacts import ModelFetcher
from skewless.models.configuration import load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=0, help="Only the first N (0: all).")
    args = parser.parse_args()
    settings = Settings()
    config = load_model_config(settings.model_file)
    store = feature_store.open_store(settings)
    schema = service_schema(store, config.feature_service)
    rows = pd.read_parquet(feature_store.file_source_path(store, config.entity_source))
    if args.rows:
        rows = rows.head(args.rows)
    loader = ModelFetcher(
        ModelRegistry.of(settings), config.name, schema, settings.state_dir / "bench"
    )
    model = loader.load()
    # Warm-up, not timed: whichever way ran first would otherwise pay DuckDB's and the page
    # cache's cold start alone.
    store.get_historical_features(
        entity_df=rows.head(1000), features=store.get_feature_service(config.feature_service)
    ).to_df()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "rows.parquet"
        rows.to_parquet(source, index=False)
        started = time.perf_counter()
        score_file(store, schema, model, source, Path(tmp) / "out", chunk_rows=args.chunk_rows)
        ours = time.perf_counter() - started
        scored = read_scores(Path(tmp) / "out")

    started = time.perf_counter()
    frame = store.get_historical_features(
        entity_df=rows, features=store.get_feature_service(config.feature_service)
    ).to_df()
    matrix = frame[model.model.contract.feature_names].copy()
    for spec in model.model.contract.features:  # what a hand-rolled script would do
        if spec.kind == "categorical":
            matrix[spec.name] = pd.Categorical(matrix[spec.name], categories=spec.categories).codes
            matrix[spec.name] = matrix[spec.name].where(matrix[spec.name] >= 0, np.nan)
    naive_scores = model.model.booster.predict(matrix.to_numpy(dtype="float64"))
    naive = time.perf_counter() - started
    loader.close()
    n = len(rows)
    print(f"\n{n:,} rows; chunks of {args.chunk_rows:,}\n")
    print("| way | seconds | rows/s | rows out |\n|---|---|---|---|")
    ours_row = f"| `skewless score` (chunked, resumable) | {ours:.1f} | {n / ours:,.0f} |"
    print(f"{ours_row} {len(scored):,} |")
    print(
        f"| naive: get_historical_features + Booster.predict | {naive:.1f} | {n / naive:,.0f} "
        f"| {len(naive_scores):,} |"
    )


if __name__ == "__main__":
    main()
