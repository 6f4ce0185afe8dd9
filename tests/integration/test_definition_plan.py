"""Does `skewless plan` name the features a pending change alters and the models it would
skew, and does `skewless apply` refuse it while it would skew the champion? Against the
serving tests' registry (a real champion trained on the flights repository) and edited
copies of that repository, applied nowhere the champion reads."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from feature_repo.tables import build, tiles
from skewless.definition_plan import plan, recorded_definitions
from skewless.features import store as feature_store
from skewless.settings import Settings, get_settings
from tests.support.repos import copy_feature_repo

from .serving_setup import ServingWorld

pytestmark = pytest.mark.integration

WEATHER = {"weather_temp", "weather_dewp", "weather_humid", "weather_wind_dir"}
REQUEST = {"minutes_to_departure", "departure_hour", "departure_month", "distance_miles"}
CARRIER_7D = {"carrier_7d_late_rate", "carrier_7d_mean_delay"}
EDITS = {  # file -> (old, new): a transformation's code, a TTL, a source column
    "on_demand_views.py": ('"America/New_York"', '"America/Chicago"'),
    "feature_views.py": ("ttl=timedelta(hours=3)", "ttl=timedelta(hours=4)"),
    "data_sources.py": (
        "aircraft = _table(",
        'weather_hourly.timestamp_field = "observed_at"\naircraft = _table(',
    ),
}
DESCRIPTION = {"feature_views.py": ('"Temperature, °F."', '"Air temperature in °F."')}


def _edited_copy(world: ServingWorld, folder: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """The champion's repository, edited, with its built tables beside it (links)."""
    repo = copy_feature_repo(folder / "repo")
    data = repo / "data"
    data.mkdir(exist_ok=True)
    source = world.settings.data_dir
    shutil.copy(source / "tables.json", data / "tables.json")
    for table in source.glob("*.parquet"):
        (data / table.name).symlink_to(table)
    for file, (old, new) in edits.items():
        text = (repo / file).read_text()
        assert old in text, (file, old)
        (repo / file).write_text(text.replace(old, new, 1))
    return repo


UseRepo = Callable[[Path], Settings]


@pytest.fixture
def cli_env(serving_world: ServingWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[UseRepo]:
    """The CLI in this process, on a repository and the serving tests' registry."""

    def use(repo: Path) -> Settings:
        monkeypatch.setenv("SKEWLESS_REPO_PATH", str(repo))
        monkeypatch.setenv("SKEWLESS_STATE_DIR", str(serving_world.settings.state_dir))
        monkeypatch.setenv("SKEWLESS_ONLINE_STORE", "sqlite")
        get_settings.cache_clear()
        return get_settings()

    yield use
    get_settings.cache_clear()


def _edited_table_code(folder: Path) -> dict[str, str]:
    """The table code hashes of the project's builders with the carrier window made 14 days:
    tiles.py edited in a temporary file, imported under the real module's name (the hash names
    each constant by its module) and put where the builders look it up, restored after."""
    text = Path(tiles.__file__).read_text()
    old = 'Window("carrier_7d", pd.Timedelta(days=7))'
    assert old in text
    edited = folder / "tiles.py"
    edited.write_text(text.replace(old, old.replace("days=7", "days=14")))
    name = tiles.__name__
    spec = importlib.util.spec_from_file_location(name, edited)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look themselves up there
    try:
        spec.loader.exec_module(module)
        build.tiles = module  # type: ignore[attr-defined]
        code: dict[str, str] = build.table_code(60)
    finally:
        sys.modules[name] = tiles
        build.tiles = tiles  # type: ignore[attr-defined]
    return code


def test_plan_names_each_kind_of_change_and_the_champion_it_would_skew(
    serving_world: ServingWorld, tmp_path: Path
) -> None:
    repo = _edited_copy(serving_world, tmp_path, EDITS)
    settings = Settings(
        repo_path=repo, online_store="sqlite", state_dir=serving_world.settings.state_dir
    )
    recorded = recorded_definitions(settings, serving_world.config.name)
    assert "champion" in [alias for alias, _, _ in recorded]
    code = _edited_table_code(tmp_path)
    current = build.table_code(60)
    assert [t for t in current if code[t] != current[t]] == ["carrier_departures_7d"]
    found = plan(settings, serving_world.config.feature_service, {}, recorded, code)

    (champion,) = found.skewed("champion")
    by_feature = {line.split(":")[0]: line for line in champion.changes}
    assert REQUEST <= set(by_feature) and WEATHER <= set(by_feature), champion.changes
    assert CARRIER_7D <= set(by_feature), champion.changes
    for name in REQUEST:
        assert "transformation" in by_feature[name]
    assert "view" in by_feature["weather_temp"] and "source" in by_feature["weather_temp"]
    for name in CARRIER_7D:
        assert by_feature[name] == f"{name}: table_code changed"
    assert not {"dest_alt", "aircraft_last_delay_today"} & set(by_feature)
    assert "would be refused" in champion.line()
    assert not (repo / "data" / "registry.db").exists()  # the plan applied nothing here


def test_apply_is_refused_while_it_would_skew_the_champion(
    serving_world: ServingWorld, tmp_path: Path, cli_env: UseRepo
) -> None:
    repo = _edited_copy(serving_world, tmp_path, EDITS)
    settings = cli_env(repo)
    result = CliRunner().invoke(app, ["apply"])
    assert result.exit_code == 1, result.output
    assert "refused: champion version" in result.output
    assert "departure_hour: transformation changed" in result.output
    assert "skewless apply --candidate" in result.output
    assert feature_store.open_store(settings).list_feature_services() == []  # nothing applied

    plan_run = CliRunner().invoke(app, ["plan"])
    assert plan_run.exit_code == 1, plan_run.output
    assert "feast: " in plan_run.output and "would be refused" in plan_run.output


def test_a_description_change_applies(
    serving_world: ServingWorld, tmp_path: Path, cli_env: UseRepo
) -> None:
    repo = _edited_copy(serving_world, tmp_path, DESCRIPTION)
    cli_env(repo)
    result = CliRunner().invoke(app, ["apply"])
    assert result.exit_code == 0, result.output
    assert "champion version" not in result.output
    store = feature_store.open_store(get_settings())
    assert store.get_feature_view("weather_hourly").features  # applied
