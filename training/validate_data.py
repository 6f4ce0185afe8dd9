"""Step 2, validate data, before any training.

Schema skew (missing or unexpected columns, a changed kind, unknown categories, null rates or
numbers out of range) stops the run. Value skew (PSI for every feature; Kolmogorov-Smirnov for
numbers, Jensen-Shannon for categories) is measured against reference statistics and warns,
or stops above a configured PSI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from skewless import statistics as stats
from skewless.errors import CheckFailed
from skewless.model_contract import is_categorical

from .config import DataValidation

QUANTILES = np.linspace(0, 1, 101)


class DataValidationError(CheckFailed):
    def __init__(self, report: ValidationReport) -> None:
        super().__init__(
            "data validation stopped the run (the registry was not changed): "
            + "; ".join(report.problems)
        )
        self.report = report


@dataclass
class ValidationReport:
    problems: list[str] = field(default_factory=list)  # schema skew: stops the run
    warnings: list[str] = field(default_factory=list)
    skew: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems


def derive_schema(reference: pd.DataFrame, features: list[str]) -> dict[str, Any]:
    """The schema and reference statistics of a reference window (saved with the model)."""
    columns: dict[str, Any] = {}
    for name in features:
        values = reference[name]
        entry: dict[str, Any] = {"null_rate": float(values.isna().mean())}
        present = values.dropna()
        if is_categorical(values):
            freq = present.astype(str).value_counts(normalize=True)
            entry.update(kind="categorical", frequencies={k: float(v) for k, v in freq.items()})
        else:
            numbers = present.astype("float64")
            entry.update(
                kind="numeric",
                min=float(numbers.min()) if len(numbers) else None,
                max=float(numbers.max()) if len(numbers) else None,
                quantiles=[float(q) for q in np.quantile(numbers, QUANTILES)]
                if len(numbers)
                else [],
            )
        columns[name] = entry
    return {"columns": columns, "rows": int(len(reference))}


def _numeric_skew(values: pd.Series, ref: dict[str, Any]) -> dict[str, float]:
    quantiles = np.asarray(ref["quantiles"])
    numbers = values.dropna().to_numpy(dtype="float64")
    if not len(quantiles) or not len(numbers):
        return {"psi": 0.0, "ks": 0.0}
    edges = np.unique(quantiles[::10])  # deciles of the reference
    ref_hist = np.histogram(np.clip(quantiles, edges[0], edges[-1]), bins=edges)[0] / len(quantiles)
    cur_hist = np.histogram(np.clip(numbers, edges[0], edges[-1]), bins=edges)[0] / len(numbers)
    null_ref, null_cur = ref["null_rate"], float(values.isna().mean())
    psi = stats.psi(
        np.append(ref_hist * (1 - null_ref), null_ref),
        np.append(cur_hist * (1 - null_cur), null_cur),
    )
    # Both CDFs at the same points (the distinct reference quantiles): the reference CDF at x
    # is the largest quantile level whose value is <= x, which stays right for repeated values.
    points = np.unique(quantiles)
    reference_cdf = QUANTILES[np.searchsorted(quantiles, points, side="right") - 1]
    current_cdf = np.searchsorted(np.sort(numbers), points, side="right") / len(numbers)
    return {"psi": psi, "ks": stats.ks_distance(current_cdf, reference_cdf)}


def _categorical_skew(values: pd.Series, ref: dict[str, Any]) -> dict[str, float]:
    freq = values.dropna().astype(str).value_counts(normalize=True)
    keys = sorted(set(ref["frequencies"]) | set(freq.index))
    p = np.array([ref["frequencies"].get(k, 0.0) for k in keys])
    q = np.array([float(freq.get(k, 0.0)) for k in keys])
    return {"psi": stats.psi(p, q), "js": stats.jensen_shannon(p, q)}


def validate(
    frame: pd.DataFrame, features: list[str], schema: dict[str, Any], config: DataValidation
) -> ValidationReport:
    """`features`: what the feature service returns now; `schema`: what the model expects."""
    report = ValidationReport()
    expected = schema["columns"]
    missing = [c for c in expected if c not in frame.columns or c not in features]
    if missing:
        report.problems.append(f"missing columns: {missing}")
    unexpected = [c for c in features if c not in expected]
    if unexpected:
        report.problems.append(f"unexpected columns: {unexpected}")
    for name, ref in expected.items():
        if name in missing:
            continue
        values = frame[name]
        kind = "categorical" if is_categorical(values) else "numeric"
        if values.notna().any() and kind != ref["kind"]:
            report.problems.append(
                f"{name}: type changed from {ref['kind']} to {kind} ({values.dtype})"
            )
            continue
        null_rate = float(values.isna().mean())
        if null_rate > ref["null_rate"] + config.max_null_increase:
            report.problems.append(
                f"{name}: null rate {null_rate:.1%} vs {ref['null_rate']:.1%} in the reference"
            )
        present = values.dropna()
        if ref["kind"] == "categorical":
            unknown = ~present.astype(str).isin(set(ref["frequencies"]))
            share = float(unknown.sum()) / max(len(values), 1)
            if share > config.max_unknown_category_share:
                examples = sorted(present[unknown].astype(str).unique())[:3]
                report.problems.append(
                    f"{name}: {share:.1%} of values are unknown categories, e.g. {examples}"
                )
            report.skew[name] = _categorical_skew(values, ref)
        else:
            if ref["min"] is not None and len(present):
                span = ref["max"] - ref["min"]
                lo, hi = (
                    ref["min"] - config.range_margin * span,
                    ref["max"] + config.range_margin * span,
                )
                numbers = present.astype("float64")
                share = float(((numbers < lo) | (numbers > hi)).sum()) / len(values)
                if share > config.max_out_of_range_share:
                    report.problems.append(
                        f"{name}: {share:.1%} of values outside [{lo:.4g}, {hi:.4g}]"
                    )
            report.skew[name] = _numeric_skew(values, ref)
        psi = report.skew[name]["psi"]
        if config.psi_stop is not None and psi > config.psi_stop:
            report.problems.append(
                f"{name}: PSI {psi:.3f} above the stop threshold {config.psi_stop}"
            )
        elif psi > config.psi_warn:
            report.warnings.append(f"{name}: PSI {psi:.3f} above {config.psi_warn}")
    return report
