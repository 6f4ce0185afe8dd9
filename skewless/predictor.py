"""Loading a registered model artifact and scoring feature rows: the code the prediction
service, batch scoring and the training pipeline's infra check share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from .model_contract import FeatureRows, ModelContract, feature_matrix

# A registered model's artifact folder holds these two files (written by the training pipeline).
MODEL_FILE, CONTRACT_FILE = "model.txt", "contract.json"


class ModelArtifactError(RuntimeError):
    """A model artifact is missing, corrupt, or does not match its recorded hash."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LoadedModel:
    booster: lgb.Booster
    contract: ModelContract
    sha256: str

    def score(self, rows: FeatureRows) -> np.ndarray:
        """Probability of the positive class per row. One thread: on a busy 2-core machine
        LightGBM's default OpenMP threads stall single-row calls by milliseconds."""
        matrix = feature_matrix(rows, self.contract)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype="float64")


def load_model(model_path: Path, contract_path: Path, expected_sha256: str | None) -> LoadedModel:
    """LightGBM's native text model (never pickle), verified against its recorded sha256."""
    try:
        actual = sha256_file(model_path)
    except OSError as exc:
        raise ModelArtifactError(f"cannot read model {model_path}: {exc}") from exc
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelArtifactError(
            f"model {model_path} has sha256 {actual}, expected {expected_sha256}: refusing it"
        )
    try:
        booster = lgb.Booster(model_str=model_path.read_text())
    except lgb.basic.LightGBMError as exc:
        raise ModelArtifactError(f"model {model_path} is not a LightGBM model: {exc}") from exc
    try:
        contract = ModelContract.load(contract_path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelArtifactError(f"model contract {contract_path} is unreadable: {exc}") from exc
    if booster.feature_name() != contract.feature_names:
        raise ModelArtifactError("model features differ from its contract's feature list")
    return LoadedModel(booster, contract, actual)


def load_artifacts(folder: Path, expected_sha256: str | None) -> LoadedModel:
    """A registered model's artifact folder (see `ModelRegistry.fetch`)."""
    return load_model(folder / MODEL_FILE, folder / CONTRACT_FILE, expected_sha256)
