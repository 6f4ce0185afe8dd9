"""Shares per bin of a feature or of the served scores, reference against current: what the
report plots. The reference is read off its stored quantiles or frequencies (the training
data is not kept)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from skewless.quality.monitoring_result import Distribution, Histogram


def distribution(name: str, ref: dict[str, Any], values: Any) -> Distribution:
    """Reference vs current shares of one feature, for the report's plots: 20 equal bins
    between the reference's 1st and 99th percentiles, or the most common categories."""
    if ref["kind"] == "numeric":
        q = ref["quantiles"]
        low, high = (q[1], q[99]) if q and q[99] > q[1] else ((q[0], q[0] + 1) if q else (0, 1))
        edges = np.linspace(low, high, 21)
        present = values[~np.isnan(values)]
        return Distribution(
            feature=name,
            kind="numeric",
            edges=edges.tolist(),
            reference=shares_from_quantiles(q, edges).tolist(),
            current=shares(present, edges).tolist(),
        )
    current = values.dropna().astype(str).value_counts(normalize=True)
    reference = pd.Series(ref["frequencies"], dtype="float64")
    top = (reference.add(current, fill_value=0)).sort_values(ascending=False).index[:12]
    return Distribution(
        feature=name,
        kind="categorical",
        categories=[str(c) for c in top],
        reference=[float(reference.get(c, 0.0)) for c in top],
        current=[float(current.get(c, 0.0)) for c in top],
    )


def score_histogram(scores: np.ndarray, test_quantiles: list[float]) -> Histogram:
    """Served scores against the test window's, in 20 equal bins of [0, 1]."""
    edges = np.linspace(0.0, 1.0, 21)
    return Histogram(
        edges=edges.tolist(),
        reference=shares_from_quantiles(test_quantiles, edges).tolist(),
        current=shares(scores, edges).tolist(),
    )


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares per bin, values outside the edges counted in the end bins."""
    if not len(values):
        return np.zeros(len(edges) - 1)
    counts = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
    shares: np.ndarray = counts / len(values)
    return shares


def shares_from_quantiles(quantiles: list[float], edges: np.ndarray) -> np.ndarray:
    """The reference's shares per bin, read off its quantile function (linear between the
    101 quantiles; mass outside the edges counted in the end bins)."""
    q = np.asarray(quantiles, dtype="float64")
    if not len(q):
        return np.zeros(len(edges) - 1)
    levels = np.linspace(0, 1, len(q))
    keep = np.append(np.diff(q) > 0, True)  # a repeated value: its last level (CDF jumps)
    cdf = np.interp(edges, q[keep], levels[keep], left=0.0, right=1.0)
    cdf[0], cdf[-1] = 0.0, 1.0
    shares: np.ndarray = np.diff(cdf)
    return shares
