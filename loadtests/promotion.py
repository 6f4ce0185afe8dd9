"""Moving `champion`: promote (only a blessed version with a passed gate for its exact
artifact) and rollback (to the champion before). Each move is one alias write under the
registry's lock, recorded with who, when and why; a running service follows it at its next
poll (hot swap)."""

from __future__ import annotations

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
