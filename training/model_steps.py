"""Steps 4-6 of the pipeline: train, evaluate, bless. Each reads the run folder's artifacts
and writes its own (see `context.py`); the logic lives in `train.py`, `evaluate.py` and
`bless.py`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from skewless.features import ENTITY_TIMESTAMP, service_schema
from skewless.hashing import sha256_file
from skewless.model_artifacts import load_model
from skewless.model_contract import ModelContract, derive_features, feature_matrix
from skewless.reference import REFERENCE_FILE, derive_schema, model_reference
from skewless.registry import trained_until

from . import bless as blessing
from .artifacts import read_json, write_json, write_text
from .context import StepContext, StepOutput
from .evaluate import baseline_scores, evaluate
from .train import train


def _threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The decision threshold that maximizes F1 on the validation window."""
    candidates = np.linspace(0.05, 0.95, 91)
    f1 = [f1_score(labels, scores >= t, zero_division=0) for t in candidates]
    return float(candidates[int(np.argmax(f1))])


def train_step(context: StepContext, split: StepOutput) -> StepOutput:
    config = context.config
    train_rows = pd.read_parquet(context.path("train.parquet"))
    validation_rows = pd.read_parquet(context.path("validation.parquet"))
    schema = service_schema(context.store, config.feature_service)
    service = context.store.get_feature_service(config.feature_service)
    contract = ModelContract(
        model_name=config.model_name,
        feature_service=config.feature_service,
        feature_service_version=service.tags.get("version", ""),
        label=config.label,
        features=derive_features(train_rows, list(schema.features)),
    )
    model = train(train_rows, validation_rows, contract, config.training)
    # Chosen on validation scores of the model before any refit, which never saw them.
    labels = validation_rows[config.label].to_numpy()
    contract = replace(contract, threshold=_threshold(labels, model.validation_scores))
    client = context.registry.client
    for k, v in model.params.items():
        client.log_param(context.child_run_id, k, v)
    context.log_metric("validation_auc", model.validation_auc)
    context.log_metric("best_iteration", model.best_iteration)
    model_art = write_text(model.booster.model_to_string(), context.path("model.txt"))
    # Scores of the in-memory booster training produced: what the infra check must match.
    test_rows = pd.read_parquet(context.path("test.parquet"))
    np.save(
        context.path("training_test_scores.npy"),
        model.booster.predict(feature_matrix(test_rows, contract)),
    )
    contract_art = write_text(contract.to_json(), context.path("contract.json"))
    training_art = write_json(
        {
            "params": model.params,
            "trials": model.trials,
            "validation_auc": model.validation_auc,
            "best_iteration": model.best_iteration,
            "validation_logloss": model.history,
        },
        context.path("training.json"),
    )
    return StepOutput(
        {
            "model.txt": model_art.sha256,
            "contract.json": contract_art.sha256,
            "training.json": training_art.sha256,
            "training_test_scores.npy": sha256_file(context.path("training_test_scores.npy")),
        }
    )


@dataclass(frozen=True)
class Evaluated(StepOutput):
    evaluation: dict[str, Any]

    @classmethod
    def load(cls, run_dir: Path, files: dict[str, str]) -> Evaluated:
        return cls(files, read_json(run_dir / "evaluation.json"))


def evaluate_step(context: StepContext, trained: StepOutput) -> Evaluated:
    config = context.config
    train_rows = pd.read_parquet(context.path("train.parquet"))
    test_rows = pd.read_parquet(context.path("test.parquet")).reset_index(drop=True)
    model = load_model(context.path("model.txt"), context.path("contract.json"), None)
    scores = model.score(test_rows)
    evaluation: dict[str, Any] = {
        "candidate": evaluate(test_rows, scores, config.label, config.segments),
        "baseline": evaluate(
            test_rows,
            baseline_scores(train_rows, test_rows, config.label, config.baseline_by),
            config.label,
            config.segments,
        ),
        "champion": None,
    }
    version = context.champion_version()  # read once: the alias may move meanwhile
    champion = context.champion(version)
    if champion is not None:
        theirs = load_model(
            champion.artifacts / "model.txt", champion.artifacts / "contract.json", champion.sha256
        )
        # Judged only where neither learned: a rolling retrain's test window can overlap the
        # champion's own training data, where the champion looks better than it is.
        seen_until = trained_until(version.tags) if version is not None else None
        fair = (
            np.ones(len(test_rows), dtype=bool)
            if seen_until is None
            else (pd.to_datetime(test_rows[ENTITY_TIMESTAMP], utc=True) >= seen_until).to_numpy()
        )
        evaluation["champion_version"] = champion.version
        evaluation["champion_rows"] = {"fair": int(fair.sum()), "test": len(test_rows),
                                       "seen_until": None if seen_until is None
                                       else seen_until.isoformat()}  # fmt: skip
        if fair.all() or fair.sum() >= config.blessing.champion_min_rows:
            rows = test_rows[fair].reset_index(drop=True)
            evaluation["champion"] = evaluate(
                rows, theirs.score(rows), config.label, config.segments
            )
            evaluation["candidate_vs_champion"] = (
                evaluation["candidate"]
                if fair.all()
                else evaluate(rows, scores[fair], config.label, config.segments)
            )
    np.save(context.path("test_scores.npy"), scores)
    # What monitoring compares this version's served traffic with (skewless/reference.py).
    write_json(
        model_reference(
            model.booster,
            scores,
            {
                **evaluation["candidate"]["overall"],
                "ece": evaluation["candidate"]["calibration"]["expected_calibration_error"],
            },
            derive_schema(test_rows, list(read_json(context.path("schema.json"))["columns"])),
        ),
        context.path(REFERENCE_FILE),
    )
    for name, value in evaluation["candidate"]["overall"].items():
        if value is not None:
            context.log_metric(f"test_{name}", value)
    art = write_json(evaluation, context.path("evaluation.json"))
    files = {
        "evaluation.json": art.sha256,
        "test_scores.npy": sha256_file(context.path("test_scores.npy")),
        REFERENCE_FILE: sha256_file(context.path(REFERENCE_FILE)),
    }
    return Evaluated(files, evaluation)


@dataclass(frozen=True)
class Blessed(StepOutput):
    verdict: dict[str, Any]

    @property
    def blessed(self) -> bool:
        return bool(self.verdict["blessed"])

    @classmethod
    def load(cls, run_dir: Path, files: dict[str, str]) -> Blessed:
        return cls(files, read_json(run_dir / "verdict.json"))


def bless_step(context: StepContext, evaluated: Evaluated) -> Blessed:
    cfg, ev = context.config.blessing, evaluated.evaluation
    test_rows = pd.read_parquet(context.path("test.parquet")).reset_index(drop=True)
    sample_index = np.random.default_rng(0).choice(
        len(test_rows), min(cfg.infra_sample_rows, len(test_rows)), replace=False
    )
    expected = np.load(context.path("training_test_scores.npy"))[sample_index]
    checks = [
        blessing.compare_to_baseline(ev["candidate"], ev["baseline"], cfg),
        *blessing.compare_to_champion(
            ev.get("candidate_vs_champion", ev["candidate"]),
            ev.get("champion"),
            cfg,
            ev.get("champion_rows"),
        ),
        blessing.infra_check(
            context.path("model.txt"),
            context.path("contract.json"),
            sha256_file(context.path("model.txt")),
            test_rows.iloc[sample_index],
            expected,
            context.run_dir,
            cfg,
        ),
    ]
    verdict = blessing.verdict(checks)
    for check in checks:
        context.registry.client.set_tag(
            context.child_run_id,
            f"check.{check.name}",
            f"{'PASS' if check.passed else 'FAIL'}: {check.detail}",
        )
    art = write_json(verdict, context.path("verdict.json"))
    return Blessed({"verdict.json": art.sha256}, verdict)
