"""The backtest's result: each policy's accuracy per month and its retrains, as a table
(markdown) and a plot (SVG)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skewless.features.outcomes import LABEL
from skewless.quality.metrics import metrics

from ..analysis import TIME
from .backtest_policies import PolicyRun


def result_of(
    frame: pd.DataFrame,
    runs: list[PolicyRun],
    period: tuple[datetime, datetime],
    base: str,
    seconds: float,
) -> dict[str, Any]:
    """Each policy's ROC AUC per month of the period and its retrains: the backtest's result
    (written as JSON; `markdown` and `plot` read it)."""
    months = pd.to_datetime(frame[TIME]).dt.strftime("%Y-%m")
    labels = frame[LABEL].to_numpy(dtype="float64")
    table = []
    for run in runs:
        monthly = {}
        for month, index in months.groupby(months).indices.items():
            ok = ~np.isnan(labels[index]) & ~np.isnan(run.scores[index])
            monthly[month] = metrics(labels[index][ok], run.scores[index][ok])["roc_auc"]
        values = [v for v in monthly.values() if v is not None]
        table.append(
            {
                "policy": run.name,
                "monthly_auc": monthly,
                "mean_auc": float(np.mean(values)) if values else None,
                "retrains": len(run.retrains),
                "adopted": sum(r["version"] is not None for r in run.retrains),
                "retrain_seconds": float(sum(r["seconds"] for r in run.retrains)),
                "retrain_log": run.retrains,
            }
        )
    return {
        "start": period[0].isoformat(),
        "end": period[1].isoformat(),
        "base_version": base,
        "seconds": seconds,
        "policies": table,
    }


def markdown(result: dict[str, Any]) -> str:
    months = list(result["policies"][0]["monthly_auc"]) if result["policies"] else []
    static = next((p["mean_auc"] for p in result["policies"] if p["policy"] == "static"), None)
    lines = [
        "| policy | "
        + " | ".join(months)
        + " | mean AUC | vs static | retrains (adopted) | retrain time |",
        "|---|" + "---|" * len(months) + "---|---|---|---|",
    ]
    for p in result["policies"]:
        cells = [
            f"{p['monthly_auc'][m]:.4f}" if p["monthly_auc"][m] is not None else "n/a"
            for m in months
        ]
        mean = f"{p['mean_auc']:.4f}" if p["mean_auc"] is not None else "n/a"
        gain = (
            f"{p['mean_auc'] - static:+.4f}"
            if static is not None and p["mean_auc"] is not None
            else "n/a"
        )
        cost = f"{p['retrains']} ({p['adopted']}) | {p['retrain_seconds']:.0f} s"
        lines.append(f"| {p['policy']} | " + " | ".join(cells) + f" | {mean} | {gain} | {cost} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Left: each policy's ROC AUC per month minus the static model's (the months differ far
    more from each other than the policies do). Right: mean gain against retrains spent."""
    from ..plots import svg  # noqa: I001  (first: it selects the file-only backend)

    import matplotlib.pyplot as plt

    policies = result["policies"]
    static = next((p for p in policies if p["policy"] == "static"), None)
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(11, 4.5), layout="constrained", gridspec_kw={"width_ratios": [3, 2]}
    )
    for p in policies:
        months = list(p["monthly_auc"])
        values = np.array([np.nan if v is None else v for v in p["monthly_auc"].values()])
        if static is not None:
            values = values - np.array(
                [np.nan if v is None else v for v in static["monthly_auc"].values()]
            )
        left.plot(months, values, marker="o", label=p["policy"])
        gain = p["mean_auc"] - static["mean_auc"] if static and p["mean_auc"] else np.nan
        right.scatter(p["retrains"], gain)
        right.annotate(
            p["policy"],
            (p["retrains"], gain),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    left.axhline(0, color="grey", linewidth=0.8)
    left.set_ylabel("ROC AUC minus the static model's" if static else "ROC AUC")
    left.set_title("Per month, what each policy served")
    left.legend(fontsize=8, ncols=2)
    right.axhline(0, color="grey", linewidth=0.8)
    right.set_xlabel("retrains over the period")
    right.set_ylabel("mean ROC AUC gain over static")
    right.set_title("What the retrains bought")
    path.write_text(svg(figure))
    return path
