"""A pipeline release through environments, on `feast init`'s template (a repository the
project did not write): built after its CI checks, refused for production before staging has
its run, deployed to staging (its first champion, gated), promoted to production by hand (its
own first champion, from its own run and gate), then through production's candidate namespace,
switched under a stream with no failed request; a production gate that fails switches nothing.
Staging and production share nothing but the ledger. Real commands in subprocesses, real
services, real gates. The same commands on the flights repository follow."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from cli.environments import FILE_VARIABLE, environment_variables
from cli.main import app
from loadtests.release.checks import artifacts_written
from serving.process import ServiceProcess
from serving.schemas import rest_body
from skewless.features import namespaces
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.ledger import Ledger
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings, get_settings

from .serving_setup import SMALL_PIPELINE, Stream
from .template_setup import GATE, SERVICE, Template, make_template
from .test_deployment import gate_config
from .test_namespace_switch import _one_step, _repo_copy, _served, _wait_for

pytestmark = pytest.mark.integration

# The flights model's gate, small: this test is about the release's flow, not its speed.
FLIGHTS_GATE = gate_config(golden={"requests": 5}, load={"seconds": 2}, skew={"sample": 30})

# One staging run before production: counting runs (a failed one does not count; N-1 refused,
# N allowed with N = 2) is tested on a real ledger in tests/unit/test_ledger_and_environments.py;
# a deploy costs ~20-60 s here.
RUNS_BEFORE_PROMOTION = 1

FEATURE_TESTS = """
import pandas as pd

def test_rates_are_rates():
    stats = pd.read_parquet("driver_demo/feature_repo/data/driver_stats.parquet")
    assert stats["conv_rate"].between(0, 1).all()
"""


@pytest.fixture
def restored_environ() -> Iterator[None]:
    """`--env` sets the environment's variables in this process (as in any command's): put
    them back for the tests after this one."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


def _environments(template: Template) -> Path:
    folder = template.folder
    (folder / "feature_tests.py").write_text(FEATURE_TESTS)
    (folder / "gate.yaml").write_text(yaml.safe_dump(GATE.model_dump(mode="json")))
    # A gate no service passes: not ready within 50 ms (it fails at its start, not after a load).
    impossible = GATE.model_copy(update={"service": {"ready_timeout_seconds": 0.05}})
    (folder / "impossible_gate.yaml").write_text(yaml.safe_dump(impossible.model_dump(mode="json")))
    common = {
        "repo_path": "driver_demo/feature_repo",
        "model_file": "driver_model.yaml",
        "model_poll_seconds": 0.3,
        "prediction_log_flush_seconds": 0.2,
        "drain_seconds": 0.5,
    }
    config = {
        "ledger": "ledger/releases.db",
        "release": {
            "feature_tests": [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "feature_tests.py",
            ],
            "runs_before_promotion": RUNS_BEFORE_PROMOTION,
        },
        "environments": {
            name: {
                "settings": {**common, "state_dir": name, "feast_state": f"{name}/feast"},
                "gate": "gate.yaml",
                "by_hand": name == "prod",
            }
            for name in ("staging", "prod")
        },
    }
    path = folder / "environments.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    get_settings.cache_clear()
    return result.exit_code, result.output


def _settings(name: str, file: Path) -> Settings:
    variables = environment_variables(name, file)
    prefix = "SKEWLESS_"
    values = {
        k[len(prefix) :].lower(): v
        for k, v in variables.items()
        if k != "SKEWLESS_ENV" and k[len(prefix) :].lower() in Settings.model_fields
    }
    return Settings.model_validate(values)


class State(NamedTuple):
    """What a deploy elsewhere must not change: versions, aliases, namespaces."""

    versions: list[tuple[str, str]]
    champion: str | None
    namespaces: namespaces.Namespaces


def _state(settings: Settings, model: str) -> State:
    registry = ModelRegistry.of(settings)
    versions = [(str(v.version), v.record.namespace) for v in registry.versions(model)]
    champion = registry.by_alias(model, CHAMPION)
    version = str(champion.version) if champion else None
    return State(versions, version, namespaces.load(settings.state_dir))


def test_a_release_goes_to_staging_then_to_prod_by_hand(
    tmp_path: Path, restored_environ: None
) -> None:
    template = make_template(tmp_path)
    file = _environments(template)
    os.environ[FILE_VARIABLE] = str(file)
    model = "driver_reliability"

    code, built = _cli("--env", "staging", "release", "build")
    assert code == 0, built
    ledger = Ledger(tmp_path / "ledger" / "releases.db")
    (release,) = ledger.releases()
    assert release.passed and [c.name for c in release.checks] == [
        "feature_tests",
        "end_to_end_run",
        "training_converges",
        "finite_features",
        "artifacts_written",
    ]
    assert "exit 0: 1 passed" in release.checks[0].evidence
    code, printed = _cli("--env", "staging", "release", "id")
    assert (code, printed) == (0, f"{release.id}\n")  # what a CI job passes on
    staging, prod = _settings("staging", file), _settings("prod", file)

    # Staging: refused for prod before any run there; then its first champion.
    code, output = _cli("release", "promote", release.id, "--to", "prod", "--why", "early")
    assert code == 1 and "has 0 successful run(s) in staging" in output, output
    code, output = _cli("release", "deploy", release.id, "--env", "staging")
    assert code == 0, output
    assert [r.outcome for r in ledger.runs(release.id, "staging")] == ["first"]
    assert not prod.state_dir.exists()  # nothing of prod was touched
    code, output = _cli("release", "deploy", release.id, "--env", "prod")
    assert code == 2 and "prod is reached by hand" in output

    # Prod, by hand: its own first champion, from its own run; staging unchanged.
    before = _state(staging, model)
    code, output = _cli("release", "promote", release.id, "--to", "prod", "--why", "1 run")
    assert code == 0, output
    (prod_first,) = ledger.runs(release.id, "prod")
    assert [s["step"] for s in prod_first.steps][-2:] == ["gate", "promote"]  # gated, even first
    assert _state(staging, model) == before

    # Then switched under a stream: no failed request, and every answer after it is prod's
    # own new model on the release's definitions.
    prod_env = {FILE_VARIABLE: str(file), **environment_variables("prod", file)}
    store = feature_store.open_store(prod)
    row = template.requests().iloc[-1]
    body = rest_body(row, service_schema(store, SERVICE))
    with ServiceProcess(prod_env, log_path=tmp_path / "prod.log") as service:
        first = httpx.post(service.url + "/v1/predict", json=body, timeout=10).json()
        old = (first["model_version"], first["definitions"])
        with Stream(service, body, pause=0.005) as stream:
            time.sleep(0.3)
            code, output = _cli("release", "promote", release.id, "--to", "prod", "--why", "again")
            assert code == 0, output
            new_version = str(ledger.runs(release.id, "prod")[-1].version)
            _wait_for(lambda: bool(stream.answers) and _version(stream.answers[-1]) == new_version)
            time.sleep(0.3)
        pairs = _served(stream.answers)
        assert pairs[-1] == (new_version, release.manifest["definitions_fingerprint"])
        _one_step(pairs, old, pairs[-1])
        assert _state(staging, model) == before

        # A prod gate that fails: nothing switches, and the service keeps its model.
        config = yaml.safe_load(file.read_text())
        config["environments"]["prod"]["gate"] = "impossible_gate.yaml"
        file.write_text(yaml.safe_dump(config, sort_keys=False))
        serving = _state(prod, model)
        code, output = _cli("release", "promote", release.id, "--to", "prod", "--why", "gate")
        assert code == 1 and "gate_failed" in output, output
        after = _state(prod, model)  # its candidate may stay: a retry reuses it
        assert (after.champion, after.namespaces.live) == (
            serving.champion,
            serving.namespaces.live,
        )
        answer = httpx.post(service.url + "/v1/predict", json=body, timeout=10).json()
        assert answer["model_version"] == new_version

    assert [r.outcome for r in ledger.runs(release.id, "prod")] == [
        "first",
        "switched",
        "gate_failed",
    ]
    code, status = _cli("release", "status", release.id)
    assert code == 0, status
    for line in (
        "from unknown",
        "staging  run",
        "prod     run",
        "gate_failed",
        f"version {new_version}",
        "[apply materialize train gate promote]",  # each run's steps, a failed one marked
        "[apply materialize train gate!]",
    ):
        assert line in status, status
    tagged = ModelRegistry.of(prod).version(model, new_version)
    assert tagged.tags.get("release") == release.id  # the lineage in prod's MLflow too

    # A checkout that is not the release is not deployed as it.
    template.edit('description="Average daily trips"', 'description="Trips a day"')
    code, output = _cli("release", "deploy", release.id, "--env", "staging")
    assert code == 2 and f"not {release.id}" in output, output

    # And a step that wrote no artifact is caught: staging's last run, one file gone.
    run_dir = max((staging.state_dir / "runs").glob("*/"), key=lambda p: p.stat().st_mtime)
    (run_dir / "training.json").unlink()
    check = artifacts_written(run_dir)
    assert not check.passed and "train: training.json recorded but not written" in check.evidence


def _version(answer: httpx.Response | Exception) -> str | None:
    if isinstance(answer, httpx.Response) and answer.status_code == 200:
        return str(answer.json()["model_version"])
    return None


def test_on_the_flights_repository_a_release_that_does_not_learn_fails_and_its_fix_deploys(
    real_repo: Settings, tmp_path: Path, restored_environ: None
) -> None:
    """The same commands on the project's own repository and data. A planted bug first: a
    learning rate of 1e-9 (LightGBM refuses 0). The end-to-end run completes on the year's
    tables, the other checks pass, `training_converges` fails with its evidence, the build
    exits 1 and is in the ledger, and no environment may deploy it. Then the fix: its build
    passes, and its deploy gives staging its first champion, trained on staging's own store
    from the release's definitions and gated there; the ledger and MLflow say so."""
    repo = _repo_copy(real_repo, tmp_path)
    model_file = tmp_path / "model.yaml"
    planted = SMALL_PIPELINE.replace(
        "training: {search_budget: 1,",
        "training: {params: {learning_rate: 1.0e-9}, search_budget: 1,",
    )
    assert planted != SMALL_PIPELINE
    model_file.write_text(planted)
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(FLIGHTS_GATE.model_dump(mode="json")))
    config = {
        "ledger": "releases.db",
        "environments": {
            "staging": {
                "settings": {"repo_path": str(repo), "model_file": "model.yaml", "state_dir": "s"},
                "gate": "gate.yaml",
            }
        },
    }
    file = tmp_path / "environments.yaml"
    file.write_text(yaml.safe_dump(config, sort_keys=False))
    os.environ[FILE_VARIABLE] = str(file)
    ledger = Ledger(tmp_path / "releases.db")

    code, built = _cli("--env", "staging", "release", "build")
    assert code == 1 and "failed training_converges" in built, built
    (release,) = ledger.releases()
    checks = {c.name: c for c in release.checks}
    assert not release.passed and not checks["training_converges"].passed
    assert "the base rate's" in checks["training_converges"].evidence
    assert all(c.passed for n, c in checks.items() if n != "training_converges"), checks
    assert {"flight_requests", "carrier_departures_7d"} <= set(release.manifest["table_builders"])
    code, output = _cli("release", "deploy", release.id, "--env", "staging")
    assert code == 2 and "did not pass its checks (training_converges)" in output, output
    assert not (tmp_path / "s").exists()  # nothing of the environment was touched

    # The fix is another release (the model configuration is part of it), and it ships.
    model_file.write_text(SMALL_PIPELINE)
    code, built = _cli("--env", "staging", "release", "build")
    assert code == 0, built
    fixed = next(r for r in ledger.releases() if r.id != release.id)
    assert fixed.passed
    code, output = _cli("release", "deploy", fixed.id, "--env", "staging")
    assert code == 0, output
    (run,) = ledger.runs(fixed.id, "staging")
    assert run.outcome == "first" and [s["step"] for s in run.steps] == [
        "apply",
        "materialize",
        "train",
        "gate",
        "promote",
    ]
    staging = _settings("staging", file)
    registry = ModelRegistry.of(staging)
    champion = registry.by_alias("departure_delay", CHAMPION)
    assert champion is not None and str(champion.version) == run.version
    assert champion.tags.get("release") == fixed.id
    assert champion.record.definitions == fixed.manifest["definitions_fingerprint"]
    code, status = _cli("release", "status", fixed.id)
    assert code == 0 and f"version {run.version}" in status, status
