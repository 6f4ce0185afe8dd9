"""Model artifacts: loading a registered model, verifying it (sha256, contract, fit to its
feature service) and scoring feature rows. The prediction service, batch scoring, the skew
check, the gate and the training pipeline's infra check all load models here; nothing in it
needs a running service (the service adds its metrics and hot swap on top, in serving/)."""

from __future__ import annotations

import ctypes
import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np

from skewless.errors import SkewlessError
from skewless.fingerprints import skew_message
from skewless.hashing import sha256_file
from skewless.models.contract import CONTRACT_FILE, ModelContract
from skewless.models.encoder import FeatureEncoder, FeatureRows

if TYPE_CHECKING:  # annotations only: loading a model imports neither Feast nor MLflow
    from skewless.features.service import ServiceSchema
    from skewless.registry.adapter import ModelRegistry
    from skewless.registry.versions import Version
from skewless.registry.aliases import CHAMPION

log = logging.getLogger("skewless")
# A registered model's artifact folder holds these two files (written by the training pipeline).
MODEL_FILE = "model.txt"


class ModelRefused(SkewlessError):
    """A registered model that will not be served (corrupt, or not fit for its features)."""


class DefinitionSkew(ModelRefused):
    """A model trained on other feature definitions than the ones read now."""


class ModelArtifactError(SkewlessError):
    """A model artifact is missing, corrupt, or does not match its recorded hash."""


class SingleRowPredictor:
    """One row through LightGBM's C API "fast" single-row predict, into a preallocated input:
    ~10 µs here where `Booster.predict` on a one-row matrix costs ~40 µs (it rebuilds its
    predictor and parameters per call). The row is encoded by the model's one encoder, the
    one that builds batch scoring's matrix. One caller at a time (a lock; the serving loop
    is its only user in practice)."""

    def __init__(self, booster: lgb.Booster, encoder: FeatureEncoder) -> None:
        contract = encoder.contract
        if booster.num_model_per_iteration() != 1:  # the output below holds one score
            raise ModelArtifactError("not a binary or regression model: one score per row")
        self.booster = booster  # the handle below lives as long as the booster
        self.encoder = encoder
        self.row = np.empty(len(contract.features), dtype="float64")
        self.out = np.empty(1, dtype="float64")
        self.out_len = ctypes.c_int64()
        self.lock = threading.Lock()
        self.handle = ctypes.c_void_p()
        num_iteration = booster.best_iteration if booster.best_iteration > 0 else -1
        _check(
            _lib().LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,  # noqa: SLF001 -- the C API needs the booster's handle
                ctypes.c_int(0),  # C_API_PREDICT_NORMAL: probabilities
                ctypes.c_int(0),
                ctypes.c_int(num_iteration),
                ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                ctypes.c_int32(len(contract.features)),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self.handle),
            )
        )
        self.row_pointer = self.row.ctypes.data_as(ctypes.c_void_p)
        self.out_pointer = self.out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))

    def __del__(self) -> None:
        if getattr(self, "handle", None) and self.handle.value:
            try:
                _lib().LGBM_FastConfigFree(self.handle)
            except ImportError:  # the interpreter is shutting down: the process frees it
                pass

    def score(self, values: Mapping[str, Sequence[object]], k: int = 0) -> float:
        """The probability for row `k` of feature columns (as `LoadedModel.score` takes)."""
        with self.lock:
            self.encoder.row(values, k, self.row)
            _check(
                _lib().LGBM_BoosterPredictForMatSingleRowFast(
                    self.handle, self.row_pointer, ctypes.byref(self.out_len), self.out_pointer
                )
            )
            return float(self.out[0])


def _lib() -> ctypes.CDLL:
    from lightgbm.libpath import _LIB  # noqa: PLC0415 -- the library lightgbm itself loaded

    return _LIB


def _check(code: int) -> None:
    if code != 0:
        raise lgb.basic.LightGBMError(_lib().LGBM_GetLastError().decode())


@dataclass(frozen=True)
class LoadedModel:
    booster: lgb.Booster
    contract: ModelContract
    sha256: str
    encoder: FeatureEncoder = field(init=False, repr=False, compare=False)
    single: SingleRowPredictor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoder = FeatureEncoder(self.contract)
        object.__setattr__(self, "encoder", encoder)
        object.__setattr__(self, "single", SingleRowPredictor(self.booster, encoder))

    def score(self, rows: FeatureRows, threads: int = 1) -> np.ndarray:
        """Probability of the positive class per row. One thread by default: on a busy
        2-core machine LightGBM's default OpenMP threads stall single-row calls by
        milliseconds. Batch jobs pass `threads=0` (every core)."""
        matrix = self.encoder.matrix(rows)
        return np.asarray(self.booster.predict(matrix, num_threads=threads), dtype="float64")


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


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    sha256: str
    model: LoadedModel
    folder: Path | None = None  # the verified artifact files it was loaded from


@dataclass(frozen=True)
class ShippedModel:
    """A served model's artifact files as bytes, for a process on another host (a Ray
    worker): rebuilt there from the same bytes and verified against the same sha256."""

    name: str
    version: str
    sha256: str
    model_bytes: bytes
    contract_bytes: bytes

    @classmethod
    def of(cls, served: ServedModel) -> ShippedModel:
        if served.folder is None:
            raise ModelArtifactError(f"{served.name} v{served.version} has no artifact folder")
        return cls(
            served.name,
            served.version,
            served.sha256,
            (served.folder / MODEL_FILE).read_bytes(),
            (served.folder / CONTRACT_FILE).read_bytes(),
        )

    def load(self, into: Path) -> ServedModel:
        into.mkdir(parents=True, exist_ok=True)
        (into / MODEL_FILE).write_bytes(self.model_bytes)
        (into / CONTRACT_FILE).write_bytes(self.contract_bytes)
        model = load_artifacts(into, self.sha256)
        return ServedModel(self.name, self.version, self.sha256, model, into)


def check_fits(model: LoadedModel, schema: ServiceSchema) -> None:
    contract = model.contract
    if contract.feature_service != schema.name:
        raise ModelRefused(
            f"model was trained on feature service {contract.feature_service!r}, "
            f"the service reads {schema.name!r}"
        )
    unknown = [name for name in contract.feature_names if name not in schema.features]
    if unknown:
        raise ModelRefused(f"model needs features the feature service lacks: {unknown}")


class ModelFetcher:
    """Registered versions of one model, downloaded into a private cache folder, verified
    and checked against the feature service. `close()` removes the cache."""

    def __init__(
        self,
        registry: ModelRegistry,
        model_name: str,
        schema: ServiceSchema,
        cache_dir: Path,
        *,
        allow_definition_skew: bool = False,
    ) -> None:
        self.registry = registry
        self.model_name = model_name
        self.schema = schema
        self.allow_definition_skew = allow_definition_skew
        self.overridden: dict[str, str] = {}  # version -> the definition skew allowed
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(tempfile.mkdtemp(prefix="models-", dir=cache_dir))

    def load(self, version: str | None = None, alias: str = CHAMPION) -> ServedModel:
        """One model by version (an unknown one is bad input), or by alias."""
        if version:
            return self.load_version(self.registry.version(self.model_name, version))
        found = self.registry.by_alias(self.model_name, alias)
        if found is None:
            raise ModelRefused(f"{self.model_name} has no {alias!r} version in the registry")
        return self.load_version(found)

    def load_version(self, version: Version, schema: ServiceSchema | None = None) -> ServedModel:
        """`schema`: checked against this feature service's definitions (another namespace's)
        instead of the fetcher's."""
        schema = schema or self.schema
        folder = self.cache_dir / f"v{version.version}"
        shutil.rmtree(folder, ignore_errors=True)
        fetched = self.registry.fetch(version, folder)
        if not fetched.sha256:
            raise ModelRefused(f"version {version.version} has no recorded sha256")
        model = load_artifacts(fetched.artifacts, fetched.sha256)
        check_fits(model, schema)
        self._check_definitions(model, str(version.version), schema)
        return ServedModel(
            fetched.name, str(fetched.version), fetched.sha256, model, fetched.artifacts
        )

    def _check_definitions(self, model: LoadedModel, version: str, schema: ServiceSchema) -> None:
        """Refuse a model trained on other feature definitions than the ones read now, unless
        the operator allowed it (`definition_skew: allow`): then said, loudly, and kept."""
        why = skew_message(model.contract.definitions, schema.definitions, version)
        if why is None:
            return
        if not self.allow_definition_skew:
            raise DefinitionSkew(why)
        self.overridden[version] = why
        log.warning("loaded despite definition skew (allowed here): %s", why)

    def close(self) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)
