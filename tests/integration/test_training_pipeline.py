"""The CT pipeline end to end on a small real slice: artifacts, lineage, stops, blessing,
kill-and-resume, and the registered artifact."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skewless.features import store as feature_store
from skewless.hashing import sha256_file
from skewless.models.artifacts import ModelArtifactError, load_model
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.registry.champion_moves import UNGATED
from skewless.settings import Settings
from tests.support.registry_state import mlflow_client
from tests.support.repos import CHECKOUT
from training.config import PipelineConfig, load_pipeline_config
from training.extract import extract
from training.pipeline import STEPS, Pipeline
from training.split import split
from training.train import train
from training.validate_data import DataValidationError

from .faulty_train import FAULT_ENV

SMALL = """
name: departure_delay_test
feature_service: delay_model_v1
entity_source: flight_requests
entity_id: flight_id
label: departed_late
segments: [origin, carrier]
as_of: "2013-12-30T23:00:00Z"
pipeline:
  windows:
    train: {start: "2013-03-01T00:00:00Z", end: "2013-03-15T00:00:00Z"}
    validation: {start: "2013-03-15T00:00:00Z", end: "2013-03-22T00:00:00Z"}
    test: {start: "2013-03-22T00:00:00Z", end: "2013-03-29T00:00:00Z"}
  baseline_by: [carrier, origin]
  training: {search_budget: 2, max_rounds: 300, early_stopping_rounds: 30,
             search_space: {num_leaves: [15, 31]}}
  blessing: {latency_budget_ms_p99: 50, infra_sample_rows: 50}
"""


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "small.yaml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def config(config_path: Path) -> PipelineConfig:
    return load_pipeline_config(config_path)


class TrainCli:
    """`skewless train` in a subprocess, so that a fault can really kill the process."""

    def __init__(self, real_repo: Settings, config_path: Path, state_dir: Path) -> None:
        self.env = {
            **os.environ,
            "SKEWLESS_REPO_PATH": str(real_repo.repo_path),
            "SKEWLESS_STATE_DIR": str(state_dir),
            "SKEWLESS_ONLINE_STORE": "sqlite",
        }
        # The real `skewless train`, through a test build that can die at a named moment.
        self.command = [
            sys.executable,
            "-m",
            "tests.integration.faulty_train",
            "train",
            "--config",
            str(config_path),
        ]

    def run(self, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, FAULT_ENV: fault} if fault else self.env
        return subprocess.run([*self.command, *args], env=env, capture_output=True, text=True)


def settings_with_state(real_repo: Settings, state: Path) -> Settings:
    return Settings(repo_path=real_repo.repo_path, online_store="sqlite", state_dir=state)


@pytest.fixture(scope="module")
def first_run(
    real_repo: Settings, config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory
):
    settings = settings_with_state(real_repo, tmp_path_factory.mktemp("state"))
    result = Pipeline(settings, config, progress=lambda _: None).run()
    return settings, result


def test_training_converges_without_nan(real_repo: Settings, config: PipelineConfig) -> None:
    from skewless.features.service import service_schema
    from skewless.models.contract import ModelContract, derive_features
    from skewless.models.encoder import FeatureEncoder

    store = feature_store.open_store(real_repo)
    parts = split(extract(store, config), config.windows)
    names = list(service_schema(store, config.feature_service).features)
    contract = ModelContract(
        "m", config.feature_service, "1", config.label, derive_features(parts.train, names)
    )
    model = train(
        parts.train,
        parts.validation,
        contract,
        config.training.model_copy(update={"search_budget": 1}),
    )
    assert model.history[0] > min(model.history) + 0.01  # validation loss went down
    scores = model.booster.predict(FeatureEncoder(contract).matrix(parts.test))
    assert np.isfinite(scores).all() and 0 < scores.min() < scores.max() < 1


def test_every_step_produces_its_artifact_with_lineage(first_run) -> None:
    settings, result = first_run
    state = json.loads((result.run_dir / "state.json").read_text())["steps"]
    assert sorted(state) == sorted(STEPS)
    for step, record in state.items():
        for name, sha in record["outputs"].items():
            assert sha256_file(result.run_dir / name) == sha, (step, name)
    registry = ModelRegistry(settings.state_dir)
    client = mlflow_client(registry)
    children = client.search_runs(
        [registry.experiment_of(result.run_id)],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
    )
    assert sorted(c.data.tags["skewless.step"] for c in children) == sorted(STEPS)
    version = registry.by_alias("departure_delay_test", CHAMPION)
    assert result.blessed and version is not None and str(version.version) == result.version
    assert {CHAMPION, CHALLENGER} <= set(result.aliases)
    for tag in ("sha256", "git_commit", "feast_registry_sha256", "windows", "feature_service"):
        assert version.tags[tag], tag


def test_registered_artifact_loads_and_its_sha256_is_verified(first_run, tmp_path: Path) -> None:
    settings, _ = first_run
    registry = ModelRegistry(settings.state_dir)
    champion = registry.fetch(registry.by_alias("departure_delay_test", CHAMPION), tmp_path)
    model = load_model(
        champion.artifacts / "model.txt", champion.artifacts / "contract.json", champion.sha256
    )
    assert model.sha256 == champion.sha256
    tampered = champion.artifacts / "model.txt"
    tampered.write_text(tampered.read_text().replace("tree_sizes", "tree_sizes ", 1))
    with pytest.raises(ModelArtifactError, match="sha256"):
        load_model(tampered, champion.artifacts / "contract.json", champion.sha256)


def corrupt(kind: str):
    def extract_fn(store, config):
        data = extract(store, config)
        if kind == "dropped column":
            return data.drop(columns=["weather_temp"])
        if kind == "changed type":
            return data.assign(carrier_7d_late_rate=data["carrier_7d_late_rate"].astype(str))
        if kind == "30% nulls":
            mask = np.random.default_rng(1).random(len(data)) < 0.3
            return data.assign(weather_visib=data["weather_visib"].mask(mask))
        if kind == "unknown category":
            mask = np.random.default_rng(2).random(len(data)) < 0.05
            return data.assign(carrier_name=data["carrier_name"].mask(mask, "Zeppelin Lines"))
        raise AssertionError(kind)

    return extract_fn


@pytest.mark.parametrize(
    "kind", ["dropped column", "changed type", "30% nulls", "unknown category"]
)
def test_schema_skew_stops_before_training_and_leaves_the_registry(
    kind: str, first_run, config: PipelineConfig
) -> None:
    settings, _ = first_run
    registry = ModelRegistry(settings.state_dir)
    before = _registry_state(registry)
    pipeline = Pipeline(settings, config, extract_fn=corrupt(kind), progress=lambda _: None)
    with pytest.raises(DataValidationError) as stopped:
        pipeline.run()
    expected = {
        "dropped column": "missing columns: ['weather_temp']",
        "changed type": "carrier_7d_late_rate: type changed",
        "30% nulls": "weather_visib: null rate",
        "unknown category": "carrier_name:",
    }[kind]
    assert any(expected in p for p in stopped.value.report.problems), stopped.value.report.problems
    runs = sorted((settings.state_dir / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    assert not (runs[-1] / "train.parquet").exists() and not (runs[-1] / "model.txt").exists()
    assert _registry_state(registry) == before


def _registry_state(registry: ModelRegistry) -> tuple[object, ...]:
    """Every version with its tags, and where the aliases point."""
    name = "departure_delay_test"
    aliases = [registry.by_alias(name, alias) for alias in (CHAMPION, CHALLENGER)]
    return (
        [(v.version, v.tags) for v in registry.versions(name)],
        [None if a is None else a.version for a in aliases],
    )


def test_a_worse_model_is_recorded_but_not_blessed_nor_aliased(
    first_run, config: PipelineConfig
) -> None:
    settings, first = first_run

    def shuffled_labels(store, cfg):
        data = extract(store, cfg)
        rng = np.random.default_rng(3)
        return data.assign(**{cfg.label: rng.permutation(data[cfg.label].to_numpy())})

    result = Pipeline(settings, config, extract_fn=shuffled_labels, progress=lambda _: None).run()
    assert not result.blessed and result.aliases == []
    failed = {c["name"] for c in result.verdict["checks"] if not c["passed"]}
    assert "beats baseline" in failed
    registry = ModelRegistry(settings.state_dir)
    assert registry.version_of_run("departure_delay_test", result.run_id).tags["blessed"] == "false"
    assert str(registry.by_alias("departure_delay_test", CHAMPION).version) == first.version


def test_kill_and_resume_gives_the_model_of_an_uninterrupted_run(
    real_repo: Settings, first_run, config_path: Path, tmp_path: Path
) -> None:
    _, uninterrupted = first_run
    train_cli = TrainCli(real_repo, config_path, tmp_path)
    killed = train_cli.run(fault="train")
    assert killed.returncode == 137, killed.stderr[-2000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    assert (run_dir / "model.txt").exists()
    assert ModelRegistry(tmp_path).versions("departure_delay_test") == []  # nothing half-made
    resumed = train_cli.run("--resume", run_dir.name)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "train: reused" in resumed.stdout
    assert sha256_file(run_dir / "model.txt") == sha256_file(uninterrupted.run_dir / "model.txt")
    [version] = ModelRegistry(tmp_path).versions("departure_delay_test")
    assert version.tags["sha256"] == sha256_file(uninterrupted.run_dir / "model.txt")


def test_a_second_run_is_challenger_and_never_champion_without_the_gate(
    real_repo: Settings, first_run, config_path: Path
) -> None:
    settings, _ = first_run
    registry = ModelRegistry(settings.state_dir)
    champion = str(registry.by_alias("departure_delay_test", CHAMPION).version)
    second = Pipeline(settings, load_pipeline_config(config_path), progress=lambda _: None).run()
    assert second.blessed and second.aliases == [CHALLENGER]
    assert str(second.evaluation["champion_version"]) == champion
    assert str(registry.by_alias("departure_delay_test", CHALLENGER).version) == second.version
    # --promote gates the new version first; a gate it cannot pass leaves the champion.
    failing_gate = config_path.with_name("failing-gate.yaml")
    text = (CHECKOUT / "loadtests" / "configs" / "gate.yaml").read_text()
    text = re.sub(r"p50_ms: [0-9.]+", "p50_ms: 0.001", text)  # no service answers that fast
    failing_gate.write_text(re.sub(r"^  seconds: [0-9.]+", "  seconds: 3", text, flags=re.M))
    train_cli = TrainCli(real_repo, config_path, settings.state_dir)
    done = train_cli.run("--promote", "--gate-config", str(failing_gate))
    second_version = int(second.version) + 1  # the run above registers the next version
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    # The gate really ran on this model's new version (not on another model's) and failed.
    assert f"gate FAILED: departure_delay_test version {second_version}" in done.stdout
    assert "did not pass the gate: the champion stays" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert str(registry.by_alias("departure_delay_test", CHAMPION).version) == champion
    assert [m.version for m in registry.champion_history("departure_delay_test")] == [champion]
    assert registry.champion_history("departure_delay_test")[0].gate == UNGATED


def test_a_kill_between_registering_and_aliasing_resumes_without_a_duplicate(
    real_repo: Settings, config_path: Path, tmp_path: Path
) -> None:
    train_cli = TrainCli(real_repo, config_path, tmp_path)
    killed = train_cli.run(fault="register:registered")
    assert killed.returncode == 137, killed.stderr[-2000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    registry = ModelRegistry(tmp_path)
    [version] = registry.versions("departure_delay_test")
    # registered, not yet aliased (search results carry no aliases: ask by alias)
    assert registry.by_alias("departure_delay_test", CHAMPION) is None
    resumed = train_cli.run("--resume", run_dir.name)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    [same] = registry.versions("departure_delay_test")
    assert same.version == version.version
    for alias in (CHAMPION, CHALLENGER):
        assert registry.by_alias("departure_delay_test", alias).version == version.version
