"""The one clock: a replay's fixed as_of, the wall, or a moving replay that every process
started with the same settings reads alike."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from skewless.clock import moving_clock, now
from skewless.settings import Settings

AS_OF = datetime(2013, 12, 30, 23, tzinfo=UTC)
START = datetime(2013, 12, 1, tzinfo=UTC)


def test_replay_is_fixed_and_wall_is_now() -> None:
    assert now(Settings(serve_clock="replay"), AS_OF) == AS_OF
    wall = now(Settings(serve_clock="wall"), AS_OF)
    assert abs(wall - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_moving_clock_moves_at_its_speed_for_every_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.time() - 10  # ten wall seconds ago
    for name, value in moving_clock(START, speed=600, wall_start=started).items():
        monkeypatch.setenv(name, value)
    first, second = Settings(), Settings()  # two processes reading the same environment
    moment = now(first, AS_OF)
    assert START + timedelta(seconds=5_900) < moment < START + timedelta(seconds=6_300)
    assert abs(now(second, AS_OF) - moment) < timedelta(seconds=60)


def test_a_moving_clock_without_its_start_is_refused() -> None:
    with pytest.raises(ValidationError, match="clock_start"):
        Settings(serve_clock="moving")
    with pytest.raises(ValidationError, match="time zone"):
        Settings(
            serve_clock="moving", clock_start=datetime(2013, 12, 1), clock_wall_start=time.time()
        )
