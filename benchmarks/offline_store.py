"""Offline retrieval, Feast's stock DuckDB store against the ASOF plug-in, side by side in one
run: whole-year `get_historical_features(delay_model_v1)`, `skewless score` on the whole year
(end to end, a fresh process, parquet written), the training extract (Jan-Jul), and the same
on a synthetic copy of the year N times over (copy k: keys suffixed with `~k` and every
timestamp k x 53 weeks later, so that nothing collides).

    python -m benchmarks.offline_store [--runs 3] [--stock-runs 1] [--scale 10] [--train]

Every figure is measured in a process of its own (peak RSS is that process's). Needs
`skewless quickstart` (tables and a champion). Prints markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

STORES = {"stock": "duckdb", "asof": "asof"}
KEYS = ("origin", "dest", "carrier", "tailnum", "flight_id")
SHIFT = pd.Timedelta(weeks=53)  # copy k is k such years later: same weekdays, no overlap


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


# --- measurements, each run in a child process --------------------------------------------


def child_historical(repo: Path, store_kind: str) -> dict[str, Any]:
    from skewless.features import store as feature_store
    from skewless.settings import Settings

    store = feature_store.open_store(Settings(repo_path=repo, offline_store=store_kind))
    requests = pd.read_parquet(feature_store.file_source_path(store, "flight_requests"))
    service = store.get_feature_service("delay_model_v1")
    # Warm-up, not timed: DuckDB's and the page cache's cold start.
    store.get_historical_features(entity_df=requests.head(1000), features=service).to_df()
    started = time.perf_counter()
    frame = store.get_historical_features(entity_df=requests, features=service).to_df()
    seconds = time.perf_counter() - started
    assert len(frame) == len(requests)
    return {"rows": len(frame), "seconds": seconds, "peak_mb": peak_mb()}


def child_extract(repo: Path, store_kind: str) -> dict[str, Any]:
    from skewless.features import store as feature_store
    from skewless.settings import Settings
    from training.config import load_pipeline_config
    from training.extract import extract

    settings = Settings(repo_path=repo, offline_store=store_kind)
    config = load_pipeline_config(settings.model_file)
    store = feature_store.open_store(settings)
    store.get_historical_features(
        entity_df=pd.read_parquet(feature_store.file_source_path(store, "flight_requests")).head(
            1000
        ),
        features=store.get_feature_service(config.feature_service),
    ).to_df()
    started = time.perf_counter()
    frame = extract(store, config)
    return {"rows": len(frame), "seconds": time.perf_counter() - started, "peak_mb": peak_mb()}


def child_command(repo: Path, store_kind: str, *args: str) -> dict[str, Any]:
    """A `skewless` command as a user runs it: wall time and the command's peak RSS."""
    env = {**os.environ, "SKEWLESS_REPO_PATH": str(repo), "SKEWLESS_OFFLINE_STORE": store_kind}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"skewless {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return {"seconds": seconds, "peak_mb": peak_mb(resource.RUSAGE_CHILDREN)}


def child_score(repo: Path, store_kind: str) -> dict[str, Any]:
    requests = repo / "data" / "flight_requests.parquet"
    with tempfile.TemporaryDirectory() as out:
        result = child_command(repo, store_kind, "score", str(requests), "--output", out + "/o")
    result["rows"] = len(pd.read_parquet(requests, columns=["flight_id"]))
    return result


def child_train(repo: Path, store_kind: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state:
        os.environ["SKEWLESS_STATE_DIR"] = state
        result = child_command(repo, store_kind, "train")
    result["rows"] = 0
    return result


CHILDREN = {
    "historical": child_historical,
    "extract": child_extract,
    "score": child_score,
    "train": child_train,
}


def run_child(what: str, repo: Path, store: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", what, "--repo", str(repo), "--store", store],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} ({store}) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the scaled copy ----------------------------------------------------------------------


def scaled_repo(source: Path, target: Path, scale: int) -> Path:
    """The feature repository with every table `scale` times over, shifted per copy."""
    from skewless.features import store as feature_store
    from tests.support.repos import copy_feature_repo, settings_for

    repo = copy_feature_repo(target)
    (repo / "data").mkdir()
    for table in sorted((source / "data").glob("*.parquet")):
        frame = pd.read_parquet(table)
        copies = []
        for k in range(scale):
            copy = frame.copy()
            for key in KEYS:
                if key in copy.columns:
                    copy[key] = copy[key].astype("string") + f"~{k}"
            for column in copy.columns:
                if pd.api.types.is_datetime64_any_dtype(copy[column]):
                    copy[column] = copy[column] + k * SHIFT
            copies.append(copy)
        pd.concat(copies, ignore_index=True).to_parquet(repo / "data" / table.name, index=False)
    shutil.copy(source / "data" / "tables.json", repo / "data" / "tables.json")
    feature_store.apply(settings_for(repo, "sqlite", "unused"))
    return repo


# --- the table ----------------------------------------------------------------------------


def measure(
    label: str, what: str, repo: Path, runs: dict[str, int], table: list[str]
) -> dict[str, float]:
    rates: dict[str, float] = {}
    for name, kind in STORES.items():
        results = [run_child(what, repo, kind) for _ in range(runs[name])]
        if not results:
            continue
        seconds = statistics.median(r["seconds"] for r in results)
        rows = results[0]["rows"]
        peak = max(r["peak_mb"] for r in results)
        rate = f"{rows / seconds:,.0f}" if rows else "-"
        rates[name] = seconds
        all_runs = ", ".join(f"{r['seconds']:.1f}" for r in results)
        line = (
            f"| {label} | {name} | {rows:,} | {seconds:.2f} ({all_runs}) | {rate} | {peak:,.0f} |"
        )
        table.append(line)
        print(line, flush=True)
    if len(rates) == 2:
        table.append(
            f"| {label} | **stock / asof** | | **{rates['stock'] / rates['asof']:.1f}x** | | |"
        )
        print(table[-1], flush=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Runs of the plug-in per figure.")
    parser.add_argument("--stock-runs", type=int, default=1, help="Runs of the stock store.")
    parser.add_argument("--scale", type=int, default=10, help="Copies of the year (0: skip).")
    parser.add_argument("--scale-runs", type=int, default=1, help="Runs on the scaled copy.")
    parser.add_argument("--train", action="store_true", help="Also time `skewless train`.")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--repo", type=Path, default=ROOT / "feature_repo")
    parser.add_argument("--store", default="asof", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.repo, args.store)))
        return

    runs = {"stock": args.stock_runs, "asof": args.runs}
    table = [
        "| figure | store | rows | seconds, median (runs) | rows/s | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(table), flush=True)
    measure("whole-year get_historical_features", "historical", args.repo, runs, table)
    measure("`skewless score`, whole year, end to end", "score", args.repo, runs, table)
    measure("training extract (Jan-Jul)", "extract", args.repo, runs, table)
    if args.train:
        once = {"stock": 1, "asof": 1}  # minutes each; one run of each
        measure("`skewless train`, whole run", "train", args.repo, once, table)
    if args.scale:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            big = scaled_repo(args.repo, Path(tmp) / "repo", args.scale)
            print(f"(built the {args.scale}x copy in {time.perf_counter() - started:.0f} s)")
            # Feast's own store is not run at this size (at 1x it takes about a minute).
            only_asof = {"stock": 0, "asof": args.scale_runs}
            label = f"{args.scale}x year"
            measure(f"{label}: get_historical_features", "historical", big, only_asof, table)
            measure(f"{label}: `skewless score`, end to end", "score", big, only_asof, table)
    print("\n" + "\n".join(table))


if __name__ == "__main__":
    main()
