"""`skewless plan`: what applying the feature repository's files would do to the models.

Feast's own `feast plan` says which objects change; this says which *features* change
meaning (their definition fingerprints, `skewless/features/definitions.py`) and which
registered versions — the champion, the challenger (a canary's too) — were trained on the old
meaning and would be refused by the service after the change. `skewless apply` refuses a
change that would skew the champion; the way through is a candidate namespace
(`skewless apply --candidate`, `skewless/namespaces.py`).

The pending definitions are read by applying the repository's files to a scratch registry and
online store in a temporary folder: Feast's own parsing and inference, nothing the service
reads is touched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from skewless.features import store as feature_store
from skewless.features.definitions import feature_definitions
from skewless.fingerprints import Definition, definition_changes
from skewless.models.contract import CONTRACT_FILE, ModelContract
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.settings import Settings

Definitions = dict[str, Definition]


@dataclass(frozen=True)
class Impact:
    """One registered version the pending change would skew (or leave alone)."""

    alias: str
    version: str
    changes: tuple[str, ...]  # "feature: parts changed"; empty: unaffected
    recorded: bool = True  # False: registered before fingerprints, refused whatever changes

    def line(self) -> str:
        if not self.recorded:
            return f"{self.alias} version {self.version}: records no definitions (retrain it)"
        if not self.changes:
            return f"{self.alias} version {self.version}: unaffected"
        shown = "; ".join(self.changes[:8])
        more = f"; and {len(self.changes) - 8} more" if len(self.changes) > 8 else ""
        return f"{self.alias} version {self.version} would be refused: {shown}{more}"


@dataclass(frozen=True)
class DefinitionPlan:
    changed: tuple[str, ...]  # features whose definition the change alters, against the applied
    impacts: tuple[Impact, ...]
    pending: Definitions

    def skewed(self, *aliases: str) -> list[Impact]:
        """The versions under `aliases` that the change would skew."""
        return [i for i in self.impacts if i.alias in aliases and i.changes]


def pending_definitions(
    settings: Settings, service: str, built_code: Mapping[str, str] | None = None
) -> Definitions:
    """The definitions the repository's files would register: applied to a scratch registry.
    `built_code`: the code hash each table in the repository's data folder would be built
    with now (the project's table builders), in place of the manifest's (built before)."""
    scratch = Path(tempfile.mkdtemp(prefix="skewless-plan-"))
    try:
        config_file = feature_store.scratch_config(settings, scratch)
        feature_store.apply(settings, config_file)
        store = feature_store.open_store(settings, config_file)
        code = {settings.data_dir: dict(built_code)} if built_code is not None else None
        return feature_definitions(store, service, built_code=code)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


Recorded = list[tuple[str, str, Definitions]]  # (alias, version, its training's definitions)


def recorded_definitions(settings: Settings, model_name: str) -> Recorded:
    """The definitions the champion and the challenger were trained on (their contracts)."""
    if not ModelRegistry.exists(settings):
        return []
    registry = ModelRegistry.of(settings)
    cache = Path(tempfile.mkdtemp(prefix="skewless-plan-models-"))
    found = []
    try:
        for alias in (CHAMPION, CHALLENGER):
            version = registry.by_alias(model_name, alias)
            if version is None:
                continue
            fetched = registry.fetch(version, cache / f"v{version.version}")
            contract = ModelContract.load(fetched.artifacts / CONTRACT_FILE)
            found.append((alias, str(version.version), contract.definitions))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return found


def plan(
    settings: Settings,
    service: str,
    applied: Definitions,
    recorded: Recorded,
    built_code: Mapping[str, str] | None = None,
) -> DefinitionPlan:
    """The pending change's features and the registered versions it would skew. `applied`:
    the definitions registered now (empty when nothing is)."""
    pending = pending_definitions(settings, service, built_code)
    changed = tuple(definition_changes(applied, pending)) if applied else ()
    impacts = tuple(
        Impact(alias, version, tuple(definition_changes(was, pending)), recorded=bool(was))
        for alias, version, was in recorded
    )
    return DefinitionPlan(changed, impacts, pending)
