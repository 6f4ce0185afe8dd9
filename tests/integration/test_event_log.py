"""The live event log on a real Redis: a replay of real departures, weather and outcomes
published by `skewless events publish`, read in a consumer group; malformed entries that a
producer `XADD`ed directly go to the dead-letter stream with their reasons, counted, and stop
nothing; a consumer that stopped before acknowledging gets its entries back; two consumers of
a group share the log without an entry read twice; a file with a bad line publishes nothing."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from feature_repo.tables.events import Departure, Outcome, Weather, entry_fields, replay_entries
from feature_repo.tables.raw import read_raw
from skewless.settings import get_settings
from streaming.log import EventLog, redis_client
from streaming.reader import EventReader

pytestmark = pytest.mark.integration

SINCE, UNTIL = "2013-12-02T11:00:00Z", "2013-12-02T13:00:00Z"


@pytest.fixture
def log(tmp_path: Path, redis_connection: str) -> Iterator[EventLog]:
    """A project of its own (its streams), named in a feature_store.yaml the commands read."""
    project = f"events_{uuid.uuid4().hex[:8]}"
    (tmp_path / "feature_store.yaml").write_text(f"project: {project}\n")
    saved = dict(os.environ)
    os.environ.update({"SKEWLESS_REPO_PATH": str(tmp_path), "SKEWLESS_EVENT_LOG": redis_connection})
    get_settings.cache_clear()
    event_log = EventLog(redis_client(redis_connection), project)
    yield event_log
    event_log.client.delete(event_log.stream, event_log.dead, event_log.dead_counts)
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def window() -> pd.DataFrame:
    """The replay's entries between SINCE and UNTIL, as `events publish --replay` reads them."""
    raw = read_raw()
    table = replay_entries(raw.flights, raw.weather)
    inside = (table["event_time"] >= SINCE) & (table["event_time"] < UNTIL)
    return table[inside].reset_index(drop=True)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_a_replay_is_read_in_order_and_malformed_entries_become_dead_letters(
    log: EventLog,
) -> None:
    code, output = _cli("events", "publish", "--replay", "--from", SINCE, "--until", UNTIL)
    assert code == 0, output
    raw = read_raw()
    table = replay_entries(raw.flights, raw.weather)
    expected = table[(table["event_time"] >= SINCE) & (table["event_time"] < UNTIL)].reset_index(
        drop=True
    )
    assert f"published {len(expected):,} events" in output
    assert set(expected["kind"]) == {"departure", "weather", "outcome"}

    # A producer's own XADDs: five malformed, then a good one.
    client = log.client
    typo = _departure(expected)  # a valid departure but for its year: 2031, not 2013
    scheduled = pd.Timestamp(typo["scheduled_departure"]).replace(year=2031)
    delay = pd.Timedelta(minutes=float(typo["dep_delay"]))
    typo.update(
        scheduled_departure=scheduled.isoformat(), departed_at=(scheduled + delay).isoformat()
    )
    bad = [
        {"kind": "arrival", "flight_id": "x"},
        {**_departure(expected), "dep_delay": "99"},  # disagrees with its own times
        {**_departure(expected), "departed_at": "2013-12-02T12:00:00"},  # no zone
        {b"kind": b"outcome", b"flight_id": b"\xff\xfe", b"departed_late": b"1", b"known_at": b"x"},
        typo,  # far ahead of the wall clock: it would move every clock
    ]
    for entry in bad:
        client.xadd(log.stream, entry)  # type: ignore[arg-type]
    last = {"kind": "outcome", "flight_id": "2013-12-02-UA1-EWR", "departed_late": "1"}
    client.xadd(log.stream, {**last, "known_at": "2013-12-02T13:00:00+00:00"})

    reader = EventReader(log, "features", "p1")
    events = []
    while batch := reader.poll(count=500, block_ms=200):
        events.extend(batch)
        reader.ack([d.entry_id for d in batch])
    ids = [d.event.event_id for d in events]
    assert ids == [*expected["event_id"], "outcome:2013-12-02-UA1-EWR"]  # the log's order
    kinds = {type(d.event) for d in events}
    assert kinds == {Departure, Weather, Outcome}

    assert reader.dead_lettered == 5
    reasons = [letter.reason for letter in log.dead_letters(last=10)]
    assert reasons[0].startswith("kind: 'arrival' is not an event kind")
    assert reasons[1].startswith("departure.dep_delay: 99 min, but departed_at")
    assert reasons[2] == "departure.departed_at: '2013-12-02T12:00:00' has no time zone"
    assert reasons[3].startswith("encoding: not UTF-8")
    assert reasons[4].startswith("departure: event time 2031-"), reasons[4]
    assert "ahead of the wall clock" in reasons[4]
    assert log.dead_letter_counts() == {
        "kind": 1,
        "departure.dep_delay": 1,
        "departure.departed_at": 1,
        "encoding": 1,
        "departure": 1,
    }
    (group,) = log.groups()
    assert group.pending == 0  # dead letters are acknowledged too: nothing is delivered again
    code, status = _cli("events", "status")
    assert code == 0 and "dead letters: 5" in status and "group features" in status, status


def _departure(expected: pd.DataFrame) -> dict[str, str]:
    row = expected[expected["kind"] == "departure"].iloc[0]
    return {name: str(row[name]) for name in ("kind", *Departure.__annotations__) if name in row}


def test_unacknowledged_entries_come_back_and_two_consumers_share_the_log(
    log: EventLog, window: pd.DataFrame
) -> None:
    total = len(log.publish(entry_fields(row) for row in window.to_dict("records")))

    stopped = EventReader(log, "features", "p1")
    held = stopped.poll(count=50, block_ms=200)
    assert len(held) == 50  # read, never acknowledged: p1 stops here
    again = EventReader(log, "features", "p1")  # p1 restarted
    assert [d.entry_id for d in again.poll(count=500)] == [d.entry_id for d in held]
    again.ack([d.entry_id for d in held])

    other = EventReader(log, "features", "p2")
    seen: list[str] = [d.entry_id for d in held]
    while True:
        first, second = again.poll(count=100, block_ms=100), other.poll(count=100, block_ms=100)
        if not first and not second:
            break
        for reader, batch in ((again, first), (other, second)):
            reader.ack([d.entry_id for d in batch])
            seen.extend(d.entry_id for d in batch)
    assert len(seen) == len(set(seen)) == total  # each entry once, none lost


def test_a_file_with_a_bad_line_publishes_nothing(log: EventLog, tmp_path: Path) -> None:
    good = {
        "kind": "outcome",
        "flight_id": "2013-12-02-UA1-EWR",
        "departed_late": "0",
        "known_at": "2013-12-02T13:00:00+00:00",
    }
    file = tmp_path / "events.jsonl"
    file.write_text(json.dumps(good) + "\n" + json.dumps({**good, "departed_late": "2"}) + "\n")
    code, output = _cli("events", "publish", str(file))
    assert code == 2, output
    assert f"{file}:2: outcome.departed_late: '2' is not 0 or 1" in output
    assert not log.client.exists(log.stream)
    file.write_text(json.dumps(good) + "\n")
    code, output = _cli("events", "publish", str(file))
    assert code == 0 and "published 1 events" in output, output
    assert log.length() == 1


def test_a_log_that_does_not_answer_is_one_line(log: EventLog) -> None:
    os.environ["SKEWLESS_EVENT_LOG"] = "127.0.0.1:1"
    get_settings.cache_clear()
    code, output = _cli("events", "status")
    assert code == 1 and "the event log's Redis at 127.0.0.1:1 does not answer" in output, output
    assert "Traceback" not in output
