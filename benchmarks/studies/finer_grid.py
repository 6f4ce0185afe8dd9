"""Can the rolling aggregates' snapshot grid be finer now that retrieval is an ASOF join?

Builds the feature tables twice in temporary repositories, once as shipped (origin
congestion every 15 minutes) and once with a 5-minute grid, then runs the whole `skewless
train` on each (a fresh MLflow store each) and prints the extract time and the test-window
(July) ROC AUC.

    python -m benchmarks.finer_grid [--minutes 5]

Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from feature_repo.tables import aggregates, build
from skewless.features import store as feature_store
from tests.support.repos import copy_feature_repo, settings_for

ROOT = Path(__file__).resolve().parents[2]

TABLE = "origin_departures_recent"


def build_repo(target: Path, minutes: int) -> tuple[Path, int]:
    repo = copy_feature_repo(target)
    build.TABLES[TABLE] = lambda raw, dep, lead: aggregates.rolling_windows(
        dep,
        ["origin"],
        {"origin_1h": pd.Timedelta(hours=1), "origin_3h": pd.Timedelta(hours=3)},
        pd.Timedelta(minutes=minutes),
    )
    settings = settings_for(repo, "sqlite", "unused")
    result = build.build_tables(settings.data_dir, 60, force=True, progress=lambda _: None)
    feature_store.apply(settings)
    return repo, result.rows[TABLE]


def train(repo: Path, state: Path) -> tuple[float, float, float]:
    env = {**os.environ, "SKEWLESS_REPO_PATH": str(repo), "SKEWLESS_STATE_DIR": str(state)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli", "train"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"skewless train failed:\n{done.stderr[-3000:]}")
    extract = re.search(r"extract: done in ([\d.]+) s", done.stdout)
    auc = re.search(r"candidate\s*│\s*([\d.]+)", done.stdout)
    if not extract or not auc:
        raise SystemExit(f"cannot read the run's output:\n{done.stdout[-3000:]}")
    return float(extract.group(1)), float(auc.group(1)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=5)
    args = parser.parse_args()
    print(f"| {TABLE} grid | rows | extract (s) | July ROC AUC | whole train run (s) |")
    print("|---|---|---|---|---|")
    for minutes in (15, args.minutes):
        with tempfile.TemporaryDirectory() as tmp:
            repo, rows = build_repo(Path(tmp) / "repo", minutes)
            extract, auc, seconds = train(repo, Path(tmp) / "state")
        print(
            f"| {minutes} min | {rows:,} | {extract:.1f} | {auc:.4f} | {seconds:.0f} |", flush=True
        )


if __name__ == "__main__":
    main()
