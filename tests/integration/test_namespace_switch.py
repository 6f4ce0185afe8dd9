"""The way through a definition change: `apply --candidate` puts the changed definitions in a
namespace of their own that the serving champion does not read; materialize, train and gate
run there; `skewless switch` makes the candidate's namespace and model live in one step under
a stream of requests, with no failed request and no answer mixing one model with the other's
definitions; `switch --rollback` goes back the same way. Real Redis, real MLflow, the real
service, the real gate."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from loadtests.deploy import run_gate
from loadtests.promotion import switch, switch_back
from serving.process import ServiceProcess
from serving.schemas import rest_body
from skewless.features import namespaces
from skewless.features import store as feature_store
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER
from skewless.settings import Settings, get_settings
from tests.support.repos import copy_feature_repo
from training.config import load_pipeline_config
from training.pipeline import Pipeline

from .serving_setup import SMALL_PIPELINE, ServingWorld, Stream, build_world
from .test_deployment import gate_config

pytestmark = pytest.mark.integration

TTL = ("ttl=timedelta(hours=3)", "ttl=timedelta(hours=4)")
# The candidate is compared with the champion as usual; this test is about the switch, so any
# candidate near the champion's AUC is blessed.
CANDIDATE_PIPELINE = SMALL_PIPELINE.replace(
    "blessing: {", "blessing: {min_auc_gain_over_champion: -1.0, "
)


def _repo_copy(real_repo: Settings, folder: Path) -> Path:
    """The flights repository in a project of its own, its built tables linked."""
    repo = copy_feature_repo(folder / "repo")
    data = repo / "data"
    data.mkdir(exist_ok=True)
    shutil.copy(real_repo.data_dir / "tables.json", data / "tables.json")
    for table in real_repo.data_dir.glob("*.parquet"):
        (data / table.name).symlink_to(table)
    return repo


def _wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _served(answers: list[httpx.Response | Exception]) -> list[tuple[str, str]]:
    assert all(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers), [
        a if isinstance(a, Exception) else (a.status_code, a.text)
        for a in answers
        if isinstance(a, Exception) or a.status_code != 200
    ][:3]
    return [(a.json()["model_version"], a.json()["definitions"]) for a in answers]  # type: ignore[union-attr]


def _one_step(pairs: list[tuple[str, str]], old: tuple[str, str], new: tuple[str, str]) -> None:
    """Every answer is the old pair until the first new one, and the new one after it."""
    assert old in pairs and new in pairs, set(pairs)
    first = pairs.index(new)
    assert pairs[:first] == [old] * first
    assert set(pairs[first:]) == {new}, set(pairs[first:])


def test_candidate_namespace_trained_gated_and_switched_under_a_stream(
    real_repo: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo_copy(real_repo, tmp_path)
    (tmp_path / "world").mkdir()
    world = build_world(real_repo.model_copy(update={"repo_path": repo}), tmp_path / "world")
    try:
        _switch_and_back(world, repo, monkeypatch)
    finally:
        world.redis.stop(save=False)


def _switch_and_back(world: ServingWorld, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = world.settings
    live_project = feature_store.open_store(live).project
    body = rest_body(world.requests(1).iloc[0], world.schema)
    with world.service("switch") as service:
        before = httpx.post(service.url + "/v1/predict", json=body, timeout=10).json()
        old = (before["model_version"], before["definitions"])

        # The change, refused by apply, taken to a candidate namespace instead.
        path = repo / "feature_views.py"
        path.write_text(path.read_text().replace(*TTL, 1))
        for key, value in world.env().items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        assert CliRunner().invoke(app, ["apply"]).exit_code == 1
        applied = CliRunner().invoke(app, ["apply", "--candidate"])
        assert applied.exit_code == 0, applied.output
        get_settings.cache_clear()
        candidate_project = namespaces.load(live.state_dir).candidate
        assert candidate_project and candidate_project != live_project
        assert feature_store.open_store(live).project == live_project  # commands stay live

        # Materialize, train and gate in the candidate namespace; the service is untouched.
        candidate = live.model_copy(update={"namespace": "candidate"})
        store = feature_store.open_store(candidate)
        assert store.project == candidate_project
        feature_store.materialize(store, world.config.as_of)
        pipeline_yaml = world.folder / "candidate.yaml"
        pipeline_yaml.write_text(CANDIDATE_PIPELINE)
        result = Pipeline(
            candidate, load_pipeline_config(pipeline_yaml), progress=lambda _: None
        ).run()
        assert result.version is not None and CHALLENGER in result.aliases, result.verdict
        version = str(result.version)
        registry = ModelRegistry.of(live)
        assert registry.version(world.config.name, version).record.namespace == candidate_project
        gate = run_gate(candidate, version, gate_config(), out_dir=world.folder / "gate")
        assert gate.report.passed, gate.report
        assert httpx.post(service.url + "/v1/predict", json=body).json()["model_version"] == old[0]

        # The switch under a stream: one step for model and definitions, nothing failed.
        with Stream(service, body) as stream:
            time.sleep(0.5)
            asked = time.monotonic()
            move, now = switch(live, None, by="test", why="candidate passed its gate")
            assert (move.version, now.live, now.rollback) == (
                version,
                candidate_project,
                live_project,
            )
            _wait_for(lambda: any(_new_version(a, version) for a in stream.answers[-5:]))
            time.sleep(0.5)
        pairs = _served(stream.answers)
        new = next(p for p in pairs if p[0] == version)
        print(  # the figures: read with -s
            f"switch: {len(pairs)} answers, 0 failed, {pairs.count(old)} old, "
            f"{pairs.count(new)} new; first new answer {stream.first_seen(version) - asked:.2f} s "
            "after the switch was asked"
        )
        assert new[1] != old[1]  # the candidate's definitions are other definitions
        _one_step(pairs, old, new)
        assert feature_store.open_store(live).project == candidate_project  # commands follow

        # And back: the old namespace and the old champion, in one step too.
        with Stream(service, body) as stream:
            time.sleep(0.5)
            switch_back(live, by="test", why="rollback drill")
            _wait_for(lambda: any(_new_version(a, old[0]) for a in stream.answers[-5:]))
            time.sleep(0.5)
        _one_step(_served(stream.answers), new, old)
        assert feature_store.open_store(live).project == live_project

    # Forced into the live namespace instead, the change makes a service starting on it
    # refuse the champion, and the override serves it, saying so.
    forced = CliRunner().invoke(app, ["apply", "--allow-definition-skew"])
    assert forced.exit_code == 0 and "applied despite definition skew" in forced.output
    refusing = ServiceProcess(world.env(), log_path=world.folder / "refusing.log")
    try:
        refusing.start(until="/livez")
        _wait_for(lambda: "definition_skew" in httpx.get(refusing.url + "/readyz").text)
        ready = httpx.get(refusing.url + "/readyz", timeout=10)
        assert ready.status_code == 503, ready.text
        reason = ready.json()["reason"]
        assert f"definition_skew: version {old[0]} was trained on other definitions" in reason
        assert "weather_temp: view changed" in reason
        metrics = httpx.get(refusing.url + "/metrics", timeout=10).text
        assert "skewless_definition_skew_refusals_total 1.0" in metrics
    finally:
        refusing.stop()
    with world.service("allowing", definition_skew="allow") as allowing:
        ready = httpx.get(allowing.url + "/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert "allowed by SKEWLESS_DEFINITION_SKEW" in ready.json()["reason"]


def _new_version(answer: httpx.Response | Exception, version: str) -> bool:
    return isinstance(answer, httpx.Response) and answer.json().get("model_version") == version
