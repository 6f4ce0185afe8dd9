"""The model contract, and the ONE function that turns feature rows into the model's input.

Training, online serving, batch scoring and the infra check all call `feature_matrix`; the
contract (feature order, kinds, category lists) travels with the model, so nothing about the
encoding is re-derived at serving time. Two copies of this function would be a skew bug.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Kind
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelContract:
    model_name: str
    feature_service: str
    feature_service_version: str
    label: str
    features: tuple[FeatureSpec, ...]
    threshold: float = 0.5
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        raw = json.loads(text)
        raw["features"] = tuple(
            FeatureSpec(f["name"], f["kind"], tuple(f["categories"])) for f in raw["features"]
        )
        return cls(**raw)

    @classmethod
    def load(cls, path: Path) -> ModelContract:
        return cls.from_json(path.read_text())


def is_categorical(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def derive_features(frame: pd.DataFrame, names: list[str]) -> tuple[FeatureSpec, ...]:
    """Kinds from the training frame's dtypes; categories sorted, so the codes are stable."""
    specs = []
    for name in names:
        if is_categorical(frame[name]):
            categories = tuple(sorted(str(v) for v in frame[name].dropna().unique()))
            specs.append(FeatureSpec(name, "categorical", categories))
        else:
            specs.append(FeatureSpec(name, "numeric"))
    return tuple(specs)


FeatureRows: TypeAlias = "pd.DataFrame | Mapping[str, Sequence[Any]]"


def feature_matrix(rows: FeatureRows, contract: ModelContract) -> np.ndarray:
    """Feature rows (any extra columns, any order) -> the model input, in contract order.

    `rows` is a frame (training, batch scoring) or a mapping of columns (the online path,
    which skips building a frame). A float64 matrix: numbers as they are (null -> NaN); a
    category as its index in the contract's list, so an unseen value is missing (NaN), never
    a new code. LightGBM is told which columns are categorical at training time
    (`categorical_columns`).
    """
    missing = [f.name for f in contract.features if f.name not in rows]
    if missing:
        raise KeyError(f"feature rows lack {missing}")
    n = len(rows) if isinstance(rows, pd.DataFrame) else len(rows[contract.features[0].name])
    matrix = np.empty((n, len(contract.features)), dtype="float64")
    for j, spec in enumerate(contract.features):
        values = rows[spec.name]
        if spec.kind == "numeric":
            matrix[:, j] = _numeric(values)
        else:
            categories = codes(spec)
            matrix[:, j] = [
                categories.get(v, np.nan) if isinstance(v, str) else np.nan for v in values
            ]
    return matrix


def _numeric(values: Sequence[Any]) -> np.ndarray:
    try:  # plain numbers and None (-> NaN): the common case, and the fast one
        return np.asarray(values, dtype="float64")
    except (TypeError, ValueError):  # strings, pandas NA: coerced, unparseable -> NaN
        series = values if isinstance(values, pd.Series) else pd.Series(list(values))
        numbers: np.ndarray = pd.to_numeric(series, errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        return numbers


def categorical_columns(contract: ModelContract) -> list[str]:
    return [f.name for f in contract.features if f.kind == "categorical"]


@lru_cache(maxsize=256)
def codes(spec: FeatureSpec) -> dict[str, float]:
    return {category: float(i) for i, category in enumerate(spec.categories)}
