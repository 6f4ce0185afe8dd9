"""Step 3, split: by time into train / validation / test windows, never at random."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from skewless.models.configuration import Window, Windows


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def _in(frame: pd.DataFrame, window: Window) -> pd.DataFrame:
    ts = frame["event_timestamp"]
    inside = frame[(ts >= pd.Timestamp(window.start)) & (ts < pd.Timestamp(window.end))]
    return inside.reset_index(drop=True)  # as its own table: rows numbered from 0


def split(dataset: pd.DataFrame, windows: Windows) -> Split:
    parts = Split(
        _in(dataset, windows.train), _in(dataset, windows.validation), _in(dataset, windows.test)
    )
    for name in ("train", "validation", "test"):
        if getattr(parts, name).empty:
            raise ValueError(f"the {name} window holds no labelled rows")
    return parts
