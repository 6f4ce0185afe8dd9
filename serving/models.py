"""The models being served: champion (and an optional challenger) from the MLflow registry,
verified, and swapped atomically when an alias moves.

A request reads `slots.champion` once and scores with that object to the end, so a swap
never splits a request between two versions; a model that fails to load, or whose contract
does not fit the feature service, is refused and the one already loaded keeps serving.

Each version records the namespace (Feast project) it was trained on. A champion from
another namespace than the one being read is loaded against that namespace's definitions
and swapped in with its reader as one new `ModelSlots`: the switch to a candidate namespace
(`skewless switch`) and the rollback from it are one step, and no answer reads features of
one namespace for a model of the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skewless.errors import SkewlessError
from skewless.features.service import ServiceSchema
from skewless.fingerprints import definitions_fingerprint
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


@dataclass(frozen=True)
class FeatureNamespace:
    """One namespace's features as the service reads them."""

    project: str
    schema: ServiceSchema
    reader: Callable[..., Any]  # the core's OnlineReader
    fingerprint: str  # of its definitions: every answer carries it

    @classmethod
    def of(
        cls, project: str, schema: ServiceSchema, reader: Callable[..., Any]
    ) -> FeatureNamespace:
        return cls(project, schema, reader, definitions_fingerprint(schema.definitions))

    def same_inputs(self, other: FeatureNamespace) -> bool:
        """Requests parse the same (the faces and the prediction log are built on them)."""
        a, b = self.schema, other.schema
        keys = (*a.join_keys, *a.request_fields)
        return (a.join_keys, a.request_fields) == (b.join_keys, b.request_fields) and all(
            a.kinds[k] == b.kinds.get(k) for k in keys
        )


@dataclass
class ModelSlots:
    champion: ServedModel | None = None
    challenger: ServedModel | None = None
    namespace: FeatureNamespace | None = None  # None until the core takes its first one


class ModelLoader(ModelFetcher):
    """The kernel's fetcher, following the aliases and counting what it loads."""

    def __init__(
        self,
        registry: ModelRegistry,
        model_name: str,
        schema: ServiceSchema,
        metrics: Metrics,
        cache_dir: Path,
        namespace_of: Callable[[str], FeatureNamespace],
        pinned_version: str | None = None,
        allow_definition_skew: bool = False,
    ) -> None:
        super().__init__(
            registry, model_name, schema, cache_dir, allow_definition_skew=allow_definition_skew
        )
        self.namespace_of = namespace_of  # a project's features, opened on first use
        self.pinned_version = pinned_version  # serve this version, not the champion alias
        self.metrics = metrics
        self.refused: dict[str, str] = {}  # "version:sha@project" -> why: tried once

    def refresh(self, slots: ModelSlots, *, challenger: bool) -> ModelSlots:
        """Load whatever the aliases point at now, if it differs from what is served. A
        challenger promoted to champion is already loaded: it is swapped in, not read again.
        A champion of another namespace comes back in new slots, with that namespace."""
        moved = self._other_namespace(slots)
        if moved is not None:
            return moved
        slots.champion = self._follow(CHAMPION, slots, slots.champion, slots.challenger)
        if challenger:
            slots.challenger = self._follow(CHALLENGER, slots, slots.challenger)
        return slots

    def _other_namespace(self, slots: ModelSlots) -> ModelSlots | None:
        """New slots when the champion was trained on another namespace than the one read."""
        version = self._version(CHAMPION)
        project = version.record.namespace if version is not None else ""
        current = slots.namespace
        if version is None or current is None or not project or project == current.project:
            return None
        key = f"{version.identity}@{project}"
        if key in self.refused:
            return None
        try:
            namespace = self.namespace_of(project)
            if not namespace.same_inputs(current):
                raise ModelRefused(
                    f"namespace {project} asks for other request fields than "
                    f"{current.project}: restart the service to switch to it"
                )
        except SkewlessError as exc:
            self.refused[key] = f"version {version.version}: {exc}"
            self.metrics.model_loads.labels("refused").inc()
            log.error("refused champion version %s: %s", version.version, exc)
            return None
        moved = ModelSlots(namespace=namespace)
        moved.champion = self._follow(CHAMPION, moved, None)
        if moved.champion is None:
            return None
        log.warning("now reading features from namespace %s", project)
        return moved

    def _version(self, alias: str) -> Version | None:
        try:
            if alias == CHAMPION and self.pinned_version is not None:
                return self.registry.version(self.model_name, self.pinned_version)
            return self.registry.by_alias(self.model_name, alias)
        except SkewlessError as exc:  # an unknown pin, a locked registry: keep serving
            log.error("cannot read the %s model from the registry: %s", alias, exc)
            return None

    def _follow(
        self,
        alias: str,
        slots: ModelSlots,
        current: ServedModel | None,
        loaded: ServedModel | None = None,
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
        assert slots.namespace is not None  # the core gave the slots their namespace
        project = slots.namespace.project
        if identity in self.refused or f"{identity}@{project}" in self.refused:
            return current
        if version.record.namespace and version.record.namespace != project:
            # A challenger trained in another namespace cannot be read beside the champion.
            self.refused[f"{identity}@{project}"] = (
                f"version {version.version} reads namespace {version.record.namespace}, "
                f"the champion {project}"
            )
            log.error("refused %s version %s: %s", alias, version.version, "other namespace")
            return current
        if loaded is not None and f"{loaded.version}:{loaded.sha256}" == identity:
            self.metrics.set_model(alias, loaded.name, loaded.version, loaded.sha256)
            log.warning(
                "%s is now %s version %s (already loaded)", alias, loaded.name, loaded.version
            )
            return loaded
        try:
            served = self.load_version(version, slots.namespace.schema)
        except OSError as exc:  # perhaps passing (a download, a disk): tried again next poll
            self.metrics.model_loads.labels("failed").inc()
            log.error("could not load %s version %s: %s", alias, version.version, exc)
            return current
        except (ModelRefused, ModelArtifactError) as exc:
            self.refused[f"{identity}@{project}"] = str(exc)
            self.metrics.model_loads.labels("refused").inc()
            if isinstance(exc, DefinitionSkew):
                self.metrics.definition_skew.inc()
            log.error("refused %s version %s: %s", alias, version.version, exc)
            return current
        self.metrics.model_loads.labels("loaded").inc()
        self.metrics.set_model(alias, served.name, served.version, served.sha256)
        log.warning("%s is now %s version %s", alias, served.name, served.version)
        return served
