"""Fingerprints and the plan on a Feast repository the project did not write: `feast init`'s
own template (driver statistics, an on-demand view over a request source, a Project object).
Each kind of change is named for exactly the features it affects; a description is not."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skewless.definition_plan import pending_definitions, plan
from skewless.features import store as feature_store
from skewless.features.definitions import feature_definitions
from skewless.fingerprints import definition_changes
from skewless.settings import Settings

pytestmark = pytest.mark.integration

SERVICE = "driver_activity_v2"  # the hourly stats view and the on-demand view over them
STATS = {"conv_rate", "acc_rate", "avg_daily_trips"}
ON_DEMAND = {"conv_rate_plus_val1", "conv_rate_plus_val2"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("feast-init")
    subprocess.run(
        [sys.executable, "-m", "feast.cli.cli", "init", "driver_demo"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    settings = Settings(repo_path=folder / "driver_demo" / "feature_repo", state_dir=folder / "s")
    feature_store.apply(settings)
    return settings


def _edit(settings: Settings, old: str, new: str) -> None:
    path = settings.repo_path / "feature_definitions.py"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_each_change_to_the_template_is_named_and_a_description_is_not(
    template: Settings,
) -> None:
    store = feature_store.open_store(template)
    applied = feature_definitions(store, SERVICE)
    assert set(applied) == STATS | ON_DEMAND | {
        "driver_metadata",
        "driver_config",
        "driver_profile",
    }
    assert pending_definitions(template, SERVICE) == applied  # nothing pending yet

    _edit(template, 'description="Average daily trips"', 'description="Trips a day, averaged"')
    assert definition_changes(applied, pending_definitions(template, SERVICE)) == []

    _edit(template, 'inputs["conv_rate"] + inputs["val_to_add"]', 'inputs["conv_rate"] * 2')
    _edit(template, "ttl=timedelta(days=1)", "ttl=timedelta(days=2)")
    found = plan(template, SERVICE, applied, [])
    by_feature = {line.split(":")[0]: line for line in found.changed}
    assert set(by_feature) == STATS | ON_DEMAND | {
        "driver_metadata",
        "driver_config",
        "driver_profile",
    }
    for name in STATS:
        assert by_feature[name] == f"{name}: view changed"  # the TTL
    for name in ON_DEMAND:  # its code, and the view it reads (the TTL) upstream
        assert by_feature[name] == f"{name}: transformation, upstream changed"
    assert feature_definitions(feature_store.open_store(template), SERVICE) == applied  # untouched
