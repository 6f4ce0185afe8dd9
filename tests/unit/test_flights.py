"""Are flight requests stamped at request time, with honest labels?"""

import pandas as pd
import pytest

from feature_repo.tables.flights import build_departures, build_flight_requests


def raw_flights() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "year": [2013, 2013, 2013],
            "month": [1, 1, 1],
            "day": [1, 1, 1],
            "dep_delay": [2.0, 15.0, None],
            "carrier": pd.array(["UA", "AA", "UA"], dtype="string"),
            "flight": [1545, 1141, 99],
            "tailnum": pd.array(["N14228", None, "N1"], dtype="string"),
            "origin": ["EWR", "JFK", "EWR"],
            "dest": ["IAH", "MIA", "ORD"],
            "distance": [1400, 1089, 719],
            "minute": [15, 40, 0],
            "time_hour": pd.to_datetime(
                ["2013-01-01T10:00:00Z", "2013-01-01T10:00:00Z", "2013-01-01T23:00:00Z"], utc=True
            ),
        }
    )


def test_requests_are_stamped_lead_time_before_scheduled_departure() -> None:
    requests = build_flight_requests(raw_flights(), pd.Timedelta(minutes=60))
    first = requests.set_index("flight_id").loc["2013-01-01-UA1545-EWR"]
    assert first["scheduled_departure"] == pd.Timestamp("2013-01-01 10:15", tz="UTC")
    assert first["event_timestamp"] == pd.Timestamp("2013-01-01 09:15", tz="UTC")
    assert first["requested_at"] == first["event_timestamp"]


def test_label_is_late_at_15_minutes_and_null_for_cancelled_flights() -> None:
    requests = build_flight_requests(raw_flights(), pd.Timedelta(minutes=60)).set_index("flight_id")
    assert requests.loc["2013-01-01-UA1545-EWR", "departed_late"] == 0
    assert requests.loc["2013-01-01-AA1141-JFK", "departed_late"] == 1
    assert pd.isna(requests.loc["2013-01-01-UA99-EWR", "departed_late"])
    assert "cancelled" not in requests.columns  # an outcome, not known at request time


def test_a_lead_time_shorter_than_the_earliest_departure_is_refused() -> None:
    flights = raw_flights()
    flights.loc[0, "dep_delay"] = -20.0
    with pytest.raises(ValueError, match="too short"):
        build_flight_requests(flights, pd.Timedelta(minutes=15))


def test_cancelled_flights_are_not_departures() -> None:
    departures = build_departures(raw_flights())
    assert len(departures) == 2
    assert departures["departed_at"].iloc[1] == pd.Timestamp("2013-01-01 10:55", tz="UTC")
