"""Can a changed feature definition reach a model trained on the old one? Each kind of change
(an on-demand transformation's code, a TTL, a source column) changes the fingerprints of
exactly the features it affects, a description changes none; a model whose features changed
is refused where models are loaded (service, gate, batch scoring all load through
`ModelFetcher`), unless the override is set."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from skewless.features import store as feature_store
from skewless.features.definitions import feature_definitions
from skewless.features.service import service_schema
from skewless.fingerprints import definition_changes
from skewless.models.artifacts import DefinitionSkew, ModelFetcher
from skewless.models.configuration import load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings
from tests.support.repos import copy_feature_repo, settings_for

from .serving_setup import ServingWorld

pytestmark = pytest.mark.integration

WEATHER = {"weather_temp", "weather_dewp", "weather_humid", "weather_wind_dir"}
REQUEST = {"minutes_to_departure", "departure_hour", "departure_month", "distance_miles"}


def _edit(file: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        path = repo / file
        text = path.read_text()
        assert old in text, (file, old)
        path.write_text(text.replace(old, new, 1))

    return edit


def _definitions(settings: Settings) -> dict[str, dict[str, str]]:
    store = feature_store.open_store(settings)
    return feature_definitions(store, load_model_config(settings.model_file).feature_service)


def _changed(real_repo: Settings, folder: Path, edit: Callable[[Path], None]) -> list[str]:
    """Apply an edited copy of the repository (the same built tables' manifest beside it)
    and name what changed against the original."""
    repo = copy_feature_repo(folder / "repo")
    (repo / "data").mkdir(exist_ok=True)
    shutil.copy(real_repo.data_dir / "tables.json", repo / "data" / "tables.json")
    edit(repo)
    settings = settings_for(repo, "sqlite", "unused")
    feature_store.apply(settings)
    return definition_changes(_definitions(real_repo), _definitions(settings))


@pytest.mark.parametrize(
    ("edit", "features", "part"),
    [
        (
            _edit("on_demand_views.py", '"America/New_York"', '"America/Chicago"'),
            REQUEST,
            "transformation",
        ),
        (
            _edit("feature_views.py", "ttl=timedelta(hours=3)", "ttl=timedelta(hours=4)"),
            WEATHER,
            "view",
        ),
        (
            _edit(
                "data_sources.py",
                "aircraft = _table(",
                'weather_hourly.timestamp_field = "observed_at"\naircraft = _table(',
            ),
            WEATHER,
            "source",
        ),
    ],
    ids=["transformation-code", "ttl", "source-column"],
)
def test_each_kind_of_change_names_exactly_the_features_it_affects(
    real_repo: Settings,
    tmp_path: Path,
    edit: Callable[[Path], None],
    features: set[str],
    part: str,
) -> None:
    changes = _changed(real_repo, tmp_path, edit)
    changed = {line.split(":")[0] for line in changes}
    assert features <= changed, changes
    assert all(f"{part} changed" in line or f", {part}" in line for line in changes), changes
    untouched = {"carrier_7d_late_rate", "dest_alt", "aircraft_last_delay_today"}
    assert not untouched & changed, changes


def test_a_description_change_changes_no_fingerprint(real_repo: Settings, tmp_path: Path) -> None:
    edit = _edit("feature_views.py", '"Temperature, °F."', '"Air temperature in °F."')
    assert _changed(real_repo, tmp_path, edit) == []


def test_a_model_trained_on_other_definitions_is_refused_unless_overridden(
    serving_world: ServingWorld, tmp_path: Path
) -> None:
    settings = serving_world.settings
    store = feature_store.open_store(settings)
    schema = service_schema(store, serving_world.config.feature_service)
    registry = ModelRegistry.of(settings)
    name = serving_world.config.name
    with_current = ModelFetcher(registry, name, schema, tmp_path / "a")
    assert with_current.load().model.contract.definitions == schema.definitions  # trained on them

    moved = {k: dict(v) for k, v in schema.definitions.items()}
    moved["weather_temp"]["view"] = "0" * 64  # as after a changed TTL
    changed = replace(schema, definitions=moved)
    refusing = ModelFetcher(registry, name, changed, tmp_path / "b")
    with pytest.raises(DefinitionSkew, match=r"definition_skew: .*weather_temp: view changed"):
        refusing.load()
    allowing = ModelFetcher(registry, name, changed, tmp_path / "c", allow_definition_skew=True)
    served = allowing.load()
    assert "weather_temp: view changed" in allowing.overridden[served.version]
