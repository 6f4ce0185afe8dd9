"""Does the feature repository apply cleanly, and does the feast CLI tell what exists?"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.settings import Settings
from tests.support.repos import copy_feature_repo, settings_for


def run_feast(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        feature_store.feast_command(settings, *args),
        env=feature_store.feast_environment(settings),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_plan_and_apply_into_an_empty_folder(tmp_path: Path) -> None:
    from feature_repo.tables.build import build_tables

    settings = settings_for(copy_feature_repo(tmp_path / "repo"), "sqlite", "unused")
    build_tables(settings.data_dir, 60, progress=lambda _: None)
    plan = run_feast(settings, "plan")
    assert "delay_model_v1" in plan
    run_feast(settings, "apply")
    assert "No changes to registry" in run_feast(settings, "apply")  # idempotent


def test_feature_views_and_services_are_listed_with_descriptions(real_repo: Settings) -> None:
    views = run_feast(real_repo, "feature-views", "list")
    for name in ("weather_hourly", "origin_departures_recent", "aircraft_departures_today"):
        assert name in views
    services = run_feast(real_repo, "feature-services", "list")
    assert "delay_model_v1" in services
    described = run_feast(real_repo, "feature-services", "describe", "delay_model_v1")
    assert "departure-delay model" in described


def test_every_feature_and_view_is_described_and_owned(real_repo: Settings) -> None:
    store = feature_store.open_store(real_repo)
    for view in store.list_feature_views():
        assert view.description and view.owner and view.tags, view.name
        undocumented = [f.name for f in view.features if not f.description]
        assert not undocumented, f"{view.name}: {undocumented}"
    for odfv in store.list_on_demand_feature_views():
        assert odfv.description and odfv.owner
        # Feast 0.67 refuses described on-demand outputs; the view description names each.
        for feature in odfv.features:
            assert feature.name in odfv.description


def test_service_schema_names_what_a_caller_must_send(real_repo: Settings) -> None:
    schema = service_schema(feature_store.open_store(real_repo), "delay_model_v1")
    assert set(schema.join_keys) == {"origin", "dest", "carrier", "tailnum"}
    assert set(schema.request_fields) == {"scheduled_departure", "requested_at", "distance"}
    assert len(schema.features) == len(set(schema.features)) == 41


@pytest.mark.parametrize("online_store", ["sqlite", "redis"])
def test_both_online_store_variants_parse(online_store: str, real_repo: Settings) -> None:
    settings = settings_for(real_repo.repo_path, online_store, "127.0.0.1:6379")
    config = feature_store.open_store(settings).config
    assert config.online_store.type == online_store
    # Both variants read offline through the ASOF plug-in (never the dask `file` store).
    assert config.offline_store.type == "skewless.offline.asof_store.AsofDuckDBOfflineStore"


def test_feast_ui_serves_the_repository_with_the_asof_store(real_repo: Settings) -> None:
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ui = subprocess.Popen(
        feature_store.feast_command(real_repo, "ui", "--host", "127.0.0.1", "--port", str(port)),
        env=feature_store.feast_environment(real_repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/projects-list.json") as r:
                    projects = r.read().decode()
                break
            except OSError:
                assert ui.poll() is None, (ui.stderr.read() if ui.stderr else "")[-3000:]
                assert time.monotonic() < deadline, "feast ui did not answer in 120 s"
                time.sleep(1)
        assert feature_store.open_store(real_repo).project in projects
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as page:
            assert page.status == 200
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_a_wrongly_typed_definition_is_named_by_feasts_own_check(tmp_path: Path) -> None:
    """skewless runs Feast's apply without its import-time type instrumentation (3 s less a
    command), and a failure again with it: the message names the argument, as `feast apply`
    would, not whatever fails deeper without the check."""
    repo = copy_feature_repo(tmp_path / "repo")
    views = repo / "feature_views.py"
    text = views.read_text()
    assert "ttl=timedelta(hours=3)" in text
    views.write_text(text.replace("ttl=timedelta(hours=3)", "ttl=3", 1))
    with pytest.raises(feature_store.FeatureRepoError) as refused:
        feature_store.apply(settings_for(repo, "sqlite", "unused"))
    message = str(refused.value)
    assert 'argument "ttl" (int) did not match' in message and "timedelta" in message, message
