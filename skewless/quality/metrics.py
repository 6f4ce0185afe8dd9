"""Model quality figures on labelled scores: one definition, used by the pipeline's evaluation
(test window) and by monitoring (served predictions once their labels are known)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

# Log loss of a score of exactly 0 or 1 on the wrong label is infinite.
CLIP = 1e-7


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """Rows, positive rate, ROC AUC, PR AUC, log loss and Brier score (None where undefined:
    AUCs need both classes, everything needs a row)."""
    both = len(np.unique(labels)) == 2
    clipped = np.clip(scores, CLIP, 1 - CLIP)
    return {
        "rows": float(len(labels)),
        "positive_rate": float(np.mean(labels)) if len(labels) else None,
        "roc_auc": float(roc_auc_score(labels, scores)) if both else None,
        "pr_auc": float(average_precision_score(labels, scores)) if both else None,
        "log_loss": float(log_loss(labels, clipped, labels=[0, 1])) if len(labels) else None,
        "brier": float(brier_score_loss(labels, scores)) if len(labels) else None,
    }


def calibration(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error over equal-width score bins, and the bins themselves."""
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
