"""The models being served: champion (and an optional challenger) from the MLflow registry,
verified, and swapped atomically when an alias moves.

A request reads `slots.champion` once and scores with that object to the end, so a swap
never splits a request between two versions; a model that fails to load, or whose contract
does not fit the feature service, is refused and the one already loaded keeps serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from skewless.errors import SkewlessError
from skewless.features.service import ServiceSchema
from skewless.models.artifacts import (
    DefinitionSkew,
    ModelArtifactError,
    ModelFetcher,
    ModelRefused,
    ServedModel,
)
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.registry.versions import Version

from .metrics import Metrics

log = logging.getLogger("skewless.serving")


@dataclass
class ModelSlots:
    champion: ServedModel | None = None
    challenger: ServedModel | None = None


class ModelLoader(ModelFetcher):
    """The kernel's fetcher, following the aliases and counting what it loads."""

    def __init__(
        self,
        registry: ModelRegistry,
        model_name: str,
        schema: ServiceSchema,
        metrics: Metrics,
        cache_dir: Path,
        pinned_version: str | None = None,
        allow_definition_skew: bool = False,
    ) -> None:
        super().__init__(
            registry, model_name, schema, cache_dir, allow_definition_skew=allow_definition_skew
        )
        self.pinned_version = pinned_version  # serve this version, not the champion alias
        self.metrics = metrics
        self.refused: dict[str, str] = {}  # "version:sha" -> why, so a bad one is tried once

    def refresh(self, slots: ModelSlots, *, challenger: bool) -> None:
        """Load whatever the aliases point at now, if it differs from what is served. A
        challenger promoted to champion is already loaded: it is swapped in, not read again."""
        slots.champion = self._follow(CHAMPION, slots.champion, slots.challenger)
        if challenger:
            slots.challenger = self._follow(CHALLENGER, slots.challenger)

    def _follow(
        self, alias: str, current: ServedModel | None, loaded: ServedModel | None = None
    ) -> ServedModel | None:
        version: Version | None
        try:
            if alias == CHAMPION and self.pinned_version is not None:
                version = self.registry.version(self.model_name, self.pinned_version)
            else:
                version = self.registry.by_alias(self.model_name, alias)
        except SkewlessError as exc:  # an unknown pin, a locked registry: keep serving
            log.error("cannot read the %s model from the registry: %s", alias, exc)
            return current
        if version is None:
            # No champion: keep serving the last one. No challenger: stop routing to it.
            return current if alias == CHAMPION else None
        identity = version.identity
        if current is not None and f"{current.version}:{current.sha256}" == identity:
            return current
        if identity in self.refused:
            return current
        if loaded is not None and f"{loaded.version}:{loaded.sha256}" == identity:
            self.metrics.set_model(alias, loaded.name, loaded.version, loaded.sha256)
            log.warning(
                "%s is now %s version %s (already loaded)", alias, loaded.name, loaded.version
            )
            return loaded
        try:
            served = self.load_version(version)
        except OSError as exc:  # perhaps passing (a download, a disk): tried again next poll
            self.metrics.model_loads.labels("failed").inc()
            log.error("could not load %s version %s: %s", alias, version.version, exc)
            return current
        except (ModelRefused, ModelArtifactError) as exc:
            self.refused[identity] = str(exc)
            self.metrics.model_loads.labels("refused").inc()
            if isinstance(exc, DefinitionSkew):
                self.metrics.definition_skew.inc()
            log.error("refused %s version %s: %s", alias, version.version, exc)
            return current
        self.metrics.model_loads.labels("loaded").inc()
        self.metrics.set_model(alias, served.name, served.version, served.sha256)
        log.warning("%s is now %s version %s", alias, served.name, served.version)
        return served
