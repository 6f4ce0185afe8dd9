"""Moving `champion`: promote (only a blessed version with a passed gate for its exact
artifact) and rollback (to the champion before). Each move is one alias write under the
registry's lock, recorded with who, when and why; a running service follows it at its next
poll (hot swap)."""

from __future__ import annotations

from skewless.errors import BadInput
from skewless.features import namespaces
from skewless.features.namespaces import Namespaces
from skewless.features.store import yaml_project
from skewless.models.configuration import load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER
from skewless.registry.champion_moves import ChampionMove
from skewless.registry.versions import PromotionRefused
from skewless.settings import Settings

from .records import record_step


def promote(settings: Settings, version: str, *, by: str, why: str) -> ChampionMove:
    registry = ModelRegistry.of(settings)
    name = load_model_config(settings.model_file).name
    found = registry.version(name, version)
    if not found.record.blessed:
        raise PromotionRefused(f"version {version} is not blessed by its pipeline run")
    # The registry refuses a version without a passed gate for its exact artifact.
    move = registry.move_champion(name, version, action="promote", by=by, why=why)
    challenger = registry.by_alias(name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        registry.delete_alias(name, CHALLENGER)  # it is the champion now
    record_step(registry, name, version, "promote", "promoted", vars(move))
    return move


def rollback(settings: Settings, *, by: str, why: str) -> ChampionMove:
    registry = ModelRegistry.of(settings)
    name = load_model_config(settings.model_file).name
    move = registry.rollback_champion(name, by=by, why=why)
    if move.previous is not None:
        record_step(registry, name, move.previous, "rollback", "rolled back", vars(move))
    return move


def switch(
    settings: Settings, version: str | None, *, by: str, why: str
) -> tuple[ChampionMove, Namespaces]:
    """The candidate namespace and its model live in one step: the model trained there
    (default: the challenger) is promoted, with the same checks as any promotion; a service
    reads each version's own namespace, so it moves to both at its next poll, and the old
    namespace is kept for `switch --rollback`."""
    current = namespaces.load(settings.state_dir)
    switched = current.switched(yaml_project(settings))  # no candidate: bad input, first
    registry = ModelRegistry.of(settings)
    name = load_model_config(settings.model_file).name
    if version is None:
        challenger = registry.by_alias(name, CHALLENGER)
        if challenger is None or challenger.record.namespace != current.candidate:
            raise BadInput(
                f"no challenger trained in the candidate namespace {current.candidate}: "
                "`SKEWLESS_NAMESPACE=candidate skewless train` first, or give --version"
            )
        version = str(challenger.version)
    trained_in = registry.version(name, version).record.namespace
    if trained_in != current.candidate:
        raise BadInput(
            f"version {version} was trained in namespace {trained_in or '(none recorded)'}, "
            f"not the candidate {current.candidate}"
        )
    move = promote(settings, version, by=by, why=why)
    namespaces.save(settings.state_dir, switched)
    return move, switched


def switch_back(settings: Settings, *, by: str, why: str) -> tuple[ChampionMove, Namespaces]:
    """The namespace before the last switch and the champion before it, in one step."""
    back = namespaces.load(settings.state_dir).rolled_back(yaml_project(settings))
    move = rollback(settings, by=by, why=why)
    namespaces.save(settings.state_dir, back)
    return move, back
