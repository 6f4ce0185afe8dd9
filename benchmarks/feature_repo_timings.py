"""Foundation timings: data build, feast apply, materialize (SQLite and Redis) and whole-year
historical retrieval, each the median of N runs in a fresh temporary copy of the repository.

    python -m benchmarks.feature_repo_timings [--runs 3] [--redis 127.0.0.1:6379]

Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from feature_repo.tables.build import build_tables
from skewless.features import store as feature_store
from tests.support.repos import copy_feature_repo, settings_for

AS_OF = datetime(2013, 12, 30, 23, tzinfo=UTC)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def one_run(root: Path, redis: str) -> tuple[dict[str, float], dict[str, int]]:
    sqlite = settings_for(copy_feature_repo(root / "repo"), "sqlite", redis)
    redis_settings = settings_for(sqlite.repo_path, "redis", redis)
    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}

    def build() -> None:
        rows.update(build_tables(sqlite.data_dir, 60, force=True, progress=lambda _: None).rows)

    seconds["build tables"] = timed(build)
    seconds["feast apply (sqlite)"] = timed(lambda: feature_store.apply(sqlite))
    seconds["materialize full year (sqlite)"] = timed(
        lambda: feature_store.materialize(feature_store.open_store(sqlite), AS_OF)
    )
    feature_store.apply(redis_settings)
    seconds["materialize full year (redis)"] = timed(
        lambda: feature_store.materialize(feature_store.open_store(redis_settings), AS_OF)
    )
    feature_store.open_store(redis_settings).teardown()
    store = feature_store.open_store(sqlite)
    requests = pd.read_parquet(feature_store.file_source_path(store, "flight_requests"))
    service = store.get_feature_service("delay_model_v1")
    seconds["historical, whole year (336,776 rows)"] = timed(
        lambda: store.get_historical_features(entity_df=requests, features=service).to_df()
    )
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", default="127.0.0.1:6379")
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    rows: dict[str, int] = {}
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            seconds, rows = one_run(Path(tmp), args.redis)
        runs.append(seconds)
        print(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    print(f"\n| step | median of {args.runs} (s) | runs (s) |\n|---|---|---|")
    for step in runs[0]:
        values = [r[step] for r in runs]
        print(
            f"| {step} | {statistics.median(values):.1f} | "
            + ", ".join(f"{v:.1f}" for v in values)
            + " |"
        )
    print("\n| table | rows |\n|---|---|")
    for name, count in rows.items():
        print(f"| {name} | {count:,} |")


if __name__ == "__main__":
    main()
