"""`skewless monitor` end to end: a month of real traffic (~27-29k predictions x 41 features,
with labels) and the whole year (336,776), each replayed into a prediction log of its own by
the champion, then monitored by the command in a fresh process (start-up included, as a user
or the CT controller runs it), with the default configuration (daily windows, a skew sample
of 200, the HTML report and the history written). Peak RSS is the monitoring process's.

    python -m benchmarks.monitoring [--runs 3]

Needs `skewless quickstart` (tables and a champion). Prints a markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PERIODS = {
    "month (Dec 2013)": ("2013-11-30T23:00:00Z", "2013-12-30T23:00:00Z"),
    # Every request of the data set: the last flights of 31 December are asked for in 2014 UTC.
    "year (2013)": ("2013-01-01T00:00:00Z", "2014-01-01T06:00:00Z"),
}


# A wrapper process per command, whose only child is the command: its RUSAGE_CHILDREN peak is
# that command's own peak RSS.
WRAPPER = """
import resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run([sys.executable, "-m", "cli", *sys.argv[1:]])
print(f"@@ {time.perf_counter() - started:.3f} "
      f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}")
sys.exit(done.returncode)
"""


def skewless(*args: str, env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds, peak RSS (MB) and output of one `skewless` command in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], env=env, capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"skewless {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    seconds, peak = done.stdout.strip().splitlines()[-1].split()[1:]
    return float(seconds), float(peak), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        for name, (since, until) in PERIODS.items():
            log = Path(tmp) / name.split()[0] / "log"
            env = {**os.environ, "SKEWLESS_PREDICTION_LOG": str(log)}
            _, _, out = skewless("replay", "--since", since, "--until", until, env=env)
            print(out.strip().splitlines()[-1])
            times, peaks, inner = [], [], []
            for run in range(args.runs):
                output = Path(tmp) / f"out-{run}"
                seconds, peak, out = skewless(
                    "monitor", "--since", since, "--until", until, "--output", str(output), env=env
                )
                times.append(seconds)
                peaks.append(peak)
                line = next(x for x in out.splitlines() if x.startswith("monitored "))
                inner.append(float(line.split(" in ")[1].split(" s")[0]))
                print(f"{name} run {run + 1}: {seconds:.1f} s wall, {line}")
            predictions = line.split()[1]
            rows.append(
                f"| {name} | {predictions} | {statistics.median(times):.1f} s "
                f"({min(times):.1f}-{max(times):.1f}) | {statistics.median(inner):.1f} s | "
                f"{max(peaks):,.0f} MB |"
            )
    print()
    print(
        "| period | predictions | `skewless monitor` wall, median (range) | in-process | peak RSS |"
    )
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
