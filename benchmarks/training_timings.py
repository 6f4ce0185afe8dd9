"""CT pipeline wall time per step on the full default configuration (train Jan-May, validate
June, test July 2013), median of N uninterrupted runs, each with a fresh MLflow store.

    python -m benchmarks.training_timings [--runs 3]

Needs the feature tables and `feast apply` of the working copy (run `skewless quickstart` or
`skewless build-tables && skewless apply` first). Prints a markdown table for
docs/benchmarks.md and the July metrics of the last run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from skewless.settings import Settings
from training.config import load_pipeline_config
from training.pipeline import STEPS, Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs, totals, result = [], [], None
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as state:
            settings = Settings(state_dir=Path(state))
            config = load_pipeline_config(settings.model_file)
            started = time.perf_counter()
            result = Pipeline(settings, config, progress=lambda _: None).run()
            totals.append(time.perf_counter() - started)
        runs.append(result.seconds)
        print(
            f"run {i + 1}: total {totals[-1]:.1f} s; "
            + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())
        )
    print(f"\n| step | median of {args.runs} (s) | runs (s) |\n|---|---|---|")
    for step in STEPS:
        values = [r[step] for r in runs]
        print(
            f"| {step} | {statistics.median(values):.1f} | "
            + ", ".join(f"{v:.1f}" for v in values)
            + " |"
        )
    print(
        f"| whole run | {statistics.median(totals):.1f} | "
        + ", ".join(f"{v:.1f}" for v in totals)
        + " |"
    )
    assert result is not None
    overall = result.evaluation["candidate"]["overall"]
    print(
        f"\nJuly: ROC AUC {overall['roc_auc']:.4f}, PR AUC {overall['pr_auc']:.4f}, "
        f"log loss {overall['log_loss']:.4f}, Brier {overall['brier']:.4f}; baseline ROC AUC "
        f"{result.evaluation['baseline']['overall']['roc_auc']:.4f}; "
        f"ECE {result.evaluation['candidate']['calibration']['expected_calibration_error']:.4f}"
    )
    print("\n| segment | value | rows | ROC AUC | PR AUC |\n|---|---|---|---|---|")
    for column, values in result.evaluation["candidate"]["segments"].items():
        for value, stats in sorted(values.items(), key=lambda kv: -kv[1]["rows"]):
            if stats["rows"] >= 200:
                print(
                    f"| {column} | {value} | {stats['rows']:.0f} | {stats['roc_auc']:.4f} | "
                    f"{stats['pr_auc']:.4f} |"
                )


if __name__ == "__main__":
    main()
