"""Steps 4-6 of the pipeline: train, evaluate, bless. Each takes the frames and the model the
steps before handed on and writes its own artifacts (see `context.py`); the logic lives in
`train.py`, `evaluate.py` and `bless.py`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from skewless.features.definitions import feature_definitions
from skewless.features.service import ENTITY_TIMESTAMP, service_schema
from skewless.hashing import sha256_file
from skewless.models.artifacts import LoadedModel, load_model
from skewless.models.contract import ModelContract, derive_features
from skewless.models.encoder import FeatureEncoder
from skewless.quality.reference import REFERENCE_FILE, derive_schema, model_reference

from . import bless as blessing
from .artifacts import read_json, write_json, write_text
from .context import RunFolder, StepContext, StepOutput
from .data_steps import PARTS, Splits
from .evaluate import baseline_scores, evaluate
from .split import Split
from .train import train

TEST_SCORES = "training_test_scores.npy"


def _threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The decision threshold that maximizes F1 on the validation window."""
    candidates = np.linspace(0.05, 0.95, 91)
    f1 = [f1_score(labels, scores >= t, zero_division=0) for t in candidates]
    return float(candidates[int(np.argmax(f1))])


@dataclass(frozen=True)
class Trained(StepOutput):
    parts: Split
    model: LoadedModel  # the written artifact, loaded as the service loads it
    test_scores: np.ndarray  # the in-memory booster's scores on the test rows

    @classmethod
    def load(cls, run: RunFolder, files: dict[str, str]) -> Trained:
        parts = Split(*(run.frame(f"{name}.parquet") for name in PARTS))
        return cls(files, parts, _model(run.path), np.load(run.path / TEST_SCORES))


def _model(run_dir: Path) -> LoadedModel:
    return load_model(run_dir / "model.txt", run_dir / "contract.json", None)


def train_step(context: StepContext, splits: Splits) -> Trained:
    config = context.config
    train_rows, validation_rows = splits.parts.train, splits.parts.validation
    schema = service_schema(context.store, config.feature_service)
    service = context.store.get_feature_service(config.feature_service)
    contract = ModelContract(
        model_name=config.model_name,
        feature_service=config.feature_service,
        feature_service_version=service.tags.get("version", ""),
        label=config.label,
        features=derive_features(train_rows, list(schema.features)),
        definitions=feature_definitions(context.store, config.feature_service),
    )
    model = train(train_rows, validation_rows, contract, config.training)
    # Chosen on validation scores of the model before any refit, which never saw them.
    labels = validation_rows[config.label].to_numpy()
    contract = replace(contract, threshold=_threshold(labels, model.validation_scores))
    context.registry.record_run(
        context.child_run_id,
        params=model.params,
        metrics={"validation_auc": model.validation_auc, "best_iteration": model.best_iteration},
    )
    model_art = write_text(model.booster.model_to_string(), context.path("model.txt"))
    # Scores of the in-memory booster training produced: what the infra check must match.
    test_scores = np.asarray(
        model.booster.predict(FeatureEncoder(contract).matrix(splits.parts.test)), dtype="float64"
    )
    np.save(context.path(TEST_SCORES), test_scores)
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
    files = {
        "model.txt": model_art.sha256,
        "contract.json": contract_art.sha256,
        "training.json": training_art.sha256,
        TEST_SCORES: sha256_file(context.path(TEST_SCORES)),
    }
    return Trained(files, splits.parts, _model(context.run_dir), test_scores)


@dataclass(frozen=True)
class Evaluated(StepOutput):
    evaluation: dict[str, Any]

    @classmethod
    def load(cls, run: RunFolder, files: dict[str, str]) -> Evaluated:
        return cls(files, read_json(run.path / "evaluation.json"))


def evaluate_step(context: StepContext, trained: Trained) -> Evaluated:
    config = context.config
    train_rows, test_rows = trained.parts.train, trained.parts.test
    model = trained.model
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
        seen_until = version.record.fitted_until if version is not None else None
        fair = (
            np.ones(len(test_rows), dtype=bool)
            if seen_until is None
            else (pd.to_datetime(test_rows[ENTITY_TIMESTAMP], utc=True) >= seen_until).to_numpy()
        )
        evaluation["champion_version"] = champion.version
        evaluation["champion_rows"] = {
            "fair": int(fair.sum()),
            "test": len(test_rows),
            "seen_until": None if seen_until is None else seen_until.isoformat(),
        }
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
    # What monitoring compares this version's served traffic with (skewless/quality/reference.py).
    write_json(
        model_reference(
            model.booster,
            scores,
            {
                **evaluation["candidate"]["overall"],
                "ece": evaluation["candidate"]["calibration"]["expected_calibration_error"],
            },
            derive_schema(test_rows, model.contract.feature_names),
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
    def load(cls, run: RunFolder, files: dict[str, str]) -> Blessed:
        return cls(files, read_json(run.path / "verdict.json"))


def bless_step(context: StepContext, trained: Trained, evaluated: Evaluated) -> Blessed:
    cfg, ev = context.config.blessing, evaluated.evaluation
    test_rows = trained.parts.test
    sample_index = np.random.default_rng(0).choice(
        len(test_rows), min(cfg.infra_sample_rows, len(test_rows)), replace=False
    )
    expected = trained.test_scores[sample_index]
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
    context.registry.record_run(
        context.child_run_id,
        tags={f"check.{c.name}": f"{'PASS' if c.passed else 'FAIL'}: {c.detail}" for c in checks},
    )
    art = write_json(verdict, context.path("verdict.json"))
    return Blessed({"verdict.json": art.sha256}, verdict)
