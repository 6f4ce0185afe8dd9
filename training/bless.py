"""Step 6, validate the model ("bless"): every check recorded, all must pass."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Blessing


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def _auc(evaluation: dict[str, Any]) -> float:
    return float(evaluation["overall"]["roc_auc"])


def compare_to_baseline(candidate: dict, baseline: dict, config: Blessing) -> Check:
    gain = _auc(candidate) - _auc(baseline)
    return Check(
        "beats baseline",
        gain >= config.min_auc_gain_over_baseline,
        f"AUC {_auc(candidate):.4f} vs baseline {_auc(baseline):.4f} "
        f"(gain {gain:+.4f}, need {config.min_auc_gain_over_baseline:+.4f})",
    )


def compare_to_champion(
    candidate: dict, champion: dict | None, config: Blessing, rows: dict | None = None
) -> list[Check]:
    """`candidate` and `champion`: evaluated on the same rows, those of the test window the
    champion did not learn from (`rows` says how many of how many)."""
    if champion is None:
        if rows is None:
            return [Check("beats champion", True, "no champion yet")]
        return [
            Check(
                "beats champion",
                True,
                f"not comparable: the champion learned from data until {rows['seen_until']}, "
                f"leaving {rows['fair']:,} of the {rows['test']:,} test rows (fewer than "
                f"{config.champion_min_rows:,}); judged against the baseline alone",
            )
        ]
    gain = _auc(candidate) - _auc(champion)
    where = (
        "the same test window"
        if rows is None or rows["fair"] == rows["test"]
        else f"the {rows['fair']:,} of {rows['test']:,} test rows after the champion's data "
        f"(until {rows['seen_until']})"
    )
    checks = [
        Check(
            "beats champion",
            gain >= config.min_auc_gain_over_champion,
            f"AUC {_auc(candidate):.4f} vs champion {_auc(champion):.4f} on {where} "
            f"(gain {gain:+.4f}, need {config.min_auc_gain_over_champion:+.4f})",
        )
    ]
    regressions = []
    for column, values in candidate["segments"].items():
        for value, stats in values.items():
            theirs = champion["segments"].get(column, {}).get(value)
            if (
                stats["rows"] < config.segment_min_rows
                or theirs is None
                or stats["roc_auc"] is None
                or theirs["roc_auc"] is None
            ):
                continue
            drop = theirs["roc_auc"] - stats["roc_auc"]
            if drop > config.segment_auc_tolerance:
                regressions.append(
                    f"{column}={value}: {stats['roc_auc']:.4f} vs {theirs['roc_auc']:.4f}"
                )
    checks.append(
        Check(
            "no segment regresses",
            not regressions,
            "; ".join(regressions)
            or f"no segment with >= {config.segment_min_rows} "
            f"rows loses more than {config.segment_auc_tolerance} AUC",
        )
    )
    return checks


def infra_check(
    model_path: Path,
    contract_path: Path,
    sha256: str,
    sample: pd.DataFrame,
    expected: np.ndarray,
    workdir: Path,
    config: Blessing,
) -> Check:
    rows_path, expected_path = workdir / "infra_rows.parquet", workdir / "infra_expected.npy"
    sample.to_parquet(rows_path, index=False)
    np.save(expected_path, expected)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.infra_check",
            str(model_path),
            str(contract_path),
            sha256,
            str(rows_path),
            str(expected_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return Check("infra compatible", False, f"the serving loader failed: {done.stderr[-800:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    diff = max(result["max_abs_diff_batch"], result["max_abs_diff_single"])
    same = diff <= 1e-9
    fast = result["p99_ms"] <= config.latency_budget_ms_p99
    return Check(
        "infra compatible",
        same and fast,
        f"fresh process: max score diff {diff:.2e}; "
        f"single-row p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms "
        f"(budget {config.latency_budget_ms_p99} ms) over {result['rows']} rows",
    )


def verdict(checks: list[Check]) -> dict[str, Any]:
    return {"blessed": all(c.passed for c in checks), "checks": [asdict(c) for c in checks]}
