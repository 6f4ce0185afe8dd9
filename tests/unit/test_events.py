"""The event schema's one reader: real events round-trip through the wire format exactly, and
each kind of malformed entry is refused naming its field (what the processor dead-letters)."""

from __future__ import annotations

import pytest

from feature_repo.tables.events import (
    MalformedEvent,
    entry_fields,
    event_fields,
    parse_event,
    replay_entries,
)
from feature_repo.tables.raw import read_raw

DEPARTURE = {
    "kind": "departure",
    "flight_id": "2013-12-02-UA1545-EWR",
    "origin": "EWR",
    "dest": "IAH",
    "carrier": "UA",
    "tailnum": "N14228",
    "scheduled_departure": "2013-12-02T10:15:00+00:00",
    "departed_at": "2013-12-02T10:17:00+00:00",
    "dep_delay": "2",
}


def test_the_years_events_round_trip_through_the_wire_exactly() -> None:
    raw = read_raw()
    flights = raw.flights[raw.flights["month"] == 12]
    weather = raw.weather[raw.weather["month"] == 12]
    entries = replay_entries(flights, weather)
    assert set(entries["kind"]) == {"departure", "weather", "outcome"}
    for row in entries.iloc[::97].to_dict("records"):
        fields = entry_fields(row)
        event = parse_event(fields)
        assert event.event_id == row["event_id"]
        assert event_fields(event) == fields
    assert entries["event_time"].is_monotonic_increasing  # a replay publishes them in order


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"kind": "arrival"}, "kind: 'arrival' is not an event kind"),
        ({"dep_delay": "3"}, "departure.dep_delay: 3 min, but departed_at - scheduled_departure"),
        ({"dep_delay": "2.5"}, "departure.dep_delay: 2.5 is not whole minutes"),
        (
            {"departed_at": "2013-12-02T10:17:00"},
            "departure.departed_at: '2013-12-02T10:17:00' has no time zone",
        ),
        ({"departed_at": "2013-12-02T10:17:00.5+00:00"}, "is not a whole second"),
        ({"departed_at": "2313-12-02T10:17:00+00:00"}, "is out of range"),
        ({"carrier": "U|A"}, "departure.carrier: 'U|A' contains '|'"),
        ({"origin": "ewr"}, "departure.origin: 'ewr' is not an airport code"),
        ({"dep_delay": "inf"}, "departure.dep_delay: 'inf' is not finite"),
        ({"gate": "B12"}, "departure: unknown field(s) gate"),
    ],
)
def test_a_malformed_departure_is_refused_naming_its_field(
    change: dict[str, str], reason: str
) -> None:
    assert parse_event(DEPARTURE).event_id == "departure:2013-12-02-UA1545-EWR"
    with pytest.raises(MalformedEvent, match=None) as refused:
        parse_event({**DEPARTURE, **change})
    assert reason in str(refused.value)


def test_a_missing_field_is_named() -> None:
    entry = {k: v for k, v in DEPARTURE.items() if k != "dest"}
    with pytest.raises(MalformedEvent, match="departure: missing field"):
        parse_event(entry)
