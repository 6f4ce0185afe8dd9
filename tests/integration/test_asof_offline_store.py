"""The ASOF offline store (skewless.offline.asof_store) against Feast's own DuckDB store.

Every case runs the same entity rows through both stores, over the same applied repository,
and asks for the same rows, value by value and dtype by dtype. A few rows also carry the
value Feast's documented semantics give, so that both stores agreeing on a wrong answer
would still fail. Planted off-by-ones (`<` for `<=` on the event time, an exclusive TTL)
must make the comparison fail: the comparison can tell.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent

import pandas as pd
import pytest
from feast import FeatureStore

from skewless.features import store as feature_store
from skewless.offline import asof_sql
from skewless.quality.parity import compare_features
from skewless.settings import Settings

T0 = pd.Timestamp("2013-05-01 12:00", tz="UTC")
MINUTE = pd.Timedelta(minutes=1)
MICRO = pd.Timedelta(microseconds=1)

DEFINITIONS = dedent(
    """
    from datetime import timedelta
    from pathlib import Path

    from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource
    from feast import ValueType
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Float64, Int64, String

    HERE = Path(__file__).parent
    sensor = Entity(name="sensor", join_keys=["sensor"], value_type=ValueType.STRING)
    src = Entity(name="src", join_keys=["src"], value_type=ValueType.STRING)
    dst = Entity(name="dst", join_keys=["dst"], value_type=ValueType.STRING)

    reading = FeatureView(
        name="reading",
        entities=[sensor],
        ttl=timedelta(hours=1),
        source=FileSource(
            name="readings",
            path=str(HERE / "readings.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
            field_mapping={"raw_value": "value"},
        ),
        schema=[Field(name="value", dtype=Float64), Field(name="note", dtype=String)],
    )
    sensor_profile = FeatureView(
        name="sensor_profile",
        entities=[sensor],
        ttl=timedelta(days=1),
        source=FileSource(
            name="profiles", path=str(HERE / "profiles.parquet"), timestamp_field="event_timestamp"
        ),
        schema=[Field(name="installed", dtype=Int64), Field(name="site", dtype=String)],
    )
    link = FeatureView(
        name="link",
        entities=[src, dst],
        ttl=timedelta(0),
        source=FileSource(
            name="links", path=str(HERE / "links.parquet"), timestamp_field="event_timestamp"
        ),
        schema=[Field(name="hops", dtype=Int64)],
    )
    request = RequestSource(name="request", schema=[Field(name="factor", dtype=Float64)])


    @on_demand_feature_view(
        sources=[reading, request], schema=[Field(name="scaled", dtype=Float64)], mode="python"
    )
    def scaled_reading(inputs):
        return {
            "scaled": [
                None if v is None or f is None else v * f
                for v, f in zip(inputs["value"], inputs["factor"])
            ]
        }


    @on_demand_feature_view(
        sources=[request], schema=[Field(name="factor_squared", dtype=Float64)], mode="python"
    )
    def squared_factor(inputs):
        return {"factor_squared": [None if f is None else f * f for f in inputs["factor"]]}


    @on_demand_feature_view(
        sources=[link], schema=[Field(name="double_hops", dtype=Float64)], mode="pandas"
    )
    def doubled(frame):
        import pandas as pd

        return pd.DataFrame({"double_hops": frame["hops"] * 2.0})


    everything = FeatureService(
        name="everything",
        features=[reading, sensor_profile, link, scaled_reading, squared_factor, doubled],
    )
    by_device = FeatureService(
        name="by_device",
        features=[
            reading.with_name("device_reading").with_join_key_map({"sensor": "device"}),
            sensor_profile,
        ],
    )
    """
)


def _tables(repo: Path) -> None:
    def at(minutes: float) -> pd.Timestamp:
        return T0 + minutes * MINUTE

    # The first and last rows are outside every entity row's reach (expired before the
    # first, stamped after the last): the plug-in leaves them out before joining.
    pd.DataFrame(
        {
            "sensor": ["a", "a", "a", "a", "a", "b", None, "c", "a"],
            "event_timestamp": [
                *[at(-300), at(0), at(30), at(30), at(120)],
                *[at(0), at(0), at(300), at(1000)],
            ],
            # the two 12:30 rows tie on event time: the later created one (2.5) is Feast's
            "created": [at(-300), at(0), at(31), at(30), at(120), at(0), at(0), at(300), at(1000)],
            "raw_value": [0.5, 1.0, 2.5, 2.0, 3.0, 10.0, 99.0, 5.0, 50.0],
            "note": ["old", "first", "late fix", "early", "third", "b", "nobody", "c", "future"],
        }
    ).to_parquet(repo / "readings.parquet")
    pd.DataFrame(
        {
            "sensor": ["a", "b", "c"],
            "event_timestamp": [at(-1440), at(-1440), at(300)],
            "installed": [2001, 2002, 2003],
            "site": ["north", "south", "east"],
        }
    ).to_parquet(repo / "profiles.parquet")
    pd.DataFrame(
        {
            "src": ["x", "x", "y", "x"],
            "dst": ["y", "y", "x", None],
            "event_timestamp": [at(0), at(60), at(0), at(0)],
            "hops": [1, 2, 5, 7],
        }
    ).to_parquet(repo / "links.parquet")


# (sensor, minutes after T0, src, dst, factor) and the `value` Feast's semantics give.
ROWS: list[tuple[str | None, float, str | None, str | None, float | None, float | None]] = [
    ("a", -1, "x", "y", 1.0, None),  # its sensor's latest row is 5 h old: expired
    ("a", 0, "x", "y", 2.0, 1.0),  # stamped exactly at the entity time: known
    ("a", 29, "y", "x", 2.0, 1.0),
    ("a", 30, "x", "y", 1.0, 2.5),  # tie on event time: the later created row
    ("a", 30, "x", "y", 1.0, 2.5),  # a duplicate entity row gets its own row
    ("a", 30, "x", "y", 3.0, 2.5),  # same keys and time, another request value
    ("a", 90, "x", "y", 1.0, 2.5),  # exactly the TTL (60 min) after: still live
    ("a", 90 + 1 / 60e6, "x", "y", 1.0, None),  # one microsecond past the TTL
    ("a", 120, "x", None, 1.0, 3.0),  # a null second key of a two-key view
    ("b", 30, "y", "x", None, 10.0),
    ("b", 61, "z", "z", 1.0, None),  # expired; unknown link
    (None, 10, None, None, 1.0, None),  # null key: matches no row, not the null-key row
    ("unknown", 10, "x", "y", 1.0, None),
    ("c", 60, "x", "y", 1.0, None),  # the sensor's first rows come later
    ("c", 300, "x", "y", 1.0, 5.0),
]


def entity_rows(key: str = "sensor") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": range(len(ROWS)),
            key: [r[0] for r in ROWS],
            "event_timestamp": [T0 + r[1] * MINUTE for r in ROWS],
            "src": [r[2] for r in ROWS],
            "dst": [r[3] for r in ROWS],
            "factor": [r[4] for r in ROWS],
        }
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("asof_repo")
    (repo / "definitions.py").write_text(DEFINITIONS)
    (repo / "feature_store.yaml").write_text(
        "project: asof\nprovider: local\nregistry: registry.db\n"
        "offline_store:\n  type: skewless.offline.asof_store.AsofDuckDBOfflineStore\n"
        "online_store:\n  type: sqlite\n  path: online.db\n"
        "entity_key_serialization_version: 3\n"
    )
    _tables(repo)
    feature_store.apply(Settings(repo_path=repo))
    return repo


def open_both(repo: Path) -> tuple[FeatureStore, FeatureStore]:
    asof = feature_store.open_store(Settings(repo_path=repo, offline_store="asof"))
    stock = feature_store.open_store(Settings(repo_path=repo, offline_store="duckdb"))
    assert type(asof._get_provider().offline_store).__name__ == "AsofDuckDBOfflineStore"
    assert type(stock._get_provider().offline_store).__name__ == "DuckDBOfflineStore"
    return asof, stock


def retrieve(
    store: FeatureStore, rows: pd.DataFrame, features: list[str] | str, full: bool
) -> pd.DataFrame:
    refs = store.get_feature_service(features) if isinstance(features, str) else features
    frame = store.get_historical_features(
        entity_df=rows, features=refs, full_feature_names=full
    ).to_df()
    return frame.sort_values("row").reset_index(drop=True)


def assert_same(asof: pd.DataFrame, stock: pd.DataFrame, entity: pd.DataFrame) -> None:
    assert len(asof) == len(stock) == len(entity)
    assert list(asof.columns) == list(stock.columns)
    assert dict(asof.dtypes) == dict(stock.dtypes)
    features = [c for c in stock.columns if c not in entity.columns]
    assert compare_features(asof, stock, features, key="row") == []


def expected_values(frame: pd.DataFrame, column: str) -> None:
    got = [None if pd.isna(v) else float(v) for v in frame[column]]
    assert got == [r[5] for r in ROWS]


@pytest.mark.parametrize("full", [False, True], ids=["short names", "full names"])
def test_every_edge_matches_feasts_store(repo: Path, full: bool) -> None:
    asof, stock = open_both(repo)
    rows = entity_rows()
    ours = retrieve(asof, rows, "everything", full)
    theirs = retrieve(stock, rows, "everything", full)
    assert_same(ours, theirs, rows)
    expected_values(ours, "reading__value" if full else "value")
    scaled = ours["scaled_reading__scaled" if full else "scaled"]
    assert scaled.iloc[5] == pytest.approx(7.5)  # 2.5 (tie winner) x factor 3
    hops = ours["link__hops" if full else "hops"]
    assert [None if pd.isna(v) else int(v) for v in hops[[0, 1, 8, 9, 10, 14]]] == [
        None,
        1,
        None,
        5,
        None,
        2,
    ]


def test_projection_alias_and_join_key_map_match(repo: Path) -> None:
    asof, stock = open_both(repo)
    rows = entity_rows(key="device").assign(sensor=entity_rows()["sensor"])
    for full in (False, True):
        ours = retrieve(asof, rows, "by_device", full)
        assert_same(ours, retrieve(stock, rows, "by_device", full), rows)
    expected_values(ours, "device_reading__value")


def test_a_subset_of_features_in_any_order_matches(repo: Path) -> None:
    asof, stock = open_both(repo)
    rows = entity_rows()
    refs = ["sensor_profile:site", "reading:note", "link:hops", "reading:value"]
    ours = retrieve(asof, rows, refs, False)
    assert_same(ours, retrieve(stock, rows, refs, False), rows)
    assert sorted(ours.columns[-4:]) == ["hops", "note", "site", "value"]


def test_text_timestamps_and_shuffled_rows_match_and_keep_their_order(repo: Path) -> None:
    asof, stock = open_both(repo)
    rows = entity_rows().sample(frac=1.0, random_state=3).reset_index(drop=True)
    # Text timestamps are parsed as UTC, as Feast parses them.
    rows["event_timestamp"] = rows["event_timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
    refs = ["reading:value", "sensor_profile:site"]
    frame = asof.get_historical_features(entity_df=rows.copy(), features=refs).to_df()
    assert list(frame["row"]) == list(rows["row"])
    theirs = stock.get_historical_features(entity_df=rows.copy(), features=refs).to_df()
    ordered = entity_rows()
    assert_same(
        frame.sort_values("row").reset_index(drop=True),
        theirs.sort_values("row").reset_index(drop=True),
        ordered,
    )


PLANTS: dict[str, Callable[[str], str]] = {
    "`<` for `<=` on the event time": lambda sql: sql.replace(
        "e.__ts >= f.ts", "e.__ts > f.ts"
    ).replace("f.ts <= e.__ts", "f.ts < e.__ts"),
    "TTL exclusive": lambda sql: sql.replace("e.__ts <= f.ts +", "e.__ts < f.ts +"),
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_off_by_one_is_caught(
    repo: Path, plant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    view_sql = asof_sql._view_sql
    monkeypatch.setattr(
        asof_sql,
        "_view_sql",
        lambda *args: PLANTS[plant](view_sql(*args)),
    )
    asof, stock = open_both(repo)
    rows = entity_rows()
    ours = retrieve(asof, rows, "everything", False)
    theirs = retrieve(stock, rows, "everything", False)
    # Both paths: ASOF (reading's value) and the one-row-per-key hash join (the profile).
    checked = ["value", "site"]
    mismatched = {m.feature for m in compare_features(ours, theirs, checked, key="row")}
    assert mismatched == set(checked)


def test_stock_store_answers_what_the_plugin_cannot(repo: Path) -> None:
    """filter_by_created_timestamp over a source with a created column: the plug-in hands
    the call to Feast's own join, so the answer is still Feast's."""
    asof, stock = open_both(repo)
    rows = entity_rows()
    kwargs = {"features": ["reading:value"], "filter_by_created_timestamp": True}
    ours = asof.get_historical_features(entity_df=rows, **kwargs).to_df()
    theirs = stock.get_historical_features(entity_df=rows, **kwargs).to_df()
    ours, theirs = ours.sort_values("row"), theirs.sort_values("row")
    assert_same(ours.reset_index(drop=True), theirs.reset_index(drop=True), rows)
    # 12:30 asks for rows created by 12:30: the tie's later-created row is not yet known.
    assert math.isclose(ours["value"].iloc[3], 2.0)


@pytest.mark.slow
def test_whole_year_equals_feasts_store(real_repo: Settings) -> None:
    """The full feature service over all 336,776 flights, value by value, dtype by dtype."""
    asof = feature_store.open_store(real_repo)
    stock = feature_store.open_store(real_repo.model_copy(update={"offline_store": "duckdb"}))
    requests = pd.read_parquet(feature_store.file_source_path(asof, "flight_requests"))
    service = asof.get_feature_service("delay_model_v1")
    ours = asof.get_historical_features(entity_df=requests, features=service).to_df()
    theirs = stock.get_historical_features(entity_df=requests, features=service).to_df()
    assert len(ours) == len(theirs) == 336_776
    assert list(ours["flight_id"]) == list(requests["flight_id"])  # the entity rows' order
    assert list(ours.columns) == list(theirs.columns)
    assert dict(ours.dtypes) == dict(theirs.dtypes)
    features = [c for c in theirs.columns if c not in requests.columns]
    assert len(features) == 41
    assert compare_features(ours, theirs, features, key="flight_id", rtol=0.0) == []


def test_a_retrieval_persists_as_a_saved_dataset(repo: Path, tmp_path: Path) -> None:
    """On-demand features included (Feast's own store fails on this case: it writes the join
    without them, then asks for them when reading the saved dataset back)."""
    from feast.infra.offline_stores.file_source import SavedDatasetFileStorage

    asof, _ = open_both(repo)
    refs = ["reading:value", "link:hops", "scaled_reading:scaled"]
    job = asof.get_historical_features(entity_df=entity_rows(), features=refs)
    target = tmp_path / "saved.parquet"
    asof.create_saved_dataset(
        from_=job, name="asof_saved", storage=SavedDatasetFileStorage(path=str(target))
    )
    saved = pd.read_parquet(target).sort_values("row").reset_index(drop=True)
    frame = job.to_df().sort_values("row").reset_index(drop=True)
    assert list(saved.columns) == list(frame.columns)
    assert compare_features(saved, frame, ["value", "hops", "scaled"], key="row") == []
