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

from skewless.errors import CheckFailed
from skewless.models.contract import is_categorical
from skewless.quality.reference import categorical_drift, numeric_drift

from .config import DataValidation


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
        if (
            null_rate > ref["null_rate"] + config.max_null_increase
            and name not in config.null_exempt
        ):
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
            report.skew[name] = categorical_drift(values, ref)
        else:
            if ref["min"] is not None and len(present) and name not in config.range_exempt:
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
            report.skew[name] = numeric_drift(
                values.to_numpy(dtype="float64", na_value=np.nan), ref
            )
        psi = report.skew[name]["psi"]
        if config.psi_stop is not None and psi > config.psi_stop:
            report.problems.append(
                f"{name}: PSI {psi:.3f} above the stop threshold {config.psi_stop}"
            )
        elif psi > config.psi_warn:
            report.warnings.append(f"{name}: PSI {psi:.3f} above {config.psi_warn}")
    return report
