"""Does Feast's point-in-time join (DuckDB offline store) never look ahead, and expire rows
after their TTL? On a hand-made repository small enough to reason about row by row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pandas as pd
import pytest
from feast import FeatureStore

T0 = pd.Timestamp("2013-05-01 12:00", tz="UTC")

DEFINITIONS = dedent(
    """
    from datetime import timedelta
    from pathlib import Path

    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    sensor = Entity(name="sensor", join_keys=["sensor"], value_type=ValueType.STRING)
    readings = FileSource(
        path=str(Path(__file__).parent / "readings.parquet"), timestamp_field="event_timestamp"
    )
    reading = FeatureView(
        name="reading",
        entities=[sensor],
        ttl=timedelta(hours=1),
        source=readings,
        schema=[Field(name="value", dtype=Float64)],
    )
    """
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    repo = tmp_path_factory.mktemp("pit_repo")
    (repo / "definitions.py").write_text(DEFINITIONS)
    (repo / "feature_store.yaml").write_text(
        "project: pit\nprovider: local\nregistry: registry.db\n"
        "offline_store:\n  type: duckdb\nonline_store:\n  type: sqlite\n  path: online.db\n"
        "entity_key_serialization_version: 3\n"
    )
    pd.DataFrame(
        {
            "sensor": ["a", "a", "b"],
            "event_timestamp": [T0, T0 + pd.Timedelta(minutes=30), T0],
            "value": [1.0, 2.0, 10.0],
        }
    ).to_parquet(repo / "readings.parquet")
    feast = Path(sys.executable).with_name("feast")
    subprocess.run([str(feast), "-c", str(repo), "apply"], check=True, capture_output=True)
    return FeatureStore(repo_path=str(repo))


def lookup(store: FeatureStore, rows: list[tuple[str, pd.Timedelta]]) -> list[float | None]:
    entity_df = pd.DataFrame(
        {
            "sensor": [sensor for sensor, _ in rows],
            "event_timestamp": [T0 + offset for _, offset in rows],
            "row": range(len(rows)),
        }
    )
    result = store.get_historical_features(entity_df=entity_df, features=["reading:value"])
    frame = result.to_df().sort_values("row")
    assert len(frame) == len(rows)
    return [None if pd.isna(v) else float(v) for v in frame["value"]]


def test_a_value_stamped_after_the_entity_timestamp_is_never_returned(store: FeatureStore) -> None:
    values = lookup(
        store,
        [
            ("a", pd.Timedelta(minutes=-1)),  # before any reading
            ("a", pd.Timedelta(minutes=29)),  # the 12:30 reading is still in the future
            ("a", pd.Timedelta(minutes=30)),  # stamped exactly now: known
        ],
    )
    assert values == [None, 1.0, 2.0]


def test_ttl_expiry_returns_null(store: FeatureStore) -> None:
    values = lookup(
        store,
        [
            ("a", pd.Timedelta(minutes=90)),  # latest reading 60 min old: still within TTL
            ("a", pd.Timedelta(minutes=91)),  # 61 min old: expired
            ("b", pd.Timedelta(minutes=61)),
            ("unknown", pd.Timedelta(minutes=10)),
        ],
    )
    assert values == [2.0, None, None, None]
