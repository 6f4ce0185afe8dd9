"""Online/offline parity: after materializing up to T, do the online features of real
entities equal the point-in-time features at T, value by value, on SQLite and on Redis?
And does a definition changed on one side make the comparison fail?"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from skewless.features import store as feature_store
from skewless.features.service import historical_features, online_features, service_schema
from skewless.quality.parity import compare_features
from skewless.settings import Settings
from tests.support.repos import settings_for

# A Friday, 17:07 in New York: off the 15-minute and hourly snapshot grids on purpose.
T = pd.Timestamp("2013-06-14 21:07", tz="UTC")
MIN_ENTITIES = 200


def entity_rows_at_t(settings: Settings) -> pd.DataFrame:
    """Real flights asked for in the 8 hours after T, all asked as of T."""
    store = feature_store.open_store(settings)
    requests = pd.read_parquet(feature_store.file_source_path(store, "flight_requests"))
    soon = requests[
        (requests["event_timestamp"] >= T)
        & (requests["event_timestamp"] < T + pd.Timedelta(hours=8))
    ]
    assert soon["tailnum"].isna().any(), "keep flights without a tail number: null join keys"
    rows = soon.assign(event_timestamp=T, requested_at=T).reset_index(drop=True)
    assert len(rows) >= MIN_ENTITIES
    return rows


def online_and_offline(settings: Settings, online_settings: Settings | None = None):
    store = feature_store.open_store(settings)
    feature_store.materialize(store, T.to_pydatetime())
    rows = entity_rows_at_t(settings)
    offline = historical_features(store, "delay_model_v1", rows)
    online_store = feature_store.open_store(online_settings or settings)
    schema = service_schema(online_store, "delay_model_v1")
    online = online_features(online_store, schema, rows, now=T.to_pydatetime())
    return schema, online, offline


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
def test_online_equals_offline_at_materialization_time(
    store_kind: str, real_repo: Settings, request: pytest.FixtureRequest
) -> None:
    settings = real_repo if store_kind == "sqlite" else request.getfixturevalue("real_repo_redis")
    schema, online, offline = online_and_offline(settings)
    assert len(online) == len(offline) >= MIN_ENTITIES
    # Not a vacuous comparison: most features hold values at T.
    filled = offline[list(schema.features)].notna().mean()
    assert (filled > 0.5).sum() >= 30, filled[filled <= 0.5]
    assert compare_features(online, offline, schema.features, key="flight_id") == []


@pytest.mark.slow
def test_a_definition_changed_on_one_side_breaks_parity(
    real_repo: Settings, tmp_path: Path
) -> None:
    """The online side's registry computes the departure hour in UTC instead of local time."""
    skewed = tmp_path / "skewed_repo"
    skewed.mkdir()
    for path in real_repo.repo_path.iterdir():
        if path.is_file() and path.suffix in {".py", ".yaml"} or path.name == ".feastignore":
            shutil.copy(path, skewed / path.name)
    (skewed / "data").symlink_to(real_repo.data_dir)  # same tables, same online store
    odfv = skewed / "on_demand_views.py"
    odfv.write_text(odfv.read_text().replace('ZoneInfo("America/New_York")', 'ZoneInfo("UTC")'))
    yaml_file = skewed / "feature_store.yaml"
    yaml_file.write_text(
        re.sub(
            r"^registry: .*$",
            f"registry: {tmp_path / 'skewed_registry.db'}",
            yaml_file.read_text(),
            flags=re.M,
        )
    )
    skewed_settings = settings_for(skewed, "sqlite", "unused")
    subprocess.run(
        feature_store.feast_command(skewed_settings, "apply"), check=True, capture_output=True
    )

    schema, online, offline = online_and_offline(real_repo, online_settings=skewed_settings)
    mismatched = {
        m.feature for m in compare_features(online, offline, schema.features, "flight_id")
    }
    assert "departure_hour" in mismatched
    assert mismatched <= {
        "departure_hour",
        "departure_minute_of_day",
        "departure_weekday",
        "departure_month",
    }
