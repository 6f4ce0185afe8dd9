"""A pipeline release through two environments on the flights repository, timed command by
command, as a user runs it: `release build` (its CI checks), `release deploy --env staging`
(the first champion there), `release promote --to prod` (prod's first), then the same release
through each environment's candidate namespace and gate (`deploy` again, `promote` again);
last, `release status`, the lineage.

    python -m benchmarks.release_flow [--keep DIR]

Runs the real `skewless` commands in subprocesses, in a scratch folder: a copy of the
checkout's feature repository (its tables built there), an environments file with `staging`
and `prod` (each its own state folder, MLflow registry, Feast registry and SQLite store) and
the ledger. Each deploy trains the full default model on the year's data: minutes, not a test
(tests/integration/test_releases.py runs the same flow on `feast init`'s template).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from skewless.settings import home

ENVIRONMENTS = {
    "ledger": "ledger/releases.db",
    "release": {"runs_before_promotion": 1},
    "environments": {
        name: {
            "settings": {
                "repo_path": "feature_repo",
                "state_dir": f"{name}/state",
                "feast_state": f"{name}/feast",
            },
            "by_hand": name == "prod",
        }
        for name in ("staging", "prod")
    },
}


def _skewless(folder: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "SKEWLESS_ENVIRONMENTS": str(folder / "environments.yaml")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"skewless {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        )
    return seconds, done.stdout


def run(folder: Path) -> None:
    shutil.copytree(
        home() / "feature_repo",
        folder / "feature_repo",
        ignore=shutil.ignore_patterns("data", "__pycache__", "*.db"),
    )
    (folder / "environments.yaml").write_text(yaml.safe_dump(ENVIRONMENTS, sort_keys=False))
    steps = [
        ("build the tables (once, shared offline data)", ("--env", "staging", "build-tables")),
        ("release build (CI checks)", ("--env", "staging", "release", "build")),
    ]
    timings: list[tuple[str, float]] = []
    for label, args in steps:
        seconds, _ = _skewless(folder, *args)
        timings.append((label, seconds))
        print(f"{label}: {seconds:.1f} s", flush=True)
    _, printed = _skewless(folder, "--env", "staging", "release", "id")
    release = printed.strip()
    flow = [
        ("deploy to staging (first champion)", ("release", "deploy", release, "--env", "staging")),
        (
            "promote to prod (first champion)",
            ("release", "promote", release, "--to", "prod", "--why", "benchmark"),
        ),
        (
            "deploy to staging again (candidate, gate, switch)",
            ("release", "deploy", release, "--env", "staging"),
        ),
        (
            "promote to prod again (candidate, gate, switch)",
            ("release", "promote", release, "--to", "prod", "--why", "benchmark, through the gate"),
        ),
    ]
    for label, args in flow:
        seconds, _ = _skewless(folder, *args)
        timings.append((label, seconds))
        print(f"{label}: {seconds:.1f} s", flush=True)
    print("\n| command | seconds |\n|---|---|")
    for label, seconds in timings:
        print(f"| {label} | {seconds:.1f} |")
    _, status = _skewless(folder, "release", "status", release)
    print(f"\n$ skewless release status {release}\n{status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Run in this folder and keep it.")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.keep)
        return
    with tempfile.TemporaryDirectory() as folder:
        run(Path(folder))


if __name__ == "__main__":
    main()
