"""Are the shared distances what their definitions say, against scipy and by hand?"""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from skewless.quality import statistics


def test_psi_is_zero_for_the_same_shares_and_grows_with_a_shift() -> None:
    same = [0.25, 0.25, 0.5]
    assert statistics.psi(same, same) == pytest.approx(0.0, abs=1e-12)
    shifted = [0.5, 0.25, 0.25]
    by_hand = sum((a - e) * math.log(a / e) for e, a in zip(same, shifted, strict=True))
    assert statistics.psi(same, shifted) == pytest.approx(by_hand)
    # An empty bin counts as the floor, not as infinity.
    assert math.isfinite(statistics.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))
    assert statistics.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]) > statistics.psi(
        [0.5, 0.5, 0.0], [0.5, 0.5, 0]
    )


def test_jensen_shannon_is_scipys_divergence_in_bits() -> None:
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.3, 0.6])
    assert statistics.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert statistics.jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-12)
    assert statistics.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)


def test_ks_distance_on_every_sample_value_equals_scipys_statistic() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 500), rng.normal(0.3, 1, 400)
    points = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), points, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), points, side="right") / len(b)
    assert statistics.ks_distance(cdf_a, cdf_b) == pytest.approx(ks_2samp(a, b).statistic)


def test_ks_critical_is_the_asymptotic_bound() -> None:
    # c(alpha) * sqrt((n + m) / (n m)); c(0.05) = 1.358 (the textbook table)
    assert statistics.ks_critical(100, 100, 0.05) == pytest.approx(
        1.358 * math.sqrt(0.02), rel=1e-3
    )
    assert statistics.ks_critical(0, 100, 0.05) == 0.0
