"""The live path's throughput on the year's real events: publishing them into the event log
(Redis Streams), and one stream processor taking them into the tiles and the Redis online store.

    python -m benchmarks.stream_throughput [--redis 127.0.0.1:6379] [--days 366] [--batch 1000]
        [--writer direct|feast|both] [--no-offline]

In a scratch copy of the feature repository (its tables built, applied to a project of its own
on the Redis online store); the project's keys are removed at the end. Prints events/s for the
publish and for the processor (one process, one core), and the processor's split: reading and
parsing, the tiles' Lua script, the rows written. `--writer both` (the default) runs the year
twice in one sitting, each in a project of its own: rows through the project's direct writer
(skewless/online/redis_writer.py), then through Feast's `write_to_online_store`.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd

from feature_repo.tables.build import build_tables
from feature_repo.tables.events import entry_fields, replay_entries
from feature_repo.tables.raw import read_raw
from skewless.features import store as feature_store
from skewless.settings import Settings, home
from streaming.log import EventLog, redis_client
from streaming.processor import StreamProcessor
from streaming.tile_store import TileStore


def _repo(folder: Path) -> Path:
    repo = folder / "feature_repo"
    shutil.copytree(
        home() / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    for name in ("feature_store.yaml", "feature_store.redis.yaml"):
        path = repo / name
        text = path.read_text()
        project = text.split("project:", 1)[1].split()[0]
        path.write_text(
            text.replace(f"project: {project}", f"project: bench_{uuid.uuid4().hex[:8]}")
        )
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--days", type=int, default=366, help="Events of the year's first N days.")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--writer", choices=("direct", "feast", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="Print the processor's profile.")
    parser.add_argument("--sort", default="cumulative", help="The profile's order (pstats).")
    parser.add_argument(
        "--no-offline", action="store_true", help="Rows online only (no offline parts)."
    )
    args = parser.parse_args()
    for writer in ("direct", "feast") if args.writer == "both" else (args.writer,):
        _run(args, writer)


def _run(args: argparse.Namespace, writer: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        repo = _repo(folder)
        settings = Settings(
            repo_path=repo,
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
            until = pd.Timestamp("2013-01-01", tz="UTC") + pd.Timedelta(days=args.days)
            entries = entries[entries["event_time"] < until]
            kinds = entries["kind"].value_counts().to_dict()
            rows = [entry_fields(r) for r in entries.to_dict("records")]

            started = time.perf_counter()
            published = len(log.publish(rows))
            publish_seconds = time.perf_counter() - started

            processor = StreamProcessor(
                store, log, TileStore(log.client, project), offline=not args.no_offline
            )
            if writer == "feast":
                processor.writers = dict.fromkeys(processor.writers)
            assert all(processor.writers.values()) == (writer == "direct")
            profile = cProfile.Profile() if args.profile else None
            started = time.perf_counter()
            if profile:
                profile.enable()
            progress = processor.run_until_idle(count=args.batch)
            if profile:
                profile.disable()
            process_seconds = time.perf_counter() - started
        finally:
            store.teardown()
            for key in log.client.scan_iter(f"skewless:{project}:*"):
                log.client.delete(key)
    print(f"== rows written by the {writer} writer")
    print(f"events: {published:,} ({', '.join(f'{k} {v:,}' for k, v in kinds.items())})")
    print(f"publish: {publish_seconds:.1f} s, {published / publish_seconds:,.0f} events/s")
    print(
        f"processor: {process_seconds:.1f} s, {progress.read / process_seconds:,.0f} events/s "
        f"(departures applied {progress.applied:,}, rows written {progress.rows_written:,}, "
        f"batch {args.batch}, offline parts {'no' if args.no_offline else 'yes'})"
    )
    if profile:
        pstats.Stats(profile).sort_stats(args.sort).print_stats(25)


if __name__ == "__main__":
    main()
