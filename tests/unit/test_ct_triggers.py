"""Does each retraining trigger fire on evidence that should fire it, and not on evidence
just below its threshold? Does the schedule read cron as cron does?"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.ct import triggers
from monitoring.ct.config import CTConfig, NewData
from monitoring.ct.cron import Cron, CronError
from skewless.strict_yaml import ConfigError, validate_as

NOW = datetime(2013, 9, 1, 4, 0, tzinfo=UTC)
BASE = triggers.Evidence(
    now=NOW, last_tick=NOW - timedelta(days=1), champion="1", champion_test_auc=0.78
)
CONFIG = CTConfig(schedule="0 3 1 * *", new_data=NewData(min_labelled=1000))


def test_on_demand_fires_when_asked() -> None:
    assert not triggers.on_demand(BASE).fired
    assert triggers.on_demand(replace(BASE, requests=["a storm"])).fired


def test_the_schedule_fires_once_its_moment_has_passed_since_the_last_tick() -> None:
    assert triggers.schedule(BASE, CONFIG).fired  # 03:00 on the 1st lies in (Aug 31 04:00, now]
    early = replace(BASE, now=NOW.replace(hour=2, minute=59))
    assert not triggers.schedule(early, CONFIG).fired
    after = replace(BASE, last_tick=NOW.replace(hour=3, minute=0))  # already seen at 03:00
    assert not triggers.schedule(after, CONFIG).fired
    assert not triggers.schedule(replace(BASE, last_tick=None), CONFIG).fired  # counts from now


def test_new_data_fires_at_its_count_and_not_one_below() -> None:
    assert triggers.new_data(replace(BASE, labelled_since_training=1000), CONFIG).fired
    assert not triggers.new_data(replace(BASE, labelled_since_training=999), CONFIG).fired
    assert not triggers.new_data(replace(BASE, labelled_since_training=10**6), CTConfig()).fired


def test_performance_fires_below_the_floor_and_not_just_above_it() -> None:
    cfg = CONFIG.performance
    assert cfg is not None
    floor = 0.78 - cfg.auc_drop
    enough = replace(BASE, recent_labelled=cfg.min_labelled)
    assert triggers.performance(replace(enough, recent_auc=floor - 0.001), CONFIG).fired
    assert not triggers.performance(replace(enough, recent_auc=floor + 0.001), CONFIG).fired
    few = replace(BASE, recent_labelled=cfg.min_labelled - 1, recent_auc=0.5)
    assert not triggers.performance(few, CONFIG).fired  # too few labels for a verdict


def test_drift_fires_at_its_threshold_and_not_just_below() -> None:
    cfg = CONFIG.drift
    assert cfg is not None
    at = replace(BASE, drifted_importance=cfg.drifted_importance, drifted=["origin_3h_late_rate"])
    assert triggers.drift(at, CONFIG).fired
    below = replace(at, drifted_importance=cfg.drifted_importance - 0.01)
    assert not triggers.drift(below, CONFIG).fired
    assert not triggers.drift(BASE, CONFIG).fired  # nothing served: no evidence


def test_cron_fields_as_cron_reads_them() -> None:
    weekdays = Cron.parse("*/15 9-17 * * 1-5")
    assert weekdays.matches(datetime(2013, 9, 2, 9, 45, tzinfo=UTC))  # a Monday
    assert not weekdays.matches(datetime(2013, 9, 1, 9, 45, tzinfo=UTC))  # a Sunday
    assert not weekdays.matches(datetime(2013, 9, 2, 9, 50, tzinfo=UTC))
    sunday = Cron.parse("0 0 * * 7")
    assert sunday.matches(datetime(2013, 9, 1, 0, 0, tzinfo=UTC))
    either = Cron.parse("0 0 13 * 5")  # the 13th, or any Friday (cron's rule)
    assert either.matches(datetime(2013, 9, 13, tzinfo=UTC))
    assert either.matches(datetime(2013, 9, 6, tzinfo=UTC))
    with pytest.raises(CronError):
        Cron.parse("61 * * * *")
    with pytest.raises(ConfigError, match="ct.schedule"):
        validate_as(CTConfig, {"schedule": "every monday"}, "model.yaml", "ct")


def test_cron_restriction_is_read_from_the_star_and_a_bare_step_is_refused() -> None:
    every_day = Cron.parse("0 0 1 * 0-6")  # day of week covers all, but is not `*`: either
    assert every_day.matches(datetime(2013, 9, 3, tzinfo=UTC))
    odd_days = Cron.parse("0 0 */2 * 1")  # `*`-led day of month: both must hold
    assert odd_days.matches(datetime(2013, 9, 9, tzinfo=UTC))  # the 9th, a Monday
    assert not odd_days.matches(datetime(2013, 9, 2, tzinfo=UTC))  # a Monday, an even day
    with pytest.raises(CronError):
        Cron.parse("5/10 * * * *")
    from datetime import timezone

    new_york = timezone(timedelta(hours=-4))
    assert Cron.parse("0 3 * * *").matches(datetime(2013, 9, 1, 23, 0, tzinfo=new_york))


def test_the_cooldown_doubles_after_each_refused_retrain_and_resets_on_an_adopted_one() -> None:
    day = timedelta(days=1)
    assert triggers.ready_at([], 72) is None
    adopted = [(NOW, True)]
    assert triggers.ready_at(adopted, 72) == NOW + 3 * day
    refused = [(NOW - 9 * day, True), (NOW - 3 * day, False), (NOW, False)]
    assert triggers.ready_at(refused, 72) == NOW + 12 * day  # two refused in a row: x4
    back = [*refused, (NOW + 12 * day, True)]
    assert triggers.ready_at(back, 72) == NOW + 15 * day  # adopted: the plain cooldown again
    many = [(NOW, False)] * 10
    assert triggers.ready_at(many, 1) == NOW + timedelta(hours=triggers.MAX_BACKOFF)
    assert triggers.ready_at(many, 0) == NOW  # no cooldown: schedules are not held back
