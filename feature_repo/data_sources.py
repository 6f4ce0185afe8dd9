"""Offline sources: the parquet tables built by `skewless build-tables` (feature_repo/tables/).

Every `event_timestamp` is the moment the fact became known, not the moment it happened.
"""

from pathlib import Path

from feast import FileSource

# Absolute, resolved at `feast apply`: Feast's DuckDB offline store reads a relative path
# against the current directory, not the repository (unlike the `file` store).
DATA_DIR = Path(__file__).resolve().parent / "data"


def _table(name: str, description: str) -> FileSource:
    return FileSource(
        name=name,
        path=str(DATA_DIR / f"{name}.parquet"),
        timestamp_field="event_timestamp",
        description=description,
        owner="features@skewless.dev",
    )


flight_requests = _table(
    "flight_requests",
    "One row per scheduled flight at the moment a prediction is asked for (scheduled "
    "departure minus the lead time): entity keys, request-time fields and the label "
    "departed_late (null for cancelled flights). The entity rows of training.",
)
flight_outcomes = _table(
    "flight_outcomes",
    "The label of each flight that departed (departed_late), stamped at the moment it became "
    "known: its departure, or 15 minutes after its scheduled departure if it had not left by "
    "then. Read by monitoring, point in time: labels arrive late.",
)
weather_hourly = _table(
    "weather_hourly", "Hourly METAR weather per origin airport, stamped one hour after the hour."
)
aircraft = _table("aircraft", "Aircraft attributes per tail number (FAA registry).")
carriers = _table("carriers", "Carrier names.")
destinations = _table("destinations", "Airport coordinates and time zones.")
origin_departures_recent = _table(
    "origin_departures_recent",
    "Departures, late share and mean delay per origin airport over the last 1 and 3 hours, "
    "every 15 minutes.",
)
carrier_departures_7d = _table(
    "carrier_departures_7d",
    "Departures, late rate and mean delay per carrier over the last 7 days, hourly.",
)
route_departures_7d = _table(
    "route_departures_7d",
    "Departures, late rate and mean delay per route over the last 7 days, hourly.",
)
aircraft_departures_today = _table(
    "aircraft_departures_today",
    "The same aircraft's departures from New York so far today (local day).",
)
