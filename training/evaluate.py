"""Step 5, evaluate on the test window: overall, per segment, calibration; and the baseline
(the historical label rate per `baseline_by` group, learned on the train window)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from skewless.quality.metrics import calibration, metrics


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
