"""Real-time aggregates, each computed only from departures that had happened before the
row's timestamp.

Rolling-window rates are snapshots on a fixed grid (every 15 minutes, every hour): Feast's
point-in-time join on the DuckDB store is a range join followed by a "latest row" pick, so its
cost grows with the rows per key inside the TTL. A row at every departure (hundreds per key
and day) made whole-year retrieval run out of memory; a grid with a TTL of two intervals
bounds it at two candidate rows per request.

The same-day aircraft features are sparse (a few departures per aircraft and day) and stay
event rows: a departure is *known* one second after it happens (`KNOWN_AFTER`). All raw times
are whole minutes, so a request at minute m sees exactly the departures strictly before m.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .flights import LOCAL_TZ
from .tiles import TiledAggregate, tile_index, window_values

KNOWN_AFTER = pd.Timedelta(seconds=1)


def rolling_late_rate(
    departures: pd.DataFrame,
    keys: list[str],
    window: pd.Timedelta,
    every: pd.Timedelta,
    prefix: str,
) -> pd.DataFrame:
    """Departures, late-departure rate and mean delay per key over a trailing window, as
    snapshots.

    A row stamped at grid time g (every `every`) holds the departures in [g - window, g):
    strictly before g, so a request at or after g only ever sees the past. Columns: keys,
    event_timestamp, `{prefix}_departures`, `{prefix}_late_rate` and `{prefix}_mean_delay`
    (minutes; both null when there were none).
    """
    if window % every != pd.Timedelta(0):
        raise ValueError(f"window {window} is not a multiple of the snapshot interval {every}")
    columns = [*keys, "departed_at", "late", "dep_delay"]
    known = departures.loc[departures[keys].notna().all(axis=1), columns]
    start = known["departed_at"].min().floor(every)
    grid = pd.date_range(start, known["departed_at"].max().ceil(every) + window, freq=every)
    key_frame = known[keys].drop_duplicates().sort_values(keys, ignore_index=True)
    key_codes = known[keys].merge(key_frame.reset_index(), on=keys, how="left")["index"]
    bucket = tile_index(known["departed_at"], every) - tile_index(pd.DatetimeIndex([start]), every)

    shape = (len(key_frame), len(grid))
    counts, lates = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    delays = np.zeros(shape, dtype=np.float64)
    np.add.at(counts, (key_codes.to_numpy(), bucket), 1)
    np.add.at(lates, (key_codes.to_numpy(), bucket), known["late"].to_numpy())
    np.add.at(delays, (key_codes.to_numpy(), bucket), known["dep_delay"].to_numpy())
    # before[:, j] = events in buckets < j = departures strictly before grid[j]
    steps = window // every
    count_window = _trailing_sum(counts, steps)
    late_window = _trailing_sum(lates, steps)
    delay_window = _trailing_sum(delays, steps)

    table = key_frame.loc[key_frame.index.repeat(len(grid))].reset_index(drop=True)
    table["event_timestamp"] = pd.DatetimeIndex(
        np.tile(grid.tz_convert(None), len(key_frame)), tz="UTC"
    )
    departures_, late_rate, mean_delay = window_values(
        count_window.ravel(), late_window.ravel(), delay_window.ravel()
    )
    table[f"{prefix}_departures"] = departures_
    table[f"{prefix}_late_rate"] = late_rate
    table[f"{prefix}_mean_delay"] = mean_delay
    return table


def tiled_table(departures: pd.DataFrame, aggregate: TiledAggregate) -> pd.DataFrame:
    """The batch path of one tiled aggregate (tiles.py): its windows' snapshots, one table."""
    windows = {w.prefix: w.length for w in aggregate.windows}
    return rolling_windows(departures, list(aggregate.keys), windows, aggregate.tile)


def rolling_windows(
    departures: pd.DataFrame,
    keys: list[str],
    windows: dict[str, pd.Timedelta],
    every: pd.Timedelta,
) -> pd.DataFrame:
    """Several windows on one snapshot grid, in one table (one view, one join)."""
    tables = [
        rolling_late_rate(departures, keys, window, every, prefix)
        for prefix, window in windows.items()
    ]
    if len(tables) == 1:
        return tables[0]
    merged = tables[0]
    for table in tables[1:]:
        merged = merged.merge(table, on=[*keys, "event_timestamp"], how="outer")
    for column in merged.columns:
        if column.endswith("_departures"):
            merged[column] = merged[column].fillna(0).astype("int64")
    return merged.sort_values([*keys, "event_timestamp"], ignore_index=True)


def _trailing_sum(per_bucket: np.ndarray, steps: int) -> np.ndarray:
    """out[:, j] = sum of per_bucket[:, j - steps : j] (buckets before j, at most `steps`)."""
    before = np.zeros((per_bucket.shape[0], per_bucket.shape[1] + 1), dtype=per_bucket.dtype)
    np.cumsum(per_bucket, axis=1, out=before[:, 1:])
    lagged = np.zeros_like(before)
    lagged[:, steps:] = before[:, :-steps]
    return (before - lagged)[:, :-1]


def same_day_last_delay(departures: pd.DataFrame, key: str, prefix: str) -> pd.DataFrame:
    """Per key, the most recent departure delay and the departure count of the local day.

    At local midnight after each day with departures a reset row (no delay, zero departures)
    is emitted, so the value never carries over into the next day. Two departures in the same
    minute count both; the larger delay is reported.
    """
    known = departures.loc[departures[key].notna(), [key, "departed_at", "dep_delay"]]
    local_day = known["departed_at"].dt.tz_convert(LOCAL_TZ).dt.normalize()
    seen = known.assign(
        event_timestamp=known["departed_at"] + KNOWN_AFTER, day=local_day, d_count=1
    )
    days = seen[[key, "day"]].drop_duplicates()
    next_midnight = (days["day"].dt.tz_localize(None) + pd.Timedelta(days=1)).dt.tz_localize(
        LOCAL_TZ
    )
    resets = days.assign(
        event_timestamp=next_midnight.dt.tz_convert("UTC"),
        day=next_midnight,
        dep_delay=float("nan"),
        d_count=0,
    )
    events = pd.concat([seen, resets], ignore_index=True)
    # Resets sort before departures stamped at the same instant; ties break on the delay.
    events["is_departure"] = events["d_count"]
    events = events.sort_values(
        [key, "event_timestamp", "is_departure", "dep_delay"],
        kind="mergesort",
        ignore_index=True,
        na_position="first",
    )
    events["count"] = events.groupby([key, "day"], sort=False)["d_count"].cumsum()
    events = events.drop_duplicates([key, "event_timestamp"], keep="last")
    return pd.DataFrame(
        {
            key: events[key],
            "event_timestamp": events["event_timestamp"],
            f"{prefix}_departures_today": events["count"].astype("int64"),
            f"{prefix}_last_delay_today": events["dep_delay"].astype("float64"),
        }
    ).reset_index(drop=True)
