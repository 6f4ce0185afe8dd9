"""Do the aggregate builders only ever count departures strictly before a row's timestamp?"""

import numpy as np
import pandas as pd
import pytest

from feature_repo.tables.aggregates import KNOWN_AFTER, rolling_late_rate, same_day_last_delay

T0 = pd.Timestamp("2013-03-01 15:00", tz="UTC")  # 10:00 in New York


def departures(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    """(key, minutes after T0, late 0/1, delay) -> a departure stream."""
    frame = pd.DataFrame(rows, columns=["origin", "minutes", "late", "dep_delay"])
    frame["departed_at"] = T0 + pd.to_timedelta(frame["minutes"], unit="min")
    frame["tailnum"] = frame["origin"]
    return frame.astype({"origin": "string", "tailnum": "string"})


def value_at(table: pd.DataFrame, key: str, moment: pd.Timestamp, column: str) -> float:
    rows = table[(table["origin"] == key) & (table["event_timestamp"] == moment)]
    assert len(rows) == 1, f"expected one snapshot at {moment}, found {len(rows)}"
    return rows[column].iloc[0]


def test_snapshot_counts_departures_strictly_before_it_within_the_window() -> None:
    deps = departures(
        [
            ("EWR", 0, 1, 30.0),  # exactly at the 15:00 snapshot: not before it
            ("EWR", 14, 0, 0.0),
            ("EWR", 15, 1, 20.0),  # exactly at 15:15: belongs to later snapshots only
            ("JFK", 5, 1, 40.0),
        ]
    )
    table = rolling_late_rate(
        deps, ["origin"], pd.Timedelta(hours=1), pd.Timedelta(minutes=15), "o"
    )
    at = lambda minutes: T0 + pd.Timedelta(minutes=minutes)  # noqa: E731
    assert value_at(table, "EWR", at(0), "o_departures") == 0
    assert np.isnan(value_at(table, "EWR", at(0), "o_late_rate"))
    assert value_at(table, "EWR", at(15), "o_departures") == 2  # minutes 0 and 14
    assert value_at(table, "EWR", at(15), "o_late_rate") == pytest.approx(0.5)
    assert value_at(table, "EWR", at(30), "o_departures") == 3
    # The window is [g - 1h, g): the departure at minute 0 leaves at the 16:15 snapshot.
    assert value_at(table, "EWR", at(60), "o_departures") == 3
    assert value_at(table, "EWR", at(75), "o_departures") == 1
    assert value_at(table, "JFK", at(15), "o_late_rate") == pytest.approx(1.0)


def test_window_must_be_a_multiple_of_the_snapshot_interval() -> None:
    deps = departures([("EWR", 0, 0, 0.0)])
    with pytest.raises(ValueError, match="multiple"):
        rolling_late_rate(deps, ["origin"], pd.Timedelta(minutes=50), pd.Timedelta(minutes=15), "o")


def test_same_day_features_reset_at_local_midnight() -> None:
    # 10:00, 12:30 local; the next local day starts at 05:00 UTC on 2013-03-02.
    deps = departures([("N1", 0, 0, 5.0), ("N1", 150, 1, 45.0), ("N1", 150, 0, 3.0)])
    table = same_day_last_delay(deps, "tailnum", "a").rename(columns={"tailnum": "origin"})
    first = T0 + KNOWN_AFTER
    assert value_at(table, "N1", first, "a_departures_today") == 1
    assert value_at(table, "N1", first, "a_last_delay_today") == 5.0
    second = T0 + pd.Timedelta(minutes=150) + KNOWN_AFTER
    assert value_at(table, "N1", second, "a_departures_today") == 3
    assert value_at(table, "N1", second, "a_last_delay_today") == 45.0  # ties: larger delay
    midnight = pd.Timestamp("2013-03-02 00:00", tz="America/New_York").tz_convert("UTC")
    assert value_at(table, "N1", midnight, "a_departures_today") == 0
    assert np.isnan(value_at(table, "N1", midnight, "a_last_delay_today"))
    assert len(table) == 3


def test_a_departure_becomes_known_only_after_it_happened() -> None:
    deps = departures([("N1", 0, 0, 5.0)])
    table = same_day_last_delay(deps, "tailnum", "a")
    assert (table["event_timestamp"] > T0).all()
