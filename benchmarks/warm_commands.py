"""A `skewless` command started fresh (`run_command`: a new interpreter that imports what it
needs) against the same command forked from a preloaded process (`WarmCommands`, what a
release's deploy runs its steps with), side by side in one run, alternating.

    python -m benchmarks.warm_commands FOLDER [--env staging] [--rounds 3]

FOLDER holds an environments file with a deployed environment: the one
`python -m benchmarks.release_flow --keep FOLDER` leaves. The commands are a deploy's own
steps that change nothing a second time (materialize, plan, online features, the release's
status); each prints to /dev/null.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from skewless.command_support import run_command
from skewless.warm_commands import WarmCommands

COMMANDS = (("materialize",), ("plan",), ("online-features",), ("release", "status"))
PRELOAD = ("feast", "mlflow", "lightgbm", "training.pipeline", "loadtests.gate")


def _timed(run: Callable[..., int], args: tuple[str, ...], env: dict[str, str]) -> float:
    started = time.perf_counter()
    code = run(*args, env=env)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"skewless {' '.join(args)} exited {code}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--env", default="staging")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.chdir(args.folder)
    env = {
        "SKEWLESS_ENVIRONMENTS": str(args.folder / "environments.yaml"),
        "SKEWLESS_ENV": args.env,
    }
    rows = []
    with open(os.devnull, "w") as quiet:
        os.dup2(quiet.fileno(), sys.stdout.fileno())  # the commands' output, not ours
        report = os.fdopen(os.dup(2), "w")
        with WarmCommands(PRELOAD) as warm:
            preload = _timed(warm.run, ("--help",), env)  # waits for the preload: once a deploy
            for command in COMMANDS:
                cold, forked = [], []
                for _ in range(args.rounds):
                    cold.append(_timed(run_command, command, env))
                    forked.append(_timed(warm.run, command, env))
                rows.append((" ".join(command), statistics.median(cold), statistics.median(forked)))
    print("| command | fresh start (s) | forked, preloaded (s) | saved |", file=report)
    print("|---|---|---|---|", file=report)
    for name, cold_s, warm_s in rows:
        print(f"| {name} | {cold_s:.2f} | {warm_s:.2f} | {cold_s - warm_s:.2f} s |", file=report)
    print(
        f"\nthe preloaded process's start and first command (`--help`): {preload:.2f} s",
        file=report,
    )
    report.flush()


if __name__ == "__main__":
    main()
