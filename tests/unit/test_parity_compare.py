"""Does the parity comparison see a real difference, and only that?"""

import pandas as pd

from skewless.quality.parity import compare_features


def test_equal_values_across_dtypes_and_nulls_match() -> None:
    left = pd.DataFrame({"k": [1, 2], "n": [3, None], "s": ["a", None]})
    right = pd.DataFrame({"k": [2, 1], "n": [float("nan"), 3.0], "s": [None, "a"]})
    assert compare_features(left, right, ["n", "s"], "k") == []


def test_a_changed_value_or_a_null_on_one_side_is_reported() -> None:
    left = pd.DataFrame({"k": [1, 2, 3], "n": [1.0, 2.0, None]})
    right = pd.DataFrame({"k": [1, 2, 3], "n": [1.0, 2.5, 0.0]})
    [mismatch] = compare_features(left, right, ["n"], "k")
    assert mismatch.feature == "n" and mismatch.rows == 2
