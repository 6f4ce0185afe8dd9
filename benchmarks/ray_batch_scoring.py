"""Batch scoring of N copies of the year (10: 3.4M rows) on a local Ray cluster of two nodes
against the single-process path, same run: rows/s, peak memory per worker, the overhead of
distribution, a projection per added node, and the two outputs compared row by row.

    python -m benchmarks.ray_batch_scoring [--copies 10] [--chunk-rows 50000]

Needs `./scripts/quickstart` (tables and a champion). Writes the scaled tables
(feature_repo/tables/scale.py) into a copy of the repository in a temporary folder, starts
`ray start --head` plus a second node (one CPU each: this machine has two) on loopback, and
stops only what it started. The single-process path runs as `skewless score` in a child
process (its peak memory is that child's); the Ray path runs from this process, its workers
report their own peak memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from serving.batch import read_scores, score_file
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.artifacts import ModelFetcher
from skewless.models.configuration import load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings
from tests.support.ray_cluster import RayCluster
from tests.support.repos import copy_feature_repo

MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:]).returncode
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"MEASURED {seconds:.3f} {peak:.1f}", file=sys.stderr)
sys.exit(code)
"""


def single_process(
    settings: Settings, rows: Path, out: Path, chunk_rows: int
) -> tuple[float, float]:
    """`skewless score` in a child: wall seconds and the child's peak RSS (MiB)."""
    env = {**os.environ, **settings.as_env(), "SKEWLESS_BATCH_ENGINE": "local"}
    command = [
        sys.executable,
        "-c",
        MEASURE,
        shutil.which("skewless") or "skewless",
        "score",
        str(rows),
        "--output",
        str(out),
        "--chunk-rows",
        str(chunk_rows),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = next(x for x in done.stderr.splitlines() if x.startswith("MEASURED"))
    seconds, peak = line.split()[1:]
    return float(seconds), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()
    base = Settings()
    config = load_model_config(base.config)
    with tempfile.TemporaryDirectory(prefix="skewless-ray-bench-") as tmp:
        folder = Path(tmp)
        repo = copy_feature_repo(folder / "repo")
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "feature_repo.tables.scale",
                "--copies",
                str(args.copies),
                "--source",
                str(base.data_dir),
                "--into",
                str(repo / "data"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[1],
        )
        settings = base.model_copy(update={"repo_path": repo, "online_store": "sqlite"})
        feature_store.apply(settings)
        rows_path = feature_store.file_source_path(
            feature_store.open_store(settings), config.entity_source
        )
        n = len(pd.read_parquet(rows_path, columns=["flight_id"]))
        print(
            f"{args.copies} copies of the year: {n:,} rows, scaled and applied in "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )

        local_seconds, local_peak = single_process(
            settings, rows_path, folder / "local", args.chunk_rows
        )
        print(f"single process: {local_seconds:.1f} s", flush=True)

        cluster = RayCluster(folder / "cluster").start(nodes=2)
        try:
            on_ray = settings.model_copy(
                update={"batch_engine": "ray", "ray_address": cluster.address, "ray_workers": 2}
            )
            store = feature_store.open_store(settings)
            schema = service_schema(store, config.feature_service)
            fetcher = ModelFetcher(
                ModelRegistry.of(settings), config.name, schema, folder / "model"
            )
            model = fetcher.load()
            started = time.perf_counter()
            result = score_file(
                store,
                schema,
                model,
                rows_path,
                folder / "ray",
                chunk_rows=args.chunk_rows,
                progress=lambda _: None,
                settings=on_ray,
            )
            ray_seconds = time.perf_counter() - started
            import resource

            driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        finally:
            import ray

            ray.shutdown()
            cluster.stop()

        t0 = time.perf_counter()
        pd.testing.assert_frame_equal(read_scores(folder / "ray"), read_scores(folder / "local"))
        compared = time.perf_counter() - t0

    workers = result.workers
    by_worker: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}
    nodes: dict[str, str] = {}
    for s in workers:
        by_worker.setdefault(s.worker, []).append(s.seconds)
        peaks[s.worker] = max(peaks.get(s.worker, 0.0), s.peak_rss_mib)
        nodes[s.worker] = s.node
    busy = sum(s.seconds for s in workers)
    rate = statistics.median(s.rows / s.seconds for s in workers)  # one worker, one CPU
    ideal = busy / len(by_worker)
    print(
        f"\n{n:,} rows ({args.copies} copies of the year); chunks of {args.chunk_rows:,}; "
        f"outputs equal row by row (compared in {compared:.0f} s)\n"
    )
    print("| way | seconds | rows/s | peak memory |\n|---|---|---|---|")
    print(
        f"| single process (`skewless score`, both cores) | {local_seconds:.1f} | "
        f"{n / local_seconds:,.0f} | {local_peak:,.0f} MiB |"
    )
    worker_peaks = ", ".join(f"{peaks[w]:,.0f}" for w in sorted(peaks))
    print(
        f"| Ray, 2 nodes x 1 CPU (`batch_engine: ray`) | {ray_seconds:.1f} | "
        f"{n / ray_seconds:,.0f} | workers {worker_peaks} MiB; driver {driver_peak:,.0f} MiB |"
    )
    print("\n| Ray figure | value |\n|---|---|")
    for worker in sorted(by_worker):
        chunks = by_worker[worker]
        print(
            f"| worker {worker} on node {nodes[worker]} | {len(chunks)} chunks, "
            f"{sum(chunks):.1f} s busy |"
        )
    print(f"| per-worker rate (median chunk, one CPU) | {rate:,.0f} rows/s |")
    print(f"| busy seconds, all workers | {busy:.1f} |")
    print(
        f"| overhead of distribution: wall - busy/workers | {ray_seconds - ideal:.1f} s "
        f"({(ray_seconds - ideal) / ray_seconds:.0%} of the wall) |"
    )
    for nodes_added in (2, 4, 8):
        print(
            f"| projection, {nodes_added} one-CPU nodes (rate x nodes) | "
            f"{rate * nodes_added:,.0f} rows/s |"
        )


if __name__ == "__main__":
    main()
