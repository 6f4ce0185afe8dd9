"""Definition skew on a Feast repository the project did not write: `feast init`'s own template
(driver statistics, an on-demand view over a request source, a Project object), with only what a
user adds to train on it: an entity source with a label, a model configuration, and the ASOF
offline store in its yaml. A model is trained on it; the on-demand transformation's code is named
by `plan` and refused by `apply`, a description is not; the candidate namespace (a Feast project
of its own, though the template's Project object names the live one) is trained, gated and
switched to under a stream, and rolled back; a TTL changed too and forced into the live
namespace is named, and a starting service, the gate and batch scoring refuse the champion.
Real Feast (its template, SQLite online store), real MLflow, the real service and gate."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from loadtests.deploy import run_gate
from serving.process import ServiceProcess
from serving.schemas import rest_body
from skewless.features import namespaces
from skewless.features import store as feature_store
from skewless.features.definitions import feature_definitions
from skewless.features.service import service_schema
from skewless.models.configuration import load_model_config
from skewless.settings import Settings, get_settings
from training.config import load_pipeline_config
from training.pipeline import Pipeline

from .serving_setup import Stream
from .test_deployment import gate_config
from .test_namespace_switch import _one_step, _served, _wait_for

pytestmark = pytest.mark.integration

SERVICE = "driver_activity_v1"  # conv_rate, and the on-demand view over it and the request
ON_DEMAND = {"conv_rate_plus_val1", "conv_rate_plus_val2"}

# What a user adds to the template to train on it: where the requests and their labels are.
ENTITY_SOURCE = """

driver_requests = FileSource(
    name="driver_requests",
    path="data/driver_requests.parquet",
    timestamp_field="event_timestamp",
)
"""

# The template's yaml names Feast's `file` (dask) offline store, which drops entity rows
# (ARCHITECTURE.md); point-in-time joins go through the project's ASOF plug-in instead.
OFFLINE_STORE = """
offline_store:
    type: skewless.offline.asof_store.AsofDuckDBOfflineStore
"""

MODEL = """
name: driver_reliability
feature_service: {service}
entity_source: driver_requests
entity_id: request_id
label: reliable
as_of: "{as_of}"
pipeline:
  windows:
    train: {{start: "{start}", end: "{validation}"}}
    validation: {{start: "{validation}", end: "{test}"}}
    test: {{start: "{test}", end: "{end}"}}
  baseline_by: [driver_id]
  training: {{search_budget: 1, max_rounds: 100, early_stopping_rounds: 10}}
  blessing: {{latency_budget_ms_p99: 50, infra_sample_rows: 50}}
"""

# The template's on-demand view is a pandas one (~2.5 ms a call, ARCHITECTURE.md): the gate's
# latency budgets are widened, this test is about definitions, not speed.
GATE = gate_config(
    golden={"requests": 5},
    load={"seconds": 2},
    budgets={"server": {"p50_ms": 50, "p95_ms": 150, "p99_ms": 300}},
    skew={"sample": 30},
)


@dataclass
class Template:
    settings: Settings
    folder: Path
    model: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "SKEWLESS_REPO_PATH": str(self.settings.repo_path),
            "SKEWLESS_STATE_DIR": str(self.settings.state_dir),
            "SKEWLESS_MODEL_FILE": str(self.model),
            "SKEWLESS_MODEL_POLL_SECONDS": "0.3",
            "SKEWLESS_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
            "SKEWLESS_DRAIN_SECONDS": "0.5",
            **extra,
        }

    def cli(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.output

    def edit(self, old: str, new: str) -> None:
        path = self.settings.repo_path / "feature_definitions.py"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    def train(self, settings: Settings, blessing: str = "") -> str:
        path = self.folder / "pipeline.yaml"
        extra = f", {blessing}}}" if blessing else "}"
        path.write_text(
            self.model.read_text().replace(
                "infra_sample_rows: 50}", f"infra_sample_rows: 50{extra}"
            )
        )
        config = load_pipeline_config(path)
        result = Pipeline(settings, config, progress=lambda _: None).run()
        assert result.version is not None, result.verdict
        return str(result.version)


def _requests(stats: pd.DataFrame) -> pd.DataFrame:
    """Half an hour after each of the last 14 days' hourly statistics, a request with random
    values to add, labelled by the conversion rate known then (plus noise): a label the model
    can learn from its features and only from them."""
    recent = stats[
        stats["event_timestamp"] > stats["event_timestamp"].max() - pd.Timedelta(days=14)
    ]
    rng = np.random.default_rng(7)
    rows = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(recent))],
            "driver_id": recent["driver_id"].to_numpy(),
            "event_timestamp": recent["event_timestamp"].to_numpy() + pd.Timedelta(minutes=30),
            "val_to_add": rng.integers(0, 10, len(recent)),
            "val_to_add_2": rng.integers(0, 10, len(recent)),
            "reliable": (
                recent["conv_rate"].to_numpy() + rng.normal(0, 0.15, len(recent)) > 0.5
            ).astype("int64"),
        }
    )
    return rows.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def _iso(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Template]:
    subprocess.run(
        [sys.executable, "-m", "feast.cli.cli", "init", "driver_demo"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    repo = tmp_path / "driver_demo" / "feature_repo"
    with (repo / "feature_definitions.py").open("a") as definitions:
        definitions.write(ENTITY_SOURCE)
    with (repo / "feature_store.yaml").open("a") as yaml_file:
        yaml_file.write(OFFLINE_STORE)
    requests = _requests(pd.read_parquet(repo / "data" / "driver_stats.parquet"))
    requests.to_parquet(repo / "data" / "driver_requests.parquet", index=False)
    first, last = requests["event_timestamp"].min().floor("h"), requests["event_timestamp"].max()
    model = tmp_path / "driver_model.yaml"
    model.write_text(
        MODEL.format(
            service=SERVICE,
            as_of=_iso(last),
            start=_iso(first),
            validation=_iso(first + pd.Timedelta(days=8)),
            test=_iso(first + pd.Timedelta(days=10)),
            end=_iso(last + pd.Timedelta(hours=1)),
        )
    )
    world = Template(
        Settings(repo_path=repo, state_dir=tmp_path / "state", model_file=model),
        tmp_path,
        model,
    )
    for key, value in world.env().items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield world
    get_settings.cache_clear()


def test_the_template_trained_refused_and_switched(template: Template) -> None:
    live = template.settings
    feature_store.apply(live)
    store = feature_store.open_store(live)
    config = load_model_config(template.model)
    feature_store.materialize(store, config.as_of)
    assert template.train(live) == "1"  # the first blessed version: the champion
    applied = feature_definitions(store, SERVICE)
    assert set(applied) == {"conv_rate"} | ON_DEMAND

    # The transformation's code is named by plan and refused by apply while it would skew
    # the champion; a description added on the way changes nothing.
    template.edit(
        'Field(name="conv_rate", dtype=Float32),',
        'Field(name="conv_rate", dtype=Float32, description="Conversion rate"),',
    )
    template.edit('inputs["conv_rate"] + inputs["val_to_add"]', 'inputs["conv_rate"] * 2')
    code, planned = template.cli("plan")
    assert code == 1, planned
    for name in ON_DEMAND:  # one view, one transformation: both its features
        assert f"{name}: transformation changed" in planned
    assert "conv_rate:" not in planned  # its description is not its meaning
    assert "champion version 1 would be refused" in planned
    code, refused = template.cli("apply")
    assert code == 1 and "refused: champion version 1 would be refused" in refused, refused
    assert feature_definitions(feature_store.open_store(live), SERVICE) == applied

    body = rest_body(_requests_file(live).iloc[-1], service_schema(store, SERVICE))
    with ServiceProcess(template.env(), log_path=template.folder / "service.log") as service:
        before = httpx.post(service.url + "/v1/predict", json=body, timeout=10).json()
        old = (before["model_version"], before["definitions"])
        assert old[0] == "1"

        # The way through: the candidate namespace, trained and gated there, then one switch.
        code, output = template.cli("apply", "--candidate")
        assert code == 0, output
        candidate = live.model_copy(update={"namespace": "candidate"})
        feature_store.materialize(feature_store.open_store(candidate), config.as_of)
        # Judged against the baseline; the champion is not beaten on purpose here.
        version = template.train(candidate, "min_auc_gain_over_champion: -1.0")
        gate = run_gate(candidate, version, GATE, out_dir=template.folder / "gate")
        assert gate.report.passed, gate.report
        with Stream(service, body) as stream:
            time.sleep(0.3)
            code, output = template.cli("switch")
            assert code == 0, output
            _wait_for(lambda: stream.answers and _version(stream.answers[-1]) == version)
            time.sleep(0.3)
        pairs = _served(stream.answers)
        new = pairs[-1]
        assert new[0] == version and new[1] != old[1], (old, new)
        _one_step(pairs, old, new)

        with Stream(service, body) as stream:
            time.sleep(0.3)
            code, output = template.cli("switch", "--rollback")
            assert code == 0, output
            _wait_for(lambda: stream.answers and _version(stream.answers[-1]) == old[0])
            time.sleep(0.3)
        _one_step(_served(stream.answers), new, old)
        assert namespaces.load(live.state_dir).rollback is not None

    # A TTL too, forced into the live namespace: named by the forced apply; a starting
    # service, the gate and batch scoring refuse the champion, naming the features.
    template.edit("ttl=timedelta(days=1)", "ttl=timedelta(days=2)")
    code, output = template.cli("apply", "--allow-definition-skew")
    assert code == 0 and "applied despite definition skew" in output, output
    assert "conv_rate: view changed" in output  # the TTL
    for name in ON_DEMAND:  # its code, and the view it reads upstream
        assert f"{name}: transformation, upstream changed" in output
    refusing = ServiceProcess(template.env(), log_path=template.folder / "refusing.log")
    try:
        refusing.start(until="/livez")
        _wait_for(lambda: "definition_skew" in httpx.get(refusing.url + "/readyz").text)
        ready = httpx.get(refusing.url + "/readyz", timeout=10)
        assert ready.status_code == 503, ready.text
        assert "conv_rate_plus_val1: transformation, upstream changed" in ready.json()["reason"]
    finally:
        refusing.stop()
    gate = run_gate(live, old[0], GATE, out_dir=template.folder / "gate-refused")
    assert not gate.report.passed and "definition_skew" in str(gate.report.stopped)
    entity_rows = template.folder / "rows.parquet"
    _requests_file(live).tail(20).to_parquet(entity_rows)
    code, output = template.cli("score", str(entity_rows), "--output", str(template.folder / "o"))
    assert code == 1 and "definition_skew" in output, output


def _requests_file(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.repo_path / "data" / "driver_requests.parquet")


def _version(answer: httpx.Response | Exception) -> str | None:
    if isinstance(answer, httpx.Response) and answer.status_code == 200:
        return str(answer.json()["model_version"])
    return None
