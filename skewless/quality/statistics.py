"""Distances between distributions, one definition each, shared by data validation, the
canary and monitoring. scipy where it has the function (Jensen-Shannon, the Kolmogorov
distribution); PSI is a few lines with one smoothing rule.

All functions take shares (non-negative, summing to one) or cumulative shares at common
points, so that callers can bin once (quantile bins, histogram buckets) and compare cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import kolmogi
from scipy.stats import chi2

# An empty bin counts as this share: PSI is infinite otherwise, and one empty bucket in a
# sample of a few hundred says little.
PSI_FLOOR = 1e-4

Shares = Sequence[float] | np.ndarray


def psi(expected: Shares, actual: Shares) -> float:
    """Population stability index of `actual` against `expected` over the same bins."""
    e = np.maximum(np.asarray(expected, dtype="float64"), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype="float64"), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon(p: Shares, q: Shares) -> float:
    """Jensen-Shannon divergence in bits (0 = same, 1 = disjoint)."""
    p_arr, q_arr = np.asarray(p, dtype="float64"), np.asarray(q, dtype="float64")
    if not p_arr.sum() or not q_arr.sum():
        return 1.0
    return float(jensenshannon(p_arr, q_arr, base=2) ** 2)


def ks_distance(cdf_a: Shares, cdf_b: Shares) -> float:
    """Kolmogorov-Smirnov distance: the largest gap between two cumulative shares taken at
    the same points (exact when the points are every sample value, else a lower bound)."""
    a, b = np.asarray(cdf_a, dtype="float64"), np.asarray(cdf_b, dtype="float64")
    return float(np.max(np.abs(a - b))) if len(a) else 0.0


def ks_critical(n: float, m: float, alpha: float) -> float:
    """The two-sample KS distance beyond which samples of sizes n and m differ at `alpha`
    (the asymptotic Kolmogorov bound)."""
    if n <= 0 or m <= 0:
        return 0.0
    return float(kolmogi(alpha)) * math.sqrt((n + m) / (n * m))


def psi_critical(bins: int, n: float, m: float, alpha: float) -> float:
    """The PSI beyond which two samples of sizes n and m over `bins` bins differ at `alpha`.

    To second order PSI is the chi-square distance sum((a - e)^2 / e), which for two samples
    of one distribution is (1/n + 1/m) times a chi-square variable with bins - 1 degrees of
    freedom: a window of a few hundred rows over many categories has a large PSI by chance."""
    if n <= 0 or m <= 0 or bins < 2:
        return 0.0
    return float(chi2.ppf(1 - alpha, bins - 1)) * (1 / n + 1 / m)
