"""The whole level-2 loop on live data, short: `run_live` publishes an hour of real events as
a moving clock passes them (1,200x), the stream processor and the prediction service run on
that clock in child processes, each real request of those hours is sent at its moment, the
outcomes arrive as events, and the CT controller ticks on the replay clock. Requests are
answered with the streamed features (origin, carrier, route windows, weather) fresh: nothing
but the stream writes them (the other views are materialized as of the start), so without it
every answer would miss them. The tick is recorded at a replay time.

A private Redis, the serving world's registry copied (its champion), the repository copied in
the same Feast project with its tables linked: the stream's parts and rows stay in this test's
own folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from feature_repo.tables.tiles import TILED
from loadtests.live import run_live
from monitoring.ct.decisions import decisions
from skewless.features import store as feature_store
from skewless.settings import Settings
from tests.support.redis_server import RedisServer
from tests.support.repos import copy_feature_repo

from .serving_setup import ServingWorld

pytestmark = pytest.mark.integration

START = datetime(2013, 12, 30, 13, tzinfo=UTC)  # 8 am in New York: ~100 departures an hour
STREAMED_VIEWS = {*TILED, "weather_hourly"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNTIL = START + timedelta(hours=1)


@pytest.fixture
def live_settings(serving_world: ServingWorld, tmp_path: Path) -> Iterator[Settings]:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    try:
        project = feature_store.yaml_project(serving_world.settings)
        repo = copy_feature_repo(tmp_path / "repo", project=project)
        (repo / "data").mkdir(exist_ok=True)
        real_data = serving_world.settings.data_dir
        shutil.copy(real_data / "tables.json", repo / "data" / "tables.json")
        for table in real_data.glob("*.parquet"):
            (repo / "data" / table.name).symlink_to(table)
        shutil.copytree(serving_world.settings.state_dir, tmp_path / "state")
        settings = serving_world.settings.model_copy(
            update={
                "repo_path": repo,
                "redis_connection": server.connection,
                "event_log": server.connection,
                "state_dir": tmp_path / "state",
            }
        )
        feature_store.apply(settings)
        # Online, only what the stream does not write (profiles, the aircraft's day): the
        # streamed views have no row until the stream writes one.
        store = feature_store.open_store(settings)
        others = [
            v.name for v in store.list_feature_views() if v.online and v.name not in STREAMED_VIEWS
        ]
        store.materialize(start_date=EPOCH, end_date=START, feature_views=others)
        yield settings
    finally:
        server.stop(save=False)


def test_a_short_live_replay_serves_fresh_features_and_the_controller_ticks(
    live_settings: Settings, serving_world: ServingWorld, tmp_path: Path
) -> None:
    report = run_live(
        live_settings,
        serving_world.config,
        start=START,
        until=UNTIL,
        speed=1200,
        tick_every=timedelta(minutes=30),
        out_dir=tmp_path / "live",
        say=lambda _: None,
        warmup_seconds=8,
    )
    assert report.history_events > 10_000  # the week before
    assert report.events > 100  # departures, weather and outcomes of a morning hour
    assert report.requests > 50
    assert report.failed == 0 and report.answered == report.requests
    # Fresh from the stream: without it every answer would miss the streamed features.
    assert report.stale_streamed <= report.answered // 100, report
    client = redis.Redis.from_url(f"redis://{live_settings.event_log}")
    project = feature_store.yaml_project(live_settings)
    (group,) = client.xinfo_groups(f"skewless:{project}:events")
    assert group["pending"] == 0 and group["lag"] == 0  # every event, outcomes too, taken in

    ticked = decisions(live_settings)
    assert ticked, report.ticks
    moment = datetime.fromisoformat(ticked[0].at)
    assert START < moment < UNTIL + timedelta(hours=1), ticked[0]  # on the replay clock
