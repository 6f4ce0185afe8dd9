"""The model contract: what a model was trained on (feature service, feature order, kinds,
category lists, threshold, each feature's definition fingerprint). It travels with the model,
so nothing about the encoding is re-derived at serving time; `encoder.FeatureEncoder` is built
from it, the one encoder every path calls.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

Kind = Literal["numeric", "categorical"]

CONTRACT_FILE = "contract.json"  # beside the model file in every model artifact


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
    # feature -> its definition's parts, hashed (skewless/features/definitions.py); empty in a
    # contract written before fingerprints, which is refused until retrained
    definitions: dict[str, dict[str, str]] = field(default_factory=dict)

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
