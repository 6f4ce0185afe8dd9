"""The final summary of a pipeline run: metrics, blessing verdicts, version, aliases."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .pipeline import RunResult


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_summary(console: Console, result: RunResult) -> None:
    evaluation = result.evaluation
    metrics = Table(title=f"test window metrics (run {result.run_id})")
    metrics.add_column("model")
    for name in ("roc_auc", "pr_auc", "log_loss", "brier"):
        metrics.add_column(name)
    rows = evaluation.get("champion_rows") or {}
    subset = bool(rows) and rows.get("fair") != rows.get("test")
    after = f" ({rows.get('fair', 0):,} rows after its data)" if subset else ""
    labels = {
        "candidate_vs_champion": f"candidate{after}",
        "champion": f"champion v{evaluation.get('champion_version')}{after}",
    }
    shown = ["candidate", "baseline", "champion"]
    if subset and evaluation.get("champion"):
        shown.insert(2, "candidate_vs_champion")  # on the same rows as the champion's figures
    for who in shown:
        if evaluation.get(who):
            overall = evaluation[who]["overall"]
            label = labels.get(who, who)
            metrics.add_row(
                label, *(_fmt(overall[m]) for m in ("roc_auc", "pr_auc", "log_loss", "brier"))
            )
    console.print(metrics)
    segments = Table(title="candidate ROC AUC per segment (rows)")
    for column in ("segment", "value", "rows", "roc_auc", "champion roc_auc"):
        segments.add_column(column)
    champion = evaluation.get("champion") or {"segments": {}}
    for column, values in evaluation["candidate"]["segments"].items():
        for value, stats in sorted(values.items(), key=lambda kv: -kv[1]["rows"]):
            theirs = champion["segments"].get(column, {}).get(value, {}).get("roc_auc")
            segments.add_row(
                column, value, f"{stats['rows']:.0f}", _fmt(stats["roc_auc"]), _fmt(theirs)
            )
    console.print(segments)
    verdicts = Table(title="blessing")
    for column in ("check", "verdict", "detail"):
        verdicts.add_column(column)
    for check in result.verdict["checks"]:
        verdicts.add_row(check["name"], "PASS" if check["passed"] else "FAIL", check["detail"])
    console.print(verdicts)
    console.print(
        f"registered version {result.version} "
        f"({'blessed' if result.blessed else 'NOT blessed'}); "
        f"aliases: {', '.join(result.aliases) or 'none'}; "
        "step seconds: "
        + ", ".join(
            f"{k} {v:.1f}" + (" (reused)" if k in result.reused else "")
            for k, v in result.seconds.items()
        )
    )
