"""Value-by-value comparison of two feature frames (online vs offline, served vs recomputed).

Nulls equal nulls; numbers compare with a relative tolerance, whatever their dtype (Feast
returns an Int64 feature as int online and as float offline when a null is present).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureMismatch:
    feature: str
    rows: int
    example_key: object
    left: object
    right: object


def _equal(left: pd.Series, right: pd.Series, rtol: float) -> np.ndarray:
    both_null = left.isna().to_numpy() & right.isna().to_numpy()
    left_num = pd.to_numeric(left, errors="coerce")
    right_num = pd.to_numeric(right, errors="coerce")
    numeric = (left_num.notna() | left.isna()).all() and (right_num.notna() | right.isna()).all()
    if numeric:
        same = np.isclose(
            left_num.to_numpy(dtype="float64"),
            right_num.to_numpy(dtype="float64"),
            rtol=rtol,
            atol=0.0,
        )
    else:
        same = left.astype("object").to_numpy() == right.astype("object").to_numpy()
    equal: np.ndarray = both_null | (same & ~left.isna().to_numpy() & ~right.isna().to_numpy())
    return equal


def compare_features(
    left: pd.DataFrame,
    right: pd.DataFrame,
    features: Sequence[str],
    key: str,
    rtol: float = 1e-9,
) -> list[FeatureMismatch]:
    """Mismatches per feature between two frames with the same rows (matched on `key`)."""
    if left[key].duplicated().any() or right[key].duplicated().any():
        raise ValueError(f"{key!r} does not identify rows uniquely")
    merged = left[[key, *features]].merge(
        right[[key, *features]], on=key, how="outer", suffixes=("_l", "_r"), indicator=True
    )
    unmatched = merged["_merge"] != "both"
    if unmatched.any():
        raise ValueError(f"{int(unmatched.sum())} rows are not in both frames")
    mismatches = []
    for name in features:
        same = _equal(merged[f"{name}_l"], merged[f"{name}_r"], rtol)
        if not same.all():
            first = int(np.flatnonzero(~same)[0])
            mismatches.append(
                FeatureMismatch(
                    feature=name,
                    rows=int((~same).sum()),
                    example_key=merged[key].iloc[first],
                    left=merged[f"{name}_l"].iloc[first],
                    right=merged[f"{name}_r"].iloc[first],
                )
            )
    return mismatches
