"""Step 5, evaluate on the test window: overall, per segment, calibration; and the baseline
(the historical label rate per `baseline_by` group, learned on the train window)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    both = len(np.unique(labels)) == 2
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    return {
        "rows": float(len(labels)),
        "positive_rate": float(np.mean(labels)) if len(labels) else None,
        "roc_auc": float(roc_auc_score(labels, scores)) if both else None,
        "pr_auc": float(average_precision_score(labels, scores)) if both else None,
        "log_loss": float(log_loss(labels, clipped, labels=[0, 1])) if len(labels) else None,
        "brier": float(brier_score_loss(labels, scores)) if len(labels) else None,
    }


def calibration(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> dict[str, Any]:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges) - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean_score, rate = float(scores[mask].mean()), float(labels[mask].mean())
            ece += mask.mean() * abs(mean_score - rate)
            table.append(
                {"bin": b, "rows": int(mask.sum()), "mean_score": mean_score, "positive_rate": rate}
            )
    return {"expected_calibration_error": float(ece), "bins": table}


def evaluate(
    test_rows: pd.DataFrame, scores: np.ndarray, label: str, segments: list[str]
) -> dict[str, Any]:
    labels = test_rows[label].to_numpy()
    per_segment: dict[str, dict[str, dict[str, float | None]]] = {}
    for column in segments:
        per_segment[column] = {}
        for value, index in test_rows.groupby(column, dropna=False).indices.items():
            per_segment[column][str(value)] = metrics(labels[index], scores[index])
    return {
        "overall": metrics(labels, scores),
        "calibration": calibration(labels, scores),
        "segments": per_segment,
    }


def baseline_scores(
    train_rows: pd.DataFrame, test_rows: pd.DataFrame, label: str, by: list[str]
) -> np.ndarray:
    """Historical rate per group on the train window; the overall rate for unseen groups."""
    overall = float(train_rows[label].mean())
    rates = train_rows.groupby(by, dropna=False)[label].mean().rename("_rate").reset_index()
    joined = test_rows[by].merge(rates, on=by, how="left")
    return joined["_rate"].fillna(overall).to_numpy(dtype="float64")
