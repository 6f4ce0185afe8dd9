"""The ONE feature encoder: feature values -> the model's input, a row or a matrix.

Training, batch scoring, the infra check, the gate and every online prediction encode through
a `FeatureEncoder` built from the model's contract. The rules live in two functions,
`number` and `category`; the row method calls them per value, and the matrix method calls
them per value too, except on columns whose dtype already holds plain numbers (numpy
bool/int/float), where `number` is the identity. A change to a rule therefore moves online
and batch scores alike (`tests/unit/test_encoder.py` plants one and watches both move).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import repeat
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from skewless.models.contract import FeatureSpec, ModelContract

MISSING = math.nan  # what LightGBM reads as a missing value
TEXT = (str, bytes)

FeatureRows: TypeAlias = "pd.DataFrame | Mapping[str, Sequence[Any]]"


def number(value: object) -> float:
    """A numeric feature's value: a number as a float; null (None, NaN, pandas NA) and what
    does not parse as a number -> missing. A string holding a number is that number."""
    if value is None:
        return MISSING
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # pandas NA, NaT, an unparseable string, anything else
        return MISSING


def category(value: object, codes: Mapping[str, float]) -> float:
    """A categorical feature's value: its index in the contract's sorted list. An unseen
    value, null, or a value that is not a string is missing, never a new code."""
    return codes.get(value, MISSING) if isinstance(value, str) else MISSING


@lru_cache(maxsize=256)
def codes(spec: FeatureSpec) -> dict[str, float]:
    return {name: float(i) for i, name in enumerate(spec.categories)}


class FeatureEncoder:
    """Built once per model from its contract (feature order, kinds, category lists)."""

    def __init__(self, contract: ModelContract) -> None:
        self.contract = contract
        self.names = contract.feature_names
        # Per feature, in contract order: None for a number, else the category codes.
        self.columns: list[tuple[str, dict[str, float] | None]] = [
            (f.name, None if f.kind == "numeric" else codes(f)) for f in contract.features
        ]

    def row(self, values: Mapping[str, Sequence[object]], k: int, out: np.ndarray) -> None:
        """Row `k` of feature columns (any extra columns) into `out`, in contract order."""
        for j, (name, categories) in enumerate(self.columns):
            value = values[name][k]
            out[j] = number(value) if categories is None else category(value, categories)

    def matrix(self, rows: FeatureRows) -> np.ndarray:
        """Feature rows (a frame, or a mapping of columns; any extra columns, any order) ->
        a float64 matrix in contract order."""
        missing = [name for name in self.names if name not in rows]
        if missing:
            raise KeyError(f"feature rows lack {missing}")
        n = len(rows) if isinstance(rows, pd.DataFrame) else len(rows[self.names[0]])
        uneven = [name for name in self.names if len(rows[name]) != n]
        if uneven:
            raise ValueError(f"feature columns {uneven} do not hold {n} rows")
        matrix = np.empty((n, len(self.columns)), dtype="float64")
        for j, (name, categories) in enumerate(self.columns):
            values = rows[name]
            if categories is None:
                matrix[:, j] = _numbers(values, n)
            else:
                matrix[:, j] = np.fromiter(
                    map(category, values, repeat(categories)), dtype="float64", count=n
                )
        return matrix


def _numbers(values: Sequence[Any], n: int) -> np.ndarray:
    """`number` of each value. Two shortcuts give exactly what it gives, per value, and
    `tests/unit/test_encoder.py` holds them to it: a numpy bool/int/float column is numbers
    already; numpy converts numbers and None as `float()` does (None as NaN), everything but
    text (which it parses by rules of its own) and what it cannot convert (pandas NA: then
    one value at a time)."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return np.asarray(values, dtype="float64")
    if not any(issubclass(kind, TEXT) for kind in set(map(type, values))):
        try:
            return np.asarray(values, dtype="float64")
        except (TypeError, ValueError):
            pass
    return np.fromiter(map(number, values), dtype="float64", count=n)


def categorical_columns(contract: ModelContract) -> list[str]:
    return [f.name for f in contract.features if f.kind == "categorical"]
