"""Event to online: how long after a departure is published its features are served, at a
sustained rate, measured from each event's publish time (its stream entry id: the
milliseconds Redis stamped it with).

    python -m benchmarks.stream_latency [--rate 2000] [--seconds 30] [--redis 127.0.0.1:6379]

A publisher thread appends the year's events from January on at `rate` per second (in slices
every 10 ms); one stream processor reads them as they come. A departure is online once the rows
of every window it falls in are written: the boundary after its bucket, per tiled view (at this
rate the replay runs ~75,000 times faster than the year: an hour of events passes in ~50 ms,
so a row waits for the next bucket's first event). Prints the latency's percentiles. In a
scratch copy of the feature repository, as benchmarks/stream_throughput.py.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.stream_throughput import _repo
from feature_repo.tables.build import build_tables
from feature_repo.tables.events import Departure, entry_fields, replay_entries
from feature_repo.tables.raw import read_raw
from feature_repo.tables.tiles import TILED, tile_of
from skewless.features import store as feature_store
from skewless.settings import Settings
from streaming.log import EventLog, redis_client
from streaming.processor import StreamProcessor
from streaming.tile_store import TileStore


def _publisher(
    log: EventLog, rows: list[dict[str, str]], rate: float, done: threading.Event
) -> None:
    started, sent = time.perf_counter(), 0
    while sent < len(rows):
        due = int((time.perf_counter() - started) * rate)
        if due > sent:
            log.publish(rows[sent:due])
            sent = due
        time.sleep(0.01)
    done.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        settings = Settings(
            repo_path=_repo(folder),
            online_store="redis",
            redis_connection=args.redis,
            event_log=args.redis,
            state_dir=folder / "state",
        )
        build_tables(settings.data_dir, settings.lead_time_minutes, progress=lambda _: None)
        feature_store.apply(settings)
        store = feature_store.open_store(settings)
        project = feature_store.yaml_project(settings)
        log = EventLog(redis_client(args.redis), project)
        try:
            raw = read_raw()
            entries = replay_entries(raw.flights, raw.weather)
            rows = [
                entry_fields(r)
                for r in entries.head(int(args.rate * args.seconds)).to_dict("records")
            ]
            processor = StreamProcessor(store, log, TileStore(log.client, project))
            waiting: list[tuple[float, dict[str, int]]] = []  # (published ms, boundary per table)
            latencies: list[float] = []
            done = threading.Event()
            publisher = threading.Thread(target=_publisher, args=(log, rows, args.rate, done))
            publisher.start()
            while True:
                read = processor.step(count=1000, block_ms=50)
                for d in processor.last_delivered:
                    if isinstance(d.event, Departure):
                        needs = {
                            t: tile_of(d.event.departed_at, a.tile) + 1 for t, a in TILED.items()
                        }
                        waiting.append((float(d.entry_id.split("-")[0]), needs))
                now_ms = time.time() * 1000
                still = []
                for published, needs in waiting:
                    if all(processor.written.get(t, -1) >= b for t, b in needs.items()):
                        latencies.append(now_ms - published)
                    else:
                        still.append((published, needs))
                waiting = still
                if done.is_set() and not read:
                    break
            publisher.join()
        finally:
            store.teardown()
            for key in log.client.scan_iter(f"skewless:{project}:*"):
                log.client.delete(key)
    values = np.array(latencies)
    print(
        f"{len(rows):,} events at {args.rate:,.0f}/s; {len(values):,} departures online, "
        f"{len(waiting):,} waiting for a later boundary at the end"
    )
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        print(f"event to online {name}: {np.percentile(values, q):.1f} ms")


if __name__ == "__main__":
    main()
