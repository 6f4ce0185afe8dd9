"""The closed loop, live: a running service answers a steady stream; outcomes that disagree
with the model arrive (planted in the outcome table of a repository of this test's own); one
controller tick sees the champion's AUC fall, retrains as of now, and sends the new version
through the real gate, the canary on the live service, and promotion. The stream sees no
failed request, and the new version within the poll interval. A candidate that fails the gate
leaves the champion serving, and the decision record says which check failed.

Every part is real: Feast, Redis, MLflow, the pipeline and `skewless deploy` in subprocesses,
locust in the gate. The load is short (seconds); the full-length gate is a command.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from monitoring.ct.config import CTConfig, Degradation
from monitoring.ct.controller import tick
from monitoring.ct.decisions import Decision, decisions
from monitoring.ct.requests import request_retrain
from serving.process import ServiceProcess
from serving.schemas import rest_body
from skewless.features import store as feature_store
from skewless.models.configuration import load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings
from tests.support.repos import CHECKOUT, copy_feature_repo
from training.config import load_pipeline_config
from training.pipeline import Pipeline

from .serving_setup import ServingWorld

AS_OF = datetime(2013, 12, 30, 23, 0, tzinfo=UTC)  # the service's clock (serve_clock replay)

# The champion learns March; a retrain as of the end of December learns its last fortnight.
MODEL = """
name: departure_delay
feature_service: delay_model_v1
entity_source: flight_requests
entity_id: flight_id
label: departed_late
outcomes: {feature_view: flight_outcomes, label: departed_late, known_at: outcome_known_at}
segments: [origin]
as_of: "2013-12-30T23:00:00Z"
monitoring: {window: day, skew_sample: 0}
pipeline:
  windows:
    train: {start: "2013-03-01T00:00:00Z", end: "2013-03-15T00:00:00Z"}
    validation: {start: "2013-03-15T00:00:00Z", end: "2013-03-22T00:00:00Z"}
    test: {start: "2013-03-22T00:00:00Z", end: "2013-03-29T00:00:00Z"}
  rolling: {train_days: 14, validation_days: 7, test_days: 7}
  baseline_by: [carrier]
  validation: {max_out_of_range_share: 1.0, max_null_increase: 1.0}
  training: {search_budget: 1, max_rounds: 200, early_stopping_rounds: 20}
  blessing: {latency_budget_ms_p99: 50, infra_sample_rows: 50}
"""

GATE = {
    "golden": {"requests": 10},
    "load": {"protocol": "rest", "rate": 40, "seconds": 3, "unknown_entity_share": 0.0},
    "budgets": {
        "server": {"p50_ms": 10, "p95_ms": 20, "p99_ms": 25},
        "client": {"p50_ms": 200, "p95_ms": 400, "p99_ms": 800},
        "max_error_ratio": 0.01,
        "min_rate_ratio": 0.8,
    },
    "skew": {"sample": 50},
}
# The same gate with a server budget no service meets: the candidate fails at the gate.
IMPOSSIBLE_SERVER = {"p50_ms": 0.001, "p95_ms": 20, "p99_ms": 25}
IMPOSSIBLE_GATE = {**GATE, "budgets": {**GATE["budgets"], "server": IMPOSSIBLE_SERVER}}
CANARY = {
    "share": 0.5,
    "seconds": 4,
    "thresholds": {
        # March's model and December's differ on purpose: the loop is judged here, not
        # the canary's thresholds (tests/integration/test_deployment.py judges those).
        "max_error_ratio": 0.01,
        "max_error_ratio_increase": 0.01,
        "max_p99_ratio": 10.0,
        "max_score_ks": 1.0,
        "min_predictions": 20,
    },
}


@dataclass
class LoopWorld:
    settings: Settings
    model_file: Path
    folder: Path
    env: dict[str, str]
    rows: pd.DataFrame  # real recent requests the stream cycles through
    outcomes: Path  # the outcome view's table, in this test's own repository

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.settings.state_dir)

    def champion(self) -> str:
        found = self.registry().by_alias("departure_delay", CHAMPION)
        assert found is not None
        return str(found.version)


@pytest.fixture(scope="module")
def loop_world(serving_world: ServingWorld, tmp_path_factory: pytest.TempPathFactory) -> LoopWorld:
    """A copy of the serving world's repository (same Feast project, so the service reads the
    features already materialized in its Redis), whose outcome table this test may change; a
    state of its own with champion v1 (March)."""
    folder = tmp_path_factory.mktemp("ct-loop")
    project = feature_store.open_store(serving_world.settings).project
    repo = copy_feature_repo(folder / "repo", project=project)
    shutil.copytree(
        serving_world.settings.data_dir, repo / "data", ignore=shutil.ignore_patterns("*.db")
    )
    model_file = folder / "model.yaml"
    model_file.write_text(MODEL)
    settings = serving_world.settings.model_copy(
        update={
            "repo_path": repo,
            "state_dir": folder / "state",
            "model_file": model_file,
            "prediction_log": folder / "prediction_log",
        }
    )
    feature_store.apply(settings)
    result = Pipeline(settings, load_pipeline_config(model_file), progress=lambda _: None).run()
    assert result.version is not None and CHAMPION in result.aliases, result.verdict
    store = feature_store.open_store(settings)
    rows = feature_store.recent_entity_rows(
        store, load_model_config(model_file), serving_world.schema, 400
    )
    env = {
        **serving_world.env(),
        "SKEWLESS_REPO_PATH": str(repo),
        "SKEWLESS_STATE_DIR": str(settings.state_dir),
        "SKEWLESS_MODEL_FILE": str(model_file),
        "SKEWLESS_PREDICTION_LOG": str(settings.prediction_log),
        "PYTHONPATH": str(CHECKOUT),
        # A machine busy training, gating and running locust may delay a Redis reply past the
        # 100 ms default; the stream must see the loop, not this machine's load.
        "SKEWLESS_REDIS_TIMEOUT_MS": "1000",
    }
    return LoopWorld(
        settings,
        model_file,
        folder,
        env,
        rows,
        feature_store.file_source_path(store, "flight_outcomes"),
    )


@pytest.fixture(scope="module")
def service(loop_world: LoopWorld) -> Iterator[str]:
    running = ServiceProcess(loop_world.env, loop_world.folder / "service.log").start()
    try:
        yield running.url
    finally:
        running.stop()


@dataclass
class Stream:
    """A steady stream of real requests, as a client would send them: one every `period`."""

    url: str
    world: LoopWorld
    prefix: str
    period: float = 0.03
    answers: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Stream:
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def _send(self) -> None:
        from skewless.features.service import service_schema

        schema = service_schema(feature_store.open_store(self.world.settings), "delay_model_v1")
        rows = self.world.rows.to_dict("records")
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self.stop.is_set():
                body = rest_body(rows[n % len(rows)], schema, request_id=f"{self.prefix}-{n}")
                sent = time.time()
                try:
                    response = client.post(self.url + "/v1/predict", json=body)
                    answer = {
                        "status": response.status_code,
                        "at": sent,
                        "id": body["request_id"],
                        **(response.json() if response.status_code == 200 else {}),
                    }
                except httpx.HTTPError as exc:
                    answer = {"status": f"{type(exc).__name__}: {exc}", "at": sent}
                self.answers.append(answer)
                n += 1
                self.stop.wait(self.period)

    def wait_for(self, answered: int) -> None:
        deadline = time.monotonic() + 60
        while sum(a["status"] == 200 for a in self.answers) < answered:
            assert time.monotonic() < deadline, self.answers[-3:]
            time.sleep(0.1)


def _plant_contradicting_outcomes(world: LoopWorld, answers: list[dict[str, Any]]) -> int:
    """Outcomes for the stream's answered requests that disagree with what was served (late
    where the model said unlikely, on time where it said likely), known an hour after the
    requests: the model's recent AUC collapses."""
    served = [a for a in answers if a["status"] == 200]
    scores = np.array([a["probability"] for a in served])
    late = (scores < np.median(scores)).astype("int64")
    known = pd.Timestamp(AS_OF + timedelta(minutes=30))
    planted = pd.DataFrame(
        {
            "flight_id": pd.array([a["id"] for a in served], dtype="string"),
            "event_timestamp": known,
            "outcome_known_at": known,
            "departed_late": late,
        }
    )
    table = pd.read_parquet(world.outcomes)
    merged = pd.concat([table, planted.astype(table.dtypes.to_dict())], ignore_index=True)
    merged.to_parquet(world.outcomes.with_suffix(".tmp"))
    world.outcomes.with_suffix(".tmp").replace(world.outcomes)
    return len(planted)


def _ct(world: LoopWorld, url: str, gate: dict[str, Any], name: str) -> CTConfig:
    (world.folder / f"{name}.yaml").write_text(yaml.safe_dump(gate))
    (world.folder / "canary.yaml").write_text(yaml.safe_dump(CANARY))
    return CTConfig(
        performance=Degradation(last_labelled=500, auc_drop=0.03, min_labelled=100),
        drift=None,
        lookback_days=1,
        cooldown_hours=0,
        deploy_url=url,
        gate_config=f"{name}.yaml",  # relative: read beside the model configuration
        canary_config=str(world.folder / "canary.yaml"),
    )


def _tick(world: LoopWorld, ct: CTConfig, now: datetime) -> Decision:
    # the canary waits on the live service's poll interval, a serving setting its child
    # `skewless deploy` reads from the environment it inherits
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKEWLESS_MODEL_POLL_SECONDS", "0.3")
        return tick(world.settings, load_model_config(world.model_file), ct, now)


def _served_version(url: str) -> str:
    return str(httpx.get(url + "/readyz", timeout=5).json()["model_version"])


def test_a_candidate_that_fails_the_gate_leaves_the_champion_and_says_why(
    loop_world: LoopWorld, service: str
) -> None:
    before = loop_world.champion()
    request_retrain(loop_world.settings, "asked by the on-call")
    decision = _tick(
        loop_world,
        _ct(loop_world, service, IMPOSSIBLE_GATE, "impossible-gate"),
        AS_OF + timedelta(minutes=40),
    )
    assert decision.action == "retrain" and "asked by the on-call" in decision.reason
    outcome = decision.outcome
    assert outcome is not None
    assert outcome.train_exit == 0 and outcome.deploy_exit == 1, outcome
    candidate = outcome.version
    assert candidate is not None and candidate != before
    assert outcome.champion_before == outcome.champion_after == before
    assert loop_world.champion() == before and _served_version(service) == before
    # The record names the failed check and its figure, not just "deploy failed".
    assert outcome.release is not None
    assert outcome.release.startswith("the gate failed (server p50"), outcome.release
    assert "0.001" in outcome.release
    recorded = decisions(loop_world.settings)[-1].outcome
    assert recorded is not None and recorded.release == outcome.release
    assert "the champion stays" in recorded.result
    tags = loop_world.registry().version("departure_delay", candidate).tags
    assert tags["gate.status"] == "failed"


def test_planted_degradation_is_retrained_gated_canaried_and_promoted_under_a_live_stream(
    loop_world: LoopWorld, service: str
) -> None:
    before = loop_world.champion()
    assert _served_version(service) == before
    poll = float(loop_world.env["SKEWLESS_MODEL_POLL_SECONDS"])
    with Stream(service, loop_world, prefix="live") as stream:
        stream.wait_for(300)
        planted = _plant_contradicting_outcomes(loop_world, list(stream.answers))
        time.sleep(1.0)  # the prediction log's flush (0.2 s) has written them
        decision = _tick(
            loop_world, _ct(loop_world, service, GATE, "gate"), AS_OF + timedelta(hours=1)
        )
        time.sleep(2 * poll + 1)  # what the stream sees after the promotion
    assert planted >= 300
    performance = next(v for v in decision.verdicts if v.trigger == "performance")
    assert performance.fired, performance
    assert performance.figures["recent_auc"] < 0.5  # the planted outcomes, seen
    assert decision.action == "retrain"
    outcome = decision.outcome
    assert outcome is not None
    new = outcome.version
    assert outcome.champion_after == new != before, outcome
    assert "promoted through gate and canary" in outcome.result

    answers = stream.answers
    failed = [a for a in answers if a["status"] != 200]
    assert not failed, failed[:5]
    moved = loop_world.registry().champion_history("departure_delay")[-1]
    assert (moved.version, moved.action) == (new, "promote")
    promoted_at = datetime.fromisoformat(moved.at).timestamp()
    assert answers[-1]["at"] > promoted_at + 2 * poll, "the stream stopped too early"
    last_old = max(a["at"] for a in answers if a["model_version"] != new)
    # The last answer of the old champion came within a poll of the promotion, plus the poll's
    # own registry reads on a machine busy with the release (the new champion is already
    # loaded as the canary's challenger: swapped in, not read again).
    assert last_old - promoted_at < 2 * poll + 1, (last_old - promoted_at, poll)
    during = {a["model_version"] for a in answers if a["at"] < promoted_at}
    assert during == {before, new}  # the champion, and the canary's share to the new version
