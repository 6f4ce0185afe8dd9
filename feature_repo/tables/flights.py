"""Flight requests (the entity rows and labels) and actual departures (the event stream).

Times in the raw file are local New York times; `time_hour` is the scheduled hour in UTC,
so the scheduled departure in UTC is `time_hour + minute` and no time-zone arithmetic on
local clock times is needed.

Cancelled flights (no departure time, 8,255 of 336,776) stay in the request table, because a
caller asks for them before anybody knows they will be cancelled, but their label is null:
"departed 15 minutes late or more" is undefined for a flight that never departed. Training
drops rows with a null label. They never appear in the departure stream.
"""

from __future__ import annotations

import pandas as pd

LOCAL_TZ = "America/New_York"
LATE_MINUTES = 15


def scheduled_departure_utc(flights: pd.DataFrame) -> pd.Series:
    return flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="min")


def flight_ids(flights: pd.DataFrame) -> pd.Series:
    date = (
        flights["year"].astype(str)
        + "-"
        + flights["month"].astype(str).str.zfill(2)
        + "-"
        + flights["day"].astype(str).str.zfill(2)
    )
    return date + "-" + flights["carrier"] + flights["flight"].astype(str) + "-" + flights["origin"]


def build_flight_requests(flights: pd.DataFrame, lead_time: pd.Timedelta) -> pd.DataFrame:
    # (year, month, day) in the id are the local scheduled date, as in the raw file.
    """One row per scheduled flight, stamped at the moment the prediction is asked for.

    Only what is known at that moment, plus the label; no other outcome column (whether the
    flight was cancelled is future information too: the null label already says it).
    """
    early = flights["dep_delay"] < -lead_time / pd.Timedelta(minutes=1)
    if early.any():
        raise ValueError(
            f"lead time {lead_time} is too short: {int(early.sum())} flights departed before "
            f"their prediction would be asked for (earliest {flights['dep_delay'].min():.0f} min)"
        )
    scheduled = scheduled_departure_utc(flights)
    label = (flights["dep_delay"] >= LATE_MINUTES).astype("Int64")
    label[flights["dep_delay"].isna()] = pd.NA
    requests = pd.DataFrame(
        {
            "flight_id": flight_ids(flights).astype("string"),
            "event_timestamp": scheduled - lead_time,
            "requested_at": scheduled - lead_time,
            "scheduled_departure": scheduled,
            "carrier": flights["carrier"].astype("string"),
            "tailnum": flights["tailnum"].astype("string"),
            "origin": flights["origin"].astype("string"),
            "dest": flights["dest"].astype("string"),
            "distance": flights["distance"].astype("float64"),
            "departed_late": label,
        }
    )
    if requests["flight_id"].duplicated().any():
        raise ValueError("flight_id is not unique: the raw flights file has duplicate flights")
    return requests.sort_values(["event_timestamp", "flight_id"], ignore_index=True)


def build_departures(flights: pd.DataFrame) -> pd.DataFrame:
    """Flights that actually departed, with the moment they did and whether they were late."""
    departed = flights[flights["dep_delay"].notna()]
    departed_at = scheduled_departure_utc(departed) + pd.to_timedelta(
        departed["dep_delay"], unit="min"
    )
    departures = pd.DataFrame(
        {
            "carrier": departed["carrier"].astype("string"),
            "tailnum": departed["tailnum"].astype("string"),
            "origin": departed["origin"].astype("string"),
            "dest": departed["dest"].astype("string"),
            "departed_at": departed_at,
            "dep_delay": departed["dep_delay"].astype("float64"),
            "late": (departed["dep_delay"] >= LATE_MINUTES).astype("int64"),
        }
    )
    return departures.sort_values("departed_at", kind="mergesort", ignore_index=True)


def build_flight_outcomes(flights: pd.DataFrame) -> pd.DataFrame:
    """The label of each flight, stamped at the moment it became known: the departure when the
    flight left less than 15 minutes late; 15 minutes after the scheduled departure when it had
    not left by then (it is late, whenever it leaves). Cancelled flights have no outcome row:
    their label is undefined, as in the request table."""
    departed = flights[flights["dep_delay"].notna()]
    scheduled = scheduled_departure_utc(departed)
    late = departed["dep_delay"] >= LATE_MINUTES
    known_at = scheduled + pd.to_timedelta(
        departed["dep_delay"].where(~late, LATE_MINUTES), unit="min"
    )
    outcomes = pd.DataFrame(
        {
            "flight_id": flight_ids(departed).astype("string"),
            "event_timestamp": known_at,
            "outcome_known_at": known_at,
            "departed_late": late.astype("int64"),
        }
    )
    return outcomes.sort_values(["event_timestamp", "flight_id"], ignore_index=True)
