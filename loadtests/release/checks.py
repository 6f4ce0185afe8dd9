"""The CI checks a release must pass before any environment may deploy it (the seed's list):
the user's own feature tests; a small end-to-end pipeline run; training converges on it; no
infinity in any feature and no more missing values than in training; every pipeline step
wrote the artifacts it declares.

The end-to-end run is the real pipeline on a sample of the model's windows, in a scratch
folder of its own (its own Feast registry and SQLite store, its own MLflow registry), so a
build touches no environment. The other checks read what that run wrote."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.ledger import Check
from skewless.models.configuration import Window, Windows
from skewless.settings import Settings
from training.config import PipelineConfig
from training.pipeline import Pipeline, artifact_problems
from training.split import split

# "Falling" and "below the base rate's" by at least this much log loss: a learning rate of
# zero (or 1e-9) moves it by less than 1e-6 over hundreds of rounds.
MIN_LOGLOSS_GAIN = 1e-4


@dataclass(frozen=True)
class CheckConfig:
    feature_tests: list[str] | None  # the user's command (argv), run in `workdir`
    workdir: Path
    sample_days: int  # the end-to-end run's training days (validation and test: half each)
    max_rounds: int


def sample_config(config: PipelineConfig, days: int, max_rounds: int) -> PipelineConfig:
    """The model's own pipeline on the last `days` of its training window and the first
    `days / 2` of its validation and test windows, one trial, at most `max_rounds`."""
    w, half = config.windows, timedelta(days=max(1, days // 2))
    windows = Windows(
        train=Window(start=max(w.train.start, w.train.end - timedelta(days=days)), end=w.train.end),
        validation=Window(
            start=w.validation.start, end=min(w.validation.end, w.validation.start + half)
        ),
        test=Window(start=w.test.start, end=min(w.test.end, w.test.start + half)),
    )
    rounds = min(config.training.max_rounds, max_rounds)
    training = config.training.model_copy(update={"search_budget": 1, "max_rounds": rounds})
    return config.model_copy(update={"windows": windows, "training": training, "as_of": None})


def scratch_settings(settings: Settings, folder: Path) -> Settings:
    """The same repository and model in a folder of their own: its Feast registry and SQLite
    store, its MLflow registry; nothing an environment reads."""
    return settings.model_copy(
        update={
            "state_dir": folder / "state",
            "feast_state": folder / "feast",
            "online_store": "sqlite",
            "registry_uri": None,
            "feast_registry_uri": None,
            "artifact_root": None,
            "namespace": "live",
            "prediction_log": None,
        }
    )


def run_checks(
    settings: Settings,
    config: PipelineConfig,
    checks: CheckConfig,
    progress: Callable[[str], None] = print,
) -> list[Check]:
    results = [feature_tests(checks, progress)]
    folder = Path(tempfile.mkdtemp(prefix="skewless-release-"))
    try:
        run_dir, e2e = end_to_end(settings, config, checks, folder, progress)
        results.append(e2e)
        sample = sample_config(config, checks.sample_days, checks.max_rounds)
        results.append(_timed("training_converges", lambda: converges(run_dir, sample)))
        results.append(
            _timed("finite_features", lambda: finite_features(run_dir, sample, settings, folder))
        )
        results.append(_timed("artifacts_written", lambda: artifacts_written(run_dir)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for check in results:
        progress(f"  {'pass' if check.passed else 'FAIL'}  {check.name}: {check.evidence}")
    return results


def _timed(name: str, body: Callable[[], Check]) -> Check:
    """A check's verdict with its time; a check that could not run (the run it reads is
    missing or malformed) fails with the reason, and the build is still recorded."""
    started = time.perf_counter()
    try:
        check = body()
    except Exception as exc:  # the check's verdict, not the build's crash
        first = (str(exc).strip().splitlines() or [""])[0]
        check = Check(name, False, f"could not check: {type(exc).__name__}: {first}")
    return Check(check.name, check.passed, check.evidence, time.perf_counter() - started)


def feature_tests(checks: CheckConfig, progress: Callable[[str], None]) -> Check:
    name = "feature_tests"
    if not checks.feature_tests:
        return Check(name, True, "no command configured (release.feature_tests): not run")
    progress(f"feature tests: {' '.join(checks.feature_tests)}")
    started = time.perf_counter()
    try:
        done = subprocess.run(
            checks.feature_tests, cwd=checks.workdir, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        return Check(name, False, f"could not run {checks.feature_tests[0]!r}: {exc}")
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    last = said[-1].strip() if said else "no output"
    return Check(
        name, done.returncode == 0, f"exit {done.returncode}: {last}", time.perf_counter() - started
    )


def end_to_end(
    settings: Settings,
    config: PipelineConfig,
    checks: CheckConfig,
    folder: Path,
    progress: Callable[[str], None],
) -> tuple[Path, Check]:
    """Apply the repository to a scratch registry and run the whole pipeline on the sample."""
    name, started = "end_to_end_run", time.perf_counter()
    scratch = scratch_settings(settings, folder)
    sample = sample_config(config, checks.sample_days, checks.max_rounds)
    pipeline: Pipeline | None = None
    try:
        progress("end-to-end run: feast apply to a scratch registry, then the pipeline")
        feature_store.apply(scratch)
        pipeline = Pipeline(scratch, sample, progress=lambda line: progress(f"  {line}"))
        result = pipeline.run()
    except Exception as exc:  # any failure of the run is the check's verdict
        run_dir = _last_run(scratch) or folder
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return run_dir, Check(
            name, False, f"{type(exc).__name__}: {first}", time.perf_counter() - started
        )
    auc = result.evaluation.get("candidate", {}).get("overall", {}).get("roc_auc")
    verdict = "blessed" if result.blessed else "not blessed (a sample: reported, not required)"
    evidence = (
        f"{sum(len(p) for p in _parts(result.run_dir))} rows, every step done, version "
        f"{result.version} {verdict}" + (f", test ROC AUC {auc:.3f}" if auc is not None else "")
    )
    return result.run_dir, Check(name, True, evidence, time.perf_counter() - started)


def _last_run(settings: Settings) -> Path | None:
    runs = sorted((settings.state_dir / "runs").glob("*/"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def _parts(run_dir: Path) -> list[pd.DataFrame]:
    names = ("train.parquet", "validation.parquet", "test.parquet")
    return [pd.read_parquet(run_dir / n) for n in names if (run_dir / n).is_file()]


def _logloss(labels: np.ndarray, p: float) -> float:
    p = min(max(p, 1e-15), 1 - 1e-15)
    return float(-np.mean(labels * math.log(p) + (1 - labels) * math.log(1 - p)))


def converges(run_dir: Path, config: PipelineConfig) -> Check:
    """The run's training history against its own labels (`convergence`)."""
    if not (run_dir / "training.json").is_file():
        return Check("training_converges", False, "no training.json: training did not finish")
    history = json.loads((run_dir / "training.json").read_text())["validation_logloss"]
    train = pd.read_parquet(run_dir / "train.parquet", columns=[config.label])
    validation = pd.read_parquet(run_dir / "validation.parquet", columns=[config.label])
    return convergence(history, train[config.label].to_numpy(), validation[config.label].to_numpy())


def convergence(history: list[float], train_labels: np.ndarray, labels: np.ndarray) -> Check:
    """Validation log loss below the base rate's (the training label rate as the only
    prediction) and falling over the rounds."""
    base = _logloss(labels, float(np.mean(train_labels)))
    best = min(history)
    at = history.index(best) + 1
    passed = bool(best < base - MIN_LOGLOSS_GAIN and best < history[0] - MIN_LOGLOSS_GAIN)
    return Check(
        "training_converges",
        passed,
        f"validation log loss {best:.4f} at round {at} of {len(history)} (round 1: "
        f"{history[0]:.4f}); the base rate's {base:.4f}",
    )


def finite_features(
    run_dir: Path, config: PipelineConfig, settings: Settings, folder: Path
) -> Check:
    """The run's extract, by the feature service's features (`finite`)."""
    if not (run_dir / "dataset.parquet").is_file():
        return Check("finite_features", False, "no dataset.parquet: the extract did not finish")
    store = feature_store.open_store(scratch_settings(settings, folder))
    features = list(service_schema(store, config.feature_service).features)
    return finite(pd.read_parquet(run_dir / "dataset.parquet"), features, config)


def finite(dataset: pd.DataFrame, features: list[str], config: PipelineConfig) -> Check:
    """No ±infinity in any feature, and in the newest (test) window no feature missing more
    often than in training by more than the pipeline's own margin
    (`validation.max_null_increase`; its `null_exempt` features excepted)."""
    present = [f for f in features if f in dataset]
    numeric = [f for f in present if pd.api.types.is_numeric_dtype(dataset[f])]
    infinite = {
        f: int(np.isinf(dataset[f].to_numpy(dtype="float64", na_value=np.nan)).sum())
        for f in numeric
    }
    problems = [f"{f}: {n} infinite value(s)" for f, n in infinite.items() if n]
    parts = split(dataset, config.windows)
    margin = config.validation.max_null_increase
    for feature in present:
        if feature in config.validation.null_exempt:
            continue
        trained, newest = parts.train[feature].isna().mean(), parts.test[feature].isna().mean()
        if newest > trained + margin:
            problems.append(
                f"{feature}: missing in {newest:.0%} of the newest rows vs {trained:.0%}"
            )
    if problems:
        return Check("finite_features", False, "; ".join(problems))
    return Check(
        "finite_features",
        True,
        f"{len(present)} features, {len(dataset):,} rows: no infinity; missing shares within "
        f"{margin:.0%} of training's",
    )


def artifacts_written(run_dir: Path) -> Check:
    problems = artifact_problems(run_dir)
    if problems:
        return Check("artifacts_written", False, "; ".join(problems))
    return Check(
        "artifacts_written", True, "every step recorded and wrote the artifacts it declares"
    )
