"""One clock for everything that asks "what time is it": the service's feature-age (TTL)
checks, monitoring's default period, the CT controller and the stream processor.

- `replay`: the model configuration's `as_of`, fixed (a replayed data set, read as of its end);
- `wall`: the wall clock;
- `moving`: a replay that moves: `clock_start` when the wall clock read `clock_wall_start`,
  then `clock_speed` replay seconds per wall second. `skewless live` sets it for every process
  it starts, so that they all read the same moment without talking to each other.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from skewless.settings import Settings


def now(settings: Settings, as_of: datetime) -> datetime:
    """The moment, by the settings' clock (`as_of`: the model configuration's)."""
    if settings.serve_clock == "replay":
        return as_of
    if settings.serve_clock == "moving":
        start, wall = settings.clock_start, settings.clock_wall_start
        assert start is not None and wall is not None  # the settings refuse a moving clock without
        return start + timedelta(seconds=(time.time() - wall) * settings.clock_speed)
    return datetime.now(UTC)


def moving_clock(start: datetime, speed: float, wall_start: float | None = None) -> dict[str, str]:
    """The settings (as SKEWLESS_ variables) of a moving clock that stands at `start` now (or
    at the wall time `wall_start`)."""
    return {
        "SKEWLESS_SERVE_CLOCK": "moving",
        "SKEWLESS_CLOCK_START": start.astimezone(UTC).isoformat(),
        "SKEWLESS_CLOCK_SPEED": repr(float(speed)),
        "SKEWLESS_CLOCK_WALL_START": repr(time.time() if wall_start is None else wall_start),
    }
