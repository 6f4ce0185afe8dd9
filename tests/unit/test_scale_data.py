"""The scale-data generator: N copies of the year that never collide and keep the year's
values, weekdays and the static profiles once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from feature_repo.tables.scale import SHIFT, scale_tables


def _tables(folder: Path) -> None:
    folder.mkdir()
    stamps = pd.date_range("2013-01-01", "2014-01-08", freq="19h", tz="UTC")
    pd.DataFrame(
        {
            "origin": ["EWR", "JFK"] * (len(stamps) // 2),
            "event_timestamp": stamps[: len(stamps) // 2 * 2],
            "late_rate": range(len(stamps) // 2 * 2),
        }
    ).to_parquet(folder / "route_departures_7d.parquet")
    pd.DataFrame(
        {
            "flight_id": ["f1", "f2"],
            "event_timestamp": pd.to_datetime(["2013-03-01", "2013-07-01"], utc=True),
        }
    ).to_parquet(folder / "flight_requests.parquet")
    pd.DataFrame(
        {
            "tailnum": ["N1"],
            "event_timestamp": pd.to_datetime(["2000-01-01"], utc=True),
            "seats": [150],
        }
    ).to_parquet(folder / "aircraft.parquet")


def test_copies_never_collide_and_keep_the_years_values(tmp_path: Path) -> None:
    _tables(tmp_path / "data")
    rows = scale_tables(tmp_path / "data", tmp_path / "scaled", copies=4)
    assert rows == {
        "aircraft": 1,
        "flight_requests": 8,
        "route_departures_7d": rows["route_departures_7d"],
    }
    route = pd.read_parquet(tmp_path / "scaled" / "route_departures_7d.parquet")
    original = pd.read_parquet(tmp_path / "data" / "route_departures_7d.parquet")
    assert len(route) == 4 * len(original)
    assert not route.duplicated(["origin", "event_timestamp"]).any()
    # Copies follow each other: the next begins after the last one ends (the 7-day tail too).
    copy1 = route.iloc[len(original) : 2 * len(original)]
    assert copy1["event_timestamp"].min() > original["event_timestamp"].max()
    pd.testing.assert_series_equal(
        copy1["late_rate"].reset_index(drop=True), original["late_rate"]
    )  # the year's own values
    assert (
        copy1["event_timestamp"].dt.dayofweek.to_numpy()
        == original["event_timestamp"].dt.dayofweek.to_numpy()
    ).all()
    assert (
        (copy1["event_timestamp"].reset_index(drop=True) - original["event_timestamp"])
        .eq(SHIFT)
        .all()
    )
    flights = pd.read_parquet(tmp_path / "scaled" / "flight_requests.parquet")
    assert flights["flight_id"].is_unique and "f1~3" in set(flights["flight_id"])
    aircraft = pd.read_parquet(tmp_path / "scaled" / "aircraft.parquet")
    assert len(aircraft) == 1  # a static profile holds for every copy
