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

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.definition_commands import OVERRIDE_TAG
from loadtests.deploy import run_gate
from serving.process import ServiceProcess
from serving.schemas import rest_body
from skewless.features import namespaces
from skewless.features import store as feature_store
from skewless.features.definitions import feature_definitions
from skewless.features.service import service_schema
from skewless.models.configuration import load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.settings import get_settings

from .serving_setup import Stream
from .template_setup import GATE, ON_DEMAND, SERVICE, Template, make_template
from .test_namespace_switch import _one_step, _served, _wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Template]:
    world = make_template(tmp_path)
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

    body = rest_body(template.requests().iloc[-1], service_schema(store, SERVICE))
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
    recorded = ModelRegistry.of(live).version(config.name, old[0]).tags[OVERRIDE_TAG]
    assert "apply --allow-definition-skew" in recorded and "conv_rate: view changed" in recorded
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
    template.requests().tail(20).to_parquet(entity_rows)
    code, output = template.cli("score", str(entity_rows), "--output", str(template.folder / "o"))
    assert code == 1 and "definition_skew" in output, output


def _version(answer: httpx.Response | Exception) -> str | None:
    if isinstance(answer, httpx.Response) and answer.status_code == 200:
        return str(answer.json()["model_version"])
    return None
