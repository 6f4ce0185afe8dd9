"""The CT pipeline: extract -> validate data -> split -> train -> evaluate -> bless -> register.

A small runner over typed steps (`data_steps.py`, `model_steps.py`, `register.py`): one MLflow
parent run per pipeline run, one child run per step. Artifacts live in
`<state_dir>/runs/<run id>/`; a run killed in any step resumes with `resume=<run id>`,
reusing finished steps whose inputs (configuration, upstream artifact hashes, and the
champion where a step compares with it) are unchanged and whose outputs still verify.
Registration is the last step and only reads finished artifacts, so nothing half-made is
ever registered.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from skewless.errors import BadInput
from skewless.features import store as feature_store
from skewless.hashing import sha256_file
from skewless.offline.ray_batch import historical_features_for
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings

from .config import PipelineConfig
from .context import (
    ExtractFn,
    Hook,
    Progress,
    RunFolder,
    StepContext,
    StepOutput,
    champion_identity,
    no_hook,
)
from .data_steps import Extracted, Splits, Validated, extract_step, split_step, validate_step
from .extract import extract
from .model_steps import Blessed, Evaluated, Trained, bless_step, evaluate_step, train_step
from .register import Registered, register_step
from .state import RunState, input_key
from .validate_data import DataValidationError

Out = TypeVar("Out", bound=StepOutput)


@dataclass(frozen=True)
class Step(Generic[Out]):
    name: str
    output: type[Out]
    artifacts: tuple[str, ...]  # what it writes into the run folder (checked by releases)
    compares_with_champion: bool = False  # the champion is one of its inputs too


EXTRACT = Step("extract", Extracted, ("dataset.parquet",))
VALIDATE = Step(
    "validate_data", Validated, ("schema.json", "validation.json"), compares_with_champion=True
)
SPLIT = Step("split", Splits, ("train.parquet", "validation.parquet", "test.parquet"))
TRAIN = Step(
    "train", Trained, ("model.txt", "contract.json", "training.json", "training_test_scores.npy")
)
EVALUATE = Step(
    "evaluate",
    Evaluated,
    ("evaluation.json", "reference.json", "test_scores.npy"),
    compares_with_champion=True,
)
BLESS = Step("bless", Blessed, ("verdict.json",), compares_with_champion=True)
REGISTER = Step("register", Registered, ("registration.json",), compares_with_champion=True)
ALL_STEPS = (EXTRACT, VALIDATE, SPLIT, TRAIN, EVALUATE, BLESS, REGISTER)
STEPS = tuple(s.name for s in ALL_STEPS)


def artifact_problems(run_dir: Path) -> list[str]:
    """What a finished run's folder lacks: a step that did not record its run, or did not
    write (or record, or keep intact) an artifact it declares. Empty when all is there."""
    state = RunState.load(run_dir / "state.json")
    problems = []
    for step in ALL_STEPS:
        if step.name not in state.steps:
            problems.append(f"{step.name}: no record of the step in state.json")
            continue
        recorded = state.outputs(step.name)
        for name in step.artifacts:
            path = run_dir / name
            if name not in recorded:
                problems.append(f"{step.name}: {name} declared but not recorded")
            elif not path.is_file():
                problems.append(f"{step.name}: {name} recorded but not written")
            elif sha256_file(path) != recorded[name]:
                problems.append(f"{step.name}: {name} changed since it was written")
    return problems


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


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        config: PipelineConfig,
        *,
        extract_fn: ExtractFn | None = None,
        progress: Progress = print,
        hook: Hook = no_hook,
    ) -> None:
        self.settings, self.config = settings, config
        # The features come from the batch engine the settings choose (this process or Ray).
        retrieve = functools.partial(historical_features_for, settings)
        self.extract_fn = extract_fn or functools.partial(extract, retrieve=retrieve)
        self.progress, self.hook = progress, hook
        self.registry = ModelRegistry.of(settings)
        self.store = feature_store.open_store(settings)

    def run(self, resume: str | None = None) -> RunResult:
        registry = self.registry
        if resume:
            run_id = resume
            if not registry.run_exists(run_id):
                raise BadInput(f"--resume: no pipeline run {run_id!r} in {self.settings.state_dir}")
            self.progress(f"resuming run {run_id}")
        else:
            experiment = registry.experiment_id(self.config.model_name)
            run_id = registry.start_run(experiment, "ct-pipeline", {"skewless.kind": "pipeline"})
            registry.log_json(run_id, self.config.model_dump(mode="json"), "config.json")
        run_dir = self.settings.state_dir / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        self.progress(f"pipeline run {run_id} -> {run_dir}")
        context = StepContext(
            self.config,
            self.store,
            self.registry,
            run_id,
            run_dir,
            "",
            self.extract_fn,
            self.progress,
            self.hook,
        )
        try:
            result = self._steps(context, RunState.load(run_dir / "state.json"))
        except DataValidationError as exc:
            registry.record_run(run_id, tags={"skewless.stopped": str(exc)[:4000]})
            registry.end_run(run_id, "FAILED")
            raise
        except BaseException:
            registry.end_run(run_id, "FAILED")
            raise
        registry.end_run(run_id)
        return result

    def _steps(self, context: StepContext, state: RunState) -> RunResult:
        result = RunResult(context.run_id, context.run_dir)
        run = _Runner(context, state, result)
        extracted = run(EXTRACT, lambda c: extract_step(c))
        validated = run(VALIDATE, functools.partial(validate_step, extracted=extracted))
        del extracted  # the parts hold its rows from here on: the whole dataset is let go
        split = run(SPLIT, lambda c: split_step(c, validated))
        trained = run(TRAIN, lambda c: train_step(c, split))
        evaluated = run(EVALUATE, lambda c: evaluate_step(c, trained))
        blessed = run(BLESS, lambda c: bless_step(c, trained, evaluated))
        registered = run(
            REGISTER,
            lambda c: register_step(
                c,
                evaluated,
                blessed,
                self.settings.repo_path,
                first_is_champion=self.settings.first_champion == "blessed",
            ),
        )
        result.evaluation, result.verdict = evaluated.evaluation, blessed.verdict
        result.blessed = blessed.blessed
        result.version, result.aliases = registered.version, registered.aliases
        return result


class _Runner:
    """Runs one step at a time: its input key, its child run, reuse or run, timing."""

    def __init__(self, context: StepContext, state: RunState, result: RunResult) -> None:
        self.context, self.state, self.result = context, state, result
        self.folder = RunFolder(context.run_dir, context.config)  # what resume reads back
        self.upstream: dict[str, str] = {}  # every artifact written so far -> sha256

    def __call__(self, step: Step[Out], body: Callable[[StepContext], Out]) -> Out:
        context = self.context
        champion = champion_identity(context) if step.compares_with_champion else None
        config = context.config.model_dump(mode="json")
        key = input_key(step.name, config, self.upstream, champion)
        registry = context.registry
        cid = registry.start_run(
            registry.experiment_of(context.run_id),
            step.name,
            {
                "mlflow.parentRunId": context.run_id,
                "skewless.step": step.name,
                "skewless.executor": f"{os.uname().nodename}:{os.getpid()}",
            },
        )
        started = time.perf_counter()
        output: Out
        if self.state.reusable(step.name, key):
            output = step.output.load(self.folder, self.state.outputs(step.name))
            self.result.reused.append(step.name)
            registry.record_run(cid, tags={"skewless.reused": "true"})
            context.progress(f"{step.name}: reused (inputs unchanged, outputs verified by sha256)")
        else:
            context.progress(f"{step.name}: running")
            try:
                output = body(replace(context, child_run_id=cid))
            except BaseException:
                registry.end_run(cid, "FAILED")
                raise
            self.state.record(step.name, key, output.files, time.perf_counter() - started)
        seconds = time.perf_counter() - started
        self.result.seconds[step.name] = seconds
        registry.record_run(
            cid,
            tags={
                f"artifact.{n}": f"{context.path(n)} sha256={sha}"
                for n, sha in output.files.items()
            },
            metrics={"duration_s": seconds},
        )
        registry.end_run(cid)
        context.progress(f"{step.name}: done in {seconds:.1f} s")
        self.upstream = {**self.upstream, **output.files}
        context.hook(step.name)
        return output
