"""`skewless live`: the level-2 loop on live data, from a replay that moves.

One moving clock (skewless/clock.py) stands at `start` when the replay begins and runs `speed`
times the wall's pace; every process started here reads it from its environment. Then:

- the week before `start` goes into the event log at once (the 7-day windows need it), and the
  stream processor (`skewless stream run`, a child process) takes it in;
- the prediction service (`skewless serve`, a child process) starts on the same settings;
- as the clock passes each event's time, the event is published (departures, weather, and the
  outcomes: labels becoming known); as it passes each real request's time (the entity rows of
  the model's source), the request is sent to the service;
- every `tick_every` of replay time the CT controller ticks (`skewless ct tick`, a child
  process, on the same clock), one tick at a time, beside the replay.

What it reports: events published, requests answered and failed, how many answers had a
streamed feature missing (older than its view's TTL: the stream fell behind), the ticks'
decisions. Child processes are stopped (SIGTERM) on the way out, whatever happened.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from feature_repo.tables.events import entry_fields, replay_entries
from feature_repo.tables.raw import read_raw
from feature_repo.tables.tiles import TILED
from serving.process import ServiceProcess
from serving.schemas import rest_body
from skewless.clock import moving_clock
from skewless.command_support import command_program
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.configuration import ModelConfig
from skewless.settings import Settings
from streaming.log import EventLog

HISTORY = timedelta(days=7)  # the longest window: published before the clock starts
WARMUP_SECONDS = 20.0  # wall seconds for the children to start before the clock reaches start
STREAMED = tuple(column for a in TILED.values() for column in a.columns()) + ("weather_",)


@dataclass
class LiveReport:
    start: str
    until: str
    speed: float
    history_events: int = 0
    events: int = 0
    requests: int = 0
    answered: int = 0
    failed: int = 0
    stale_streamed: int = 0  # answers with a streamed feature missing (too old or never seen)
    ticks: list[str] = field(default_factory=list)  # each tick's last line
    behind_seconds: float = 0.0  # how far the replay fell behind its clock at worst (wall)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def run_live(
    settings: Settings,
    config: ModelConfig,
    *,
    start: datetime,
    until: datetime,
    speed: float,
    tick_every: timedelta,
    out_dir: Path,
    say: Callable[[str], None] = print,
    warmup_seconds: float = WARMUP_SECONDS,
) -> LiveReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = LiveReport(start.isoformat(), until.isoformat(), speed)
    store = feature_store.open_store(settings)
    schema = service_schema(store, config.feature_service)
    entries = _entries(start - HISTORY, until)
    requests = _requests(store, config, list(schema.join_keys), start, until)
    log = EventLog.of(settings, feature_store.yaml_project(settings))

    history = entries[entries["event_time"] < start]
    report.history_events = len(log.publish(entry_fields(r) for r in history.to_dict("records")))
    say(f"published the week before {start:%Y-%m-%d %H:%M}: {report.history_events:,} events")

    wall_start = time.time() + warmup_seconds
    env = {**settings.as_env(), **moving_clock(start, speed, wall_start)}
    env["SKEWLESS_PREDICTION_LOG"] = str(out_dir / "prediction_log")
    processor = _child(["stream", "run", "--metrics-port", "0"], env, out_dir / "processor.log")
    service = ServiceProcess(env, out_dir / "service.log")
    ticker = _Ticker(env, out_dir / "ct.log", report)
    try:
        service.start(timeout=max(warmup_seconds * 3, 60))
        say(
            f"service at {service.url}; processor pid {processor.pid}; clock starts at "
            f"{start:%Y-%m-%d %H:%M}, {speed:g}x"
        )

        def replay_time() -> pd.Timestamp:
            return pd.Timestamp(start) + pd.Timedelta(seconds=(time.time() - wall_start) * speed)

        live = entries[entries["event_time"] >= start].reset_index(drop=True)
        timeline = _timeline(live, requests, start, until, tick_every)
        with httpx.Client(base_url=service.url, timeout=10.0) as client:
            for moment, kind, item in timeline:
                wait = (moment - replay_time()).total_seconds() / speed
                if wait > 0:
                    time.sleep(wait)
                else:
                    report.behind_seconds = max(report.behind_seconds, -wait)
                if kind == "events":
                    report.events += len(log.publish(item))
                elif kind == "request":
                    _predict(client, rest_body(item, schema, request_id=item["flight_id"]), report)
                else:
                    ticker.tick()
        ticker.wait()
    finally:
        ticker.stop()
        _stop(processor)
        service.stop()
    (out_dir / "live.json").write_text(json.dumps(report.as_dict(), indent=2))
    return report


def _entries(since: datetime, until: datetime) -> pd.DataFrame:
    raw = read_raw()
    margin = timedelta(days=2)  # an event is known up to a day after its flight's hour
    flights = raw.flights[raw.flights["time_hour"].between(since - margin, until + margin)]
    weather = raw.weather[raw.weather["time_hour"].between(since - margin, until + margin)]
    entries = replay_entries(flights, weather)
    inside = (entries["event_time"] >= since) & (entries["event_time"] < until)
    return entries[inside].reset_index(drop=True)


def _requests(
    store: Any, config: ModelConfig, keys: list[str], start: datetime, until: datetime
) -> pd.DataFrame:
    rows = pd.read_parquet(feature_store.file_source_path(store, config.entity_source))
    inside = rows["event_timestamp"].between(start, until, inclusive="left")
    rows = rows[inside].dropna(subset=keys)
    return rows.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def _timeline(
    events: pd.DataFrame,
    requests: pd.DataFrame,
    start: datetime,
    until: datetime,
    tick_every: timedelta,
) -> list[tuple[pd.Timestamp, str, Any]]:
    """Everything in replay-time order: events grouped per second (published together),
    requests one by one, ticks."""
    timeline: list[tuple[pd.Timestamp, str, Any]] = []
    for moment, group in events.groupby("event_time", sort=True):
        timeline.append(
            (pd.Timestamp(moment), "events", [entry_fields(r) for r in group.to_dict("records")])
        )
    for row in requests.to_dict("records"):
        timeline.append((pd.Timestamp(row["event_timestamp"]), "request", row))
    moment = pd.Timestamp(start) + tick_every
    while moment <= pd.Timestamp(until):
        timeline.append((moment, "tick", None))
        moment += tick_every
    order = {"events": 0, "request": 1, "tick": 2}  # a request sees the events of its second
    return sorted(timeline, key=lambda item: (item[0], order[item[1]]))


def _predict(client: httpx.Client, body: dict[str, Any], report: LiveReport) -> None:
    report.requests += 1
    try:
        answer = client.post("/v1/predict", json=body)
    except httpx.HTTPError:
        report.failed += 1
        return
    if answer.status_code != 200:
        report.failed += 1
        return
    report.answered += 1
    missing = answer.json().get("missing_features", [])
    # A feature's name, with or without its view's prefix ("view__name", "view:name").
    names = [name.split(":")[-1].split("__")[-1] for name in missing]
    if any(name.startswith(STREAMED) for name in names):
        report.stale_streamed += 1


def _child(arguments: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*command_program(), *arguments], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a processor stops between steps, a tick between its stages), then a kill."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=30)


class _Ticker:
    """CT ticks in a child process each, one at a time, beside the replay (a tick that
    retrains takes minutes of wall time; the replay does not wait for it). A tick due while
    the previous one runs is skipped, not queued; one still running at the end is stopped."""

    def __init__(self, env: dict[str, str], log_path: Path, report: LiveReport) -> None:
        self.env, self.log_path, self.report = env, log_path, report
        self.child: subprocess.Popen[bytes] | None = None
        self.started = 0

    def tick(self) -> None:
        self._collect()
        if self.child is None:
            self.started = self.log_path.stat().st_size if self.log_path.exists() else 0
            self.child = _child(["ct", "tick"], self.env, self.log_path)

    def wait(self, timeout: float = 600) -> None:
        if self.child is not None:
            try:
                self.child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._collect()

    def stop(self) -> None:
        if self.child is not None:
            _stop(self.child)
            self._collect()

    def _collect(self) -> None:
        """A finished tick's first line (its decision) into the report."""
        if self.child is None or self.child.poll() is None:
            return
        with self.log_path.open("rb") as out:
            out.seek(self.started)
            text = out.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        code = self.child.returncode
        self.report.ticks.append(lines[0] if code == 0 and lines else f"exit {code}: {text[-200:]}")
        self.child = None
