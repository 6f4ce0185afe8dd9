"""The models being served: champion (and an optional challenger) from the MLflow registry,
verified, and swapped atomically when an alias moves.

A request reads `slots.champion` once and scores with that object to the end, so a swap
never splits a request between two versions; a model that fails to load, or whose contract
does not fit the feature service, is refused and the one already loaded keeps serving.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from skewless.features import ServiceSchema
from skewless.predictor import LoadedModel, ModelArtifactError, load_artifacts
from skewless.registry import CHALLENGER, CHAMPION, ModelRegistry

from .metrics import Metrics

log = logging.getLogger("skewless.serving")


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    sha256: str
    model: LoadedModel


@dataclass
class ModelSlots:
    champion: ServedModel | None = None
    challenger: ServedModel | None = None


class ModelRefused(RuntimeError):
    """A registered model the service will not serve (corrupt, or not fit for its features)."""


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


class ModelLoader:
    def __init__(
        self,
        registry: ModelRegistry,
        model_name: str,
        schema: ServiceSchema,
        metrics: Metrics,
        cache_dir: Path,
        pinned_version: str | None = None,
    ) -> None:
        self.registry = registry
        self.pinned_version = pinned_version  # serve this version, not the champion alias
        self.model_name = model_name
        self.schema = schema
        self.metrics = metrics
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(tempfile.mkdtemp(prefix="models-", dir=cache_dir))
        self.refused: dict[str, str] = {}  # "version:sha" -> why, so a bad one is tried once

    def refresh(self, slots: ModelSlots, *, challenger: bool) -> None:
        """Load whatever the aliases point at now, if it differs from what is served."""
        slots.champion = self._follow(CHAMPION, slots.champion)
        if challenger:
            slots.challenger = self._follow(CHALLENGER, slots.challenger)

    def _follow(self, alias: str, current: ServedModel | None) -> ServedModel | None:
        if alias == CHAMPION and self.pinned_version is not None:
            try:
                version: ModelVersion | None = self.registry.client.get_model_version(
                    self.model_name, self.pinned_version
                )
            except MlflowException as exc:
                log.error("cannot serve pinned version: %s", exc.message)
                return current
        else:
            version = self.registry.by_alias(self.model_name, alias)
        if version is None:
            # No champion: keep serving the last one. No challenger: stop routing to it.
            return current if alias == CHAMPION else None
        identity = f"{version.version}:{version.tags.get('sha256', '')}"
        if current is not None and f"{current.version}:{current.sha256}" == identity:
            return current
        if identity in self.refused:
            return current
        try:
            served = self._load(version)
        except OSError as exc:  # perhaps passing (a download, a disk): tried again next poll
            self.metrics.model_loads.labels("failed").inc()
            log.error("could not load %s version %s: %s", alias, version.version, exc)
            return current
        except (ModelRefused, ModelArtifactError) as exc:
            self.refused[identity] = str(exc)
            self.metrics.model_loads.labels("refused").inc()
            log.error("refused %s version %s: %s", alias, version.version, exc)
            return current
        self.metrics.model_loads.labels("loaded").inc()
        self.metrics.set_model(alias, served.name, served.version, served.sha256)
        log.warning("%s is now %s version %s", alias, served.name, served.version)
        return served

    def load(self, version: str | None = None, alias: str = CHAMPION) -> ServedModel:
        """One model by version, or by alias (batch scoring, the skew check)."""
        try:
            found = (
                self.registry.client.get_model_version(self.model_name, version)
                if version
                else self.registry.by_alias(self.model_name, alias)
            )
        except MlflowException as exc:
            raise ModelRefused(f"{self.model_name} version {version}: {exc.message}") from None
        if found is None:
            raise ModelRefused(f"{self.model_name} has no {alias!r} version in the registry")
        return self._load(found)

    def _load(self, version: ModelVersion) -> ServedModel:
        folder = self.cache_dir / f"v{version.version}"
        shutil.rmtree(folder, ignore_errors=True)
        fetched = self.registry.fetch(version, folder)
        if not fetched.sha256:
            raise ModelRefused(f"version {version.version} has no recorded sha256")
        model = load_artifacts(fetched.artifacts, fetched.sha256)
        check_fits(model, self.schema)
        return ServedModel(fetched.name, str(fetched.version), fetched.sha256, model)

    def close(self) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)
