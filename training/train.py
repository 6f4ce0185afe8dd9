"""Step 4, train: LightGBM, seeded and deterministic, early stopping on the validation window,
a small bounded hyperparameter search (the first trial is the configured parameters)."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from skewless.models.contract import ModelContract
from skewless.models.encoder import FeatureEncoder, categorical_columns

from .config import Training


@dataclass(frozen=True)
class TrainedModel:
    booster: lgb.Booster
    params: dict[str, Any]
    best_iteration: int
    validation_auc: float  # of the chosen trial, before any refit on train + validation
    trials: list[dict[str, Any]]
    history: list[float]  # validation log loss per round of the chosen trial
    validation_scores: np.ndarray  # of the chosen trial, before any refit


def _base_params(config: Training) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.num_threads,
        "verbosity": -1,
        **config.params,
    }


def candidate_params(config: Training) -> list[dict[str, Any]]:
    """The configured parameters first, then seeded draws from the search space."""
    base = _base_params(config)
    grid = [
        dict(zip(config.search_space, values, strict=True))
        for values in itertools.product(*config.search_space.values())
    ]
    random.Random(config.seed).shuffle(grid)
    trials = [base] + [{**base, **point} for point in grid]
    unique = []
    for trial in trials:
        if trial not in unique:
            unique.append(trial)
    return unique[: config.search_budget]


def train(
    train_rows: pd.DataFrame,
    validation_rows: pd.DataFrame,
    contract: ModelContract,
    config: Training,
) -> TrainedModel:
    encoder = FeatureEncoder(contract)
    x_train, y_train = encoder.matrix(train_rows), train_rows[contract.label]
    x_val, y_val = encoder.matrix(validation_rows), validation_rows[contract.label]
    best: TrainedModel | None = None
    trials: list[dict[str, Any]] = []
    for params in candidate_params(config):
        history: dict[str, Any] = {}
        booster = lgb.train(
            params,
            lgb.Dataset(
                x_train,
                y_train,
                feature_name=contract.feature_names,
                categorical_feature=categorical_columns(contract),
                free_raw_data=False,
            ),
            num_boost_round=config.max_rounds,
            valid_sets=[
                lgb.Dataset(
                    x_val,
                    y_val,
                    feature_name=contract.feature_names,
                    categorical_feature=categorical_columns(contract),
                )
            ],
            valid_names=["validation"],
            callbacks=[
                lgb.early_stopping(config.early_stopping_rounds, verbose=False),
                lgb.record_evaluation(history),
            ],
        )
        val_scores = booster.predict(x_val, num_iteration=booster.best_iteration)
        auc = float(roc_auc_score(y_val, val_scores))
        trials.append(
            {
                "params": {k: params[k] for k in sorted(params)},
                "validation_auc": auc,
                "best_iteration": booster.best_iteration,
            }
        )
        if best is None or auc > best.validation_auc:
            best = TrainedModel(
                booster,
                params,
                booster.best_iteration,
                auc,
                [],
                list(history["validation"]["binary_logloss"]),
                np.asarray(val_scores),
            )
    assert best is not None
    if config.refit_on_validation:
        both = lgb.Dataset(
            np.vstack([x_train, x_val]),
            pd.concat([y_train, y_val]),
            feature_name=contract.feature_names,
            categorical_feature=categorical_columns(contract),
        )
        final = lgb.train(best.params, both, num_boost_round=best.best_iteration)
    else:
        # Keep only the rounds early stopping chose, so the saved model is what was validated.
        final = lgb.Booster(
            model_str=best.booster.model_to_string(num_iteration=best.best_iteration)
        )
    return TrainedModel(
        final,
        best.params,
        best.best_iteration,
        best.validation_auc,
        trials,
        best.history,
        best.validation_scores,
    )
