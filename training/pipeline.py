"""The CT pipeline: extract -> validate data -> split -> train -> evaluate -> bless -> register.

One MLflow parent run per pipeline run, one child run per step. Artifacts live in
`<state_dir>/runs/<run id>/`; a run killed in any step resumes with `resume=<run id>`,
reusing finished steps by content hash. Registration is the last step and only reads
finished artifacts, so nothing half-made is ever registered.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from skewless import feature_store as fs
from skewless.features import service_schema
from skewless.model_contract import ModelContract, derive_features, feature_matrix
from skewless.predictor import load_model, sha256_file
from skewless.registry import CHALLENGER, CHAMPION, MODEL_DIR, ModelRegistry, operator
from skewless.settings import Settings

from . import bless as blessing
from .artifacts import read_json, write_frame, write_json, write_text
from .config import PipelineConfig
from .evaluate import baseline_scores, evaluate
from .extract import extract
from .split import split
from .state import RunState, input_key
from .train import train
from .validate_data import DataValidationError, derive_schema, validate

STEPS = ("extract", "validate_data", "split", "train", "evaluate", "bless", "register")
CHAMPION_DEPENDENT = {"validate_data", "evaluate", "bless", "register"}
FAULT_ENV = "SKEWLESS_FAULT_AFTER_STEP"  # test hook: the process dies after this step


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    blessed: bool = False
    version: str | None = None
    aliases: list[str] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)


ExtractFn = Callable[[Any, PipelineConfig], pd.DataFrame]
Progress = Callable[[str], None]


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The decision threshold that maximizes F1 on the validation window."""
    candidates = np.linspace(0.05, 0.95, 91)
    f1 = [f1_score(labels, scores >= t, zero_division=0) for t in candidates]
    return float(candidates[int(np.argmax(f1))])


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        config: PipelineConfig,
        *,
        promote: bool = False,
        extract_fn: ExtractFn = extract,
        progress: Progress = print,
    ) -> None:
        self.settings, self.config, self.promote = settings, config, promote
        self.extract_fn, self.progress = extract_fn, progress
        self.registry = ModelRegistry(settings.state_dir)
        self.store = fs.open_store(settings)

    # --- run bookkeeping -------------------------------------------------------------------
    def run(self, resume: str | None = None) -> RunResult:
        client = self.registry.client
        if resume:
            run_id = resume
            client.get_run(run_id)  # fails loudly for an unknown id
            self.progress(f"resuming run {run_id}")
        else:
            experiment = self.registry.experiment_id(self.config.model_name)
            run_id = client.create_run(
                experiment, run_name="ct-pipeline", tags={"skewless.kind": "pipeline"}
            ).info.run_id
            client.log_dict(run_id, self.config.model_dump(mode="json"), "config.json")
        run_dir = self.settings.state_dir / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        result = RunResult(run_id, run_dir)
        state = RunState.load(run_dir / "state.json")
        self.progress(f"pipeline run {run_id} -> {run_dir}")
        try:
            upstream: dict[str, str] = {}  # every artifact written so far -> sha256
            for step in STEPS:
                upstream = {**upstream, **self._step(step, state, result, upstream)}
        except DataValidationError as exc:
            client.set_tag(run_id, "skewless.stopped", str(exc)[:4000])
            client.set_terminated(run_id, "FAILED")
            raise
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        return result

    def _step(
        self, step: str, state: RunState, result: RunResult, upstream: dict[str, str]
    ) -> dict[str, str]:
        # The champion a step compares against is one of its inputs too.
        champion = self._champion_identity() if step in CHAMPION_DEPENDENT else None
        key = input_key(step, self.config.model_dump(mode="json"), upstream, self.promote, champion)
        client = self.registry.client
        parent = client.get_run(result.run_id)
        child = client.create_run(
            parent.info.experiment_id,
            run_name=step,
            tags={
                "mlflow.parentRunId": result.run_id,
                "skewless.step": step,
                "skewless.executor": f"{os.uname().nodename}:{os.getpid()}",
            },
        )
        cid = child.info.run_id
        started = time.perf_counter()
        if state.reusable(step, key):
            outputs = state.outputs(step)
            result.reused.append(step)
            client.set_tag(cid, "skewless.reused", "true")
            self.progress(f"{step}: reused (inputs unchanged, outputs verified by sha256)")
            self._reload(step, result)
        else:
            self.progress(f"{step}: running")
            try:
                outputs = getattr(self, f"_{step}")(result, cid)
            except BaseException:
                client.set_terminated(cid, "FAILED")
                raise
            state.record(step, key, outputs, time.perf_counter() - started)
        seconds = time.perf_counter() - started
        result.seconds[step] = seconds
        for name, sha in outputs.items():
            client.set_tag(cid, f"artifact.{name}", f"{result.run_dir / name} sha256={sha}")
        client.log_metric(cid, "duration_s", seconds)
        client.set_terminated(cid, "FINISHED")
        self.progress(f"{step}: done in {seconds:.1f} s")
        if os.environ.get(FAULT_ENV) == step:
            os._exit(137)  # simulate a kill right after this step (tests only)
        return outputs

    def _path(self, result: RunResult, name: str) -> Path:
        return result.run_dir / name

    def _reload(self, step: str, result: RunResult) -> None:
        if step == "evaluate":
            result.evaluation = read_json(self._path(result, "evaluation.json"))
        if step == "bless":
            result.verdict = read_json(self._path(result, "verdict.json"))
            result.blessed = bool(result.verdict["blessed"])
        if step == "register":
            registration = read_json(self._path(result, "registration.json"))
            result.version, result.aliases = registration["version"], registration["aliases"]

    def _feast_registry_file(self) -> Path:
        path = Path(str(self.store.config.registry.path))
        return path if path.is_absolute() else self.settings.repo_path / path

    def _champion_version(self):
        """The champion to compare with: only one trained on the same feature service."""
        version = self.registry.by_alias(self.config.model_name, CHAMPION)
        if version is None or version.tags.get("feature_service") != self.config.feature_service:
            return None
        return version

    def _champion_identity(self) -> str | None:
        version = self._champion_version()
        return None if version is None else f"{version.version}:{version.tags.get('sha256')}"

    def _champion(self, result: RunResult):
        version = self._champion_version()
        if version is None or version.run_id == result.run_id:
            return None
        return self.registry.fetch(version, result.run_dir / "champion")

    # --- the steps -------------------------------------------------------------------------
    def _extract(self, result: RunResult, cid: str) -> dict[str, str]:
        dataset = self.extract_fn(self.store, self.config)
        art = write_frame(dataset, self._path(result, "dataset.parquet"))
        self.registry.client.log_metric(cid, "rows", len(dataset))
        return {"dataset.parquet": art.sha256}

    def _validate_data(self, result: RunResult, cid: str) -> dict[str, str]:
        dataset = pd.read_parquet(self._path(result, "dataset.parquet"))
        features = list(service_schema(self.store, self.config.feature_service).features)
        train_rows = split(dataset, self.config.windows).train
        champion = self._champion(result)
        if champion is not None:
            reference = read_json(champion.artifacts / "schema.json")
            source = f"champion v{champion.version}"
        else:
            reference = derive_schema(train_rows, features)
            source = "derived from this run's train window (no champion yet)"
        # Each window on its own: skew confined to the newest month must not drown in the rest.
        parts = split(dataset, self.config.windows)
        report = validate(dataset, features, reference, self.config.validation)
        for window in ("train", "validation", "test"):
            part = validate(getattr(parts, window), features, reference, self.config.validation)
            report.problems.extend(
                f"{window} window: {p}" for p in part.problems if p not in report.problems
            )
            report.warnings.extend(f"{window} window: {w}" for w in part.warnings)
        write_json(
            {
                "reference": source,
                "problems": report.problems,
                "warnings": report.warnings,
                "skew": report.skew,
            },
            self._path(result, "validation.json"),
        )
        for name, stats in report.skew.items():
            for stat, value in stats.items():
                self.registry.client.log_metric(cid, f"{stat}.{name}", value)
        for warning in report.warnings:
            self.progress(f"  value skew warning: {warning}")
        if not report.passed:
            self.progress(
                "  schema skew, stopping before training:\n    " + "\n    ".join(report.problems)
            )
            raise DataValidationError(report)
        # This run's own reference statistics, registered with the model for monitoring.
        schema = write_json(derive_schema(train_rows, features), self._path(result, "schema.json"))
        return {
            "schema.json": schema.sha256,
            "validation.json": sha256_file(self._path(result, "validation.json")),
        }

    def _split(self, result: RunResult, cid: str) -> dict[str, str]:
        parts = split(pd.read_parquet(self._path(result, "dataset.parquet")), self.config.windows)
        outputs = {}
        for name in ("train", "validation", "test"):
            frame = getattr(parts, name)
            outputs[f"{name}.parquet"] = write_frame(
                frame, self._path(result, f"{name}.parquet")
            ).sha256
            self.registry.client.log_metric(cid, f"{name}_rows", len(frame))
        return outputs

    def _train(self, result: RunResult, cid: str) -> dict[str, str]:
        train_rows = pd.read_parquet(self._path(result, "train.parquet"))
        validation_rows = pd.read_parquet(self._path(result, "validation.parquet"))
        schema = service_schema(self.store, self.config.feature_service)
        service = self.store.get_feature_service(self.config.feature_service)
        contract = ModelContract(
            model_name=self.config.model_name,
            feature_service=self.config.feature_service,
            feature_service_version=service.tags.get("version", ""),
            label=self.config.label,
            features=derive_features(train_rows, list(schema.features)),
        )
        model = train(train_rows, validation_rows, contract, self.config.training)
        # Chosen on validation scores of the model before any refit, which never saw them.
        scores = model.validation_scores
        contract = ModelContract(
            **{
                **contract.__dict__,
                "threshold": _threshold(validation_rows[self.config.label].to_numpy(), scores),
            }
        )
        client = self.registry.client
        for k, v in model.params.items():
            client.log_param(cid, k, v)
        client.log_metric(cid, "validation_auc", model.validation_auc)
        client.log_metric(cid, "best_iteration", model.best_iteration)
        model_art = write_text(model.booster.model_to_string(), self._path(result, "model.txt"))
        # Scores of the in-memory booster training produced: what the infra check must match.
        test_rows = pd.read_parquet(self._path(result, "test.parquet"))
        np.save(
            self._path(result, "training_test_scores.npy"),
            model.booster.predict(feature_matrix(test_rows, contract)),
        )
        contract_art = write_text(contract.to_json(), self._path(result, "contract.json"))
        training_art = write_json(
            {
                "params": model.params,
                "trials": model.trials,
                "validation_auc": model.validation_auc,
                "best_iteration": model.best_iteration,
                "validation_logloss": model.history,
            },
            self._path(result, "training.json"),
        )
        return {
            "model.txt": model_art.sha256,
            "contract.json": contract_art.sha256,
            "training.json": training_art.sha256,
            "training_test_scores.npy": sha256_file(self._path(result, "training_test_scores.npy")),
        }

    def _evaluate(self, result: RunResult, cid: str) -> dict[str, str]:
        cfg = self.config
        train_rows = pd.read_parquet(self._path(result, "train.parquet"))
        test_rows = pd.read_parquet(self._path(result, "test.parquet")).reset_index(drop=True)
        model = load_model(
            self._path(result, "model.txt"), self._path(result, "contract.json"), None
        )
        scores = model.score(test_rows)
        evaluation = {
            "candidate": evaluate(test_rows, scores, cfg.label, cfg.segments),
            "baseline": evaluate(
                test_rows,
                baseline_scores(train_rows, test_rows, cfg.label, cfg.baseline_by),
                cfg.label,
                cfg.segments,
            ),
            "champion": None,
        }
        champion = self._champion(result)
        if champion is not None:
            theirs = load_model(
                champion.artifacts / "model.txt",
                champion.artifacts / "contract.json",
                champion.sha256,
            )
            evaluation["champion"] = evaluate(
                test_rows, theirs.score(test_rows), cfg.label, cfg.segments
            )
            evaluation["champion_version"] = champion.version
        np.save(self._path(result, "test_scores.npy"), scores)
        for name, stats in evaluation["candidate"]["overall"].items():
            if stats is not None:
                self.registry.client.log_metric(cid, f"test_{name}", stats)
        result.evaluation = evaluation
        art = write_json(evaluation, self._path(result, "evaluation.json"))
        return {
            "evaluation.json": art.sha256,
            "test_scores.npy": sha256_file(self._path(result, "test_scores.npy")),
        }

    def _bless(self, result: RunResult, cid: str) -> dict[str, str]:
        cfg, ev = self.config.blessing, result.evaluation
        test_rows = pd.read_parquet(self._path(result, "test.parquet")).reset_index(drop=True)
        sample_index = np.random.default_rng(0).choice(
            len(test_rows), min(cfg.infra_sample_rows, len(test_rows)), replace=False
        )
        expected = np.load(self._path(result, "training_test_scores.npy"))[sample_index]
        checks = [
            blessing.compare_to_baseline(ev["candidate"], ev["baseline"], cfg),
            *blessing.compare_to_champion(ev["candidate"], ev.get("champion"), cfg),
            blessing.infra_check(
                self._path(result, "model.txt"),
                self._path(result, "contract.json"),
                sha256_file(self._path(result, "model.txt")),
                test_rows.iloc[sample_index],
                expected,
                result.run_dir,
                cfg,
            ),
        ]
        result.verdict = blessing.verdict(checks)
        result.blessed = result.verdict["blessed"]
        for check in checks:
            self.registry.client.set_tag(
                cid, f"check.{check.name}", f"{'PASS' if check.passed else 'FAIL'}: {check.detail}"
            )
        art = write_json(result.verdict, self._path(result, "verdict.json"))
        return {"verdict.json": art.sha256}

    def _register(self, result: RunResult, cid: str) -> dict[str, str]:
        client, cfg = self.registry.client, self.config
        name = cfg.model_name
        version = self.registry.version_of_run(name, result.run_id)  # resumed after registering
        if version is None:
            for artifact in (
                "model.txt",
                "contract.json",
                "schema.json",
                "evaluation.json",
                "verdict.json",
                "training.json",
                "validation.json",
            ):
                client.log_artifact(result.run_id, str(self._path(result, artifact)), MODEL_DIR)
            windows = cfg.windows.model_dump(mode="json")
            tags = {
                "sha256": sha256_file(self._path(result, "model.txt")),
                "blessed": str(result.blessed).lower(),
                "feature_service": cfg.feature_service,
                "windows": str(windows),
                "git_commit": _git_commit(),
                "feast_registry_sha256": sha256_file(self._feast_registry_file()),
                "test_roc_auc": f"{result.evaluation['candidate']['overall']['roc_auc']:.5f}",
            }
            version = self.registry.register(name, result.run_id, tags)
            if os.environ.get(FAULT_ENV) == "register:registered":
                os._exit(137)  # simulate a kill between registering and aliasing (tests only)
        aliases = []
        if result.blessed:
            current = self.registry.by_alias(name, CHAMPION)
            self.registry.set_alias(name, CHALLENGER, version.version)
            aliases.append(CHALLENGER)
            if current is not None and str(current.version) == str(version.version):
                aliases.append(CHAMPION)  # a resumed run that had got this far already
            elif self.promote or current is None:
                why = "skewless train --promote" if self.promote else "the first blessed model"
                self.registry.move_champion(
                    name, version.version, action="pipeline", by=operator(), why=why
                )
                aliases.append(CHAMPION)
        result.version, result.aliases = version.version, aliases
        art = write_json(
            {"version": version.version, "aliases": aliases},
            self._path(result, "registration.json"),
        )
        return {"registration.json": art.sha256}
