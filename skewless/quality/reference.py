"""A model version's reference: what its inputs and scores looked like when it was made,
registered with it, so that anything later (data validation of the next run, monitoring of
what is served) compares against *that* version's own past, not the current champion's.

Two artifacts, both written by the training pipeline and registered with the version:
- `schema.json` (`derive_schema`): per feature of the train window, its kind, null rate, and
  101 quantiles (numbers) or category shares; the train window's row count.
- `reference.json` (`model_reference`): the model's feature importance (gain shares) and the
  test window's scores (101 quantiles) and quality figures.

The distances between a sample and this reference (`numeric_drift`, `categorical_drift`) live
here too: data validation and monitoring must measure drift the same way.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from skewless.models.contract import is_categorical
from skewless.quality import statistics

SCHEMA_FILE, REFERENCE_FILE = "schema.json", "reference.json"
QUANTILES = np.linspace(0, 1, 101)


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


def model_reference(
    booster: lgb.Booster,
    test_scores: np.ndarray,
    test_metrics: dict[str, Any],
    recent_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Feature importance as shares of the total gain (what monitoring weights drift by), and
    the test window's score distribution and quality (what served scores are compared to), and
    its feature statistics (`recent_schema`: the newest data the version was judged on, what
    the retraining trigger measures change since)."""
    gain = booster.feature_importance(importance_type="gain").astype("float64")
    total = float(gain.sum()) or 1.0
    return {
        "importance": {
            name: float(g / total) for name, g in zip(booster.feature_name(), gain, strict=True)
        },
        "test_scores": {
            "rows": int(len(test_scores)),
            "quantiles": [float(q) for q in np.quantile(test_scores, QUANTILES)],
        },
        "test_metrics": test_metrics,
        **({"recent_schema": recent_schema} if recent_schema is not None else {}),
    }


def numeric_drift(values: pd.Series | np.ndarray, ref: dict[str, Any]) -> dict[str, float]:
    """PSI over the reference's deciles (nulls as one more bin) and the Kolmogorov-Smirnov
    distance at the reference's percentiles (a lower bound of the exact one, to 1 %)."""
    array = np.asarray(values, dtype="float64")
    quantiles = np.asarray(ref["quantiles"])
    nulls = np.isnan(array)
    numbers = array[~nulls]
    if not len(quantiles) or not len(numbers):
        return {"psi": 0.0, "ks": 0.0}
    edges = np.unique(quantiles[::10])  # deciles of the reference
    ref_hist = np.histogram(np.clip(quantiles, edges[0], edges[-1]), bins=edges)[0] / len(quantiles)
    cur_hist = np.histogram(np.clip(numbers, edges[0], edges[-1]), bins=edges)[0] / len(numbers)
    null_ref, null_cur = ref["null_rate"], float(nulls.mean())
    psi = statistics.psi(
        np.append(ref_hist * (1 - null_ref), null_ref),
        np.append(cur_hist * (1 - null_cur), null_cur),
    )
    return {"psi": psi, "ks": statistics.ks_distance(current_cdf(numbers, ref), reference_cdf(ref))}


def reference_cdf(ref: dict[str, Any]) -> np.ndarray:
    """The reference CDF at its distinct quantile values: the largest quantile level whose
    value is <= x, which stays right for repeated values."""
    quantiles = np.asarray(ref["quantiles"])
    points = np.unique(quantiles)
    cdf: np.ndarray = QUANTILES[np.searchsorted(quantiles, points, side="right") - 1]
    return cdf


def current_cdf(numbers: np.ndarray, ref: dict[str, Any]) -> np.ndarray:
    """A sample's CDF at the reference's distinct quantile values."""
    points = np.unique(np.asarray(ref["quantiles"]))
    cdf: np.ndarray = np.searchsorted(np.sort(numbers), points, side="right") / len(numbers)
    return cdf


def categorical_drift(values: pd.Series, ref: dict[str, Any]) -> dict[str, float]:
    """PSI and Jensen-Shannon divergence of the category shares (categories of either side)."""
    freq = values.dropna().astype(str).value_counts(normalize=True)
    keys = sorted(set(ref["frequencies"]) | set(freq.index))
    p = np.array([ref["frequencies"].get(k, 0.0) for k in keys])
    q = np.array([float(freq.get(k, 0.0)) for k in keys])
    return {"psi": statistics.psi(p, q), "js": statistics.jensen_shannon(p, q)}
