"""The HTML report: one self-contained page (inline SVG plots, inline CSS, no script) built
from the JSON result alone, so that the page and the result can never disagree."""

from __future__ import annotations

from html import escape

from skewless.quality.monitoring_result import MonitoringResult, Paired, VersionResult

from . import plots
from .html_parts import CSS, cell, figure, percent, table

HOW_TO_READ = """
<p>Each model version that served predictions in the period is compared with <b>its own</b>
reference, registered with it by the training pipeline: the train window's feature
distributions, the model's feature importance, the test window's scores and quality.</p>
<ul>
<li><b>Data drift</b>: a numeric feature drifted when its Kolmogorov-Smirnov distance to
training exceeds the threshold, a categorical one when its PSI does (and, on small windows,
when the distance is beyond chance for the window's size). Drift alone is not an alarm: it
alerts only when the drifted features together carry enough of the model's importance.
Seasonal drift in a feature the model barely uses shows here, and does not page anybody.</li>
<li><b>Prediction drift</b>: served scores against the test window's scores.</li>
<li><b>Performance</b>: on the predictions whose labels were known by the monitoring time;
the number of labelled predictions stands beside every figure.</li>
<li><b>Skew</b>: a sample of served predictions recomputed offline, value by value.</li>
</ul>
"""


def _version(v: VersionResult) -> str:
    parts = [f"<h2>Version {escape(v.version)}</h2>"]
    served = ", ".join(f"{n:,} as {escape(k)}" for k, n in v.served_by.items())
    labels = v.labels
    parts.append(
        f"<p>{v.rows:,} predictions ({served}) from {escape(v.first[:16])} to "
        f"{escape(v.last[:16])}. Reference: {v.reference.train_rows:,} training rows, "
        f"{v.reference.test_rows:,} test-window scores.</p>"
    )
    if v.alerts:
        items = "".join(
            f"<li><b>{escape(a.condition)}</b>: {escape(a.message)}</li>" for a in v.alerts
        )
        parts.append(f'<div class="alert"><b>Alerts</b><ul>{items}</ul></div>')
    else:
        parts.append('<div class="ok">No alert condition holds for this version.</div>')

    parts.append("<h3>Labels</h3>")
    parts.append(
        f"<p>{labels.labelled:,} of {v.rows:,} predictions labelled "
        f"({percent(labels.coverage)}); label delay median "
        f"{cell(labels.delay_hours_median, 1)} h, 90th percentile "
        f"{cell(labels.delay_hours_p90, 1)} h.</p>"
    )
    perf, test = v.performance.overall, v.reference.test_metrics
    parts.append("<h3>Performance</h3>")
    names = ["roc_auc", "log_loss", "brier", "ece", "positive_rate"]
    parts.append(
        table(
            ["", "labelled", *names],
            [
                ["served", f"{int(perf.rows or 0):,}", *[cell(getattr(perf, n)) for n in names]],
                [
                    "test window",
                    f"{int(test.get('rows') or 0):,}",
                    *[cell(test.get(n)) for n in names],
                ],
            ],
        )
    )
    if v.windows:
        parts.append(
            figure(
                plots.performance_over_time(v.windows, test.get("roc_auc")),
                "ROC AUC and expected calibration error per window (labelled predictions only).",
            )
        )
        parts.append(
            figure(
                plots.labels_over_time(v.windows),
                "Share of each window's predictions whose label was known.",
            )
        )
    for segment, groups in v.performance.segments.items():
        shown = groups[:15]
        parts.append(f"<h4>Per {escape(segment)}</h4>")
        parts.append(
            table(
                [
                    segment,
                    "predictions",
                    "labelled",
                    "mean score",
                    "positive rate",
                    "roc_auc",
                    "log_loss",
                    "ece",
                ],
                [
                    [
                        escape(g.value),
                        f"{g.predictions:,}",
                        f"{int(g.rows or 0):,}",
                        cell(g.mean_score),
                        cell(g.positive_rate),
                        cell(g.roc_auc),
                        cell(g.log_loss),
                        cell(g.ece),
                    ]
                    for g in shown
                ],
            )
        )
        if len(groups) > len(shown):
            hidden = len(groups) - len(shown)
            parts.append(f"<p class='muted'>{hidden} smaller groups in the JSON result.</p>")

    scores = v.prediction_drift
    parts.append("<h3>Prediction drift</h3>")
    parts.append(
        f"<p>KS distance to the test window's scores {cell(scores.ks)}, PSI {cell(scores.psi)}; "
        f"mean served score {cell(scores.mean_score)}.</p>"
    )
    parts.append(figure(plots.scores(scores.histogram), "Served scores against the test window's."))

    drift = v.drift
    parts.append("<h3>Data drift</h3>")
    named = ", ".join(escape(f) for f in drift.drifted) or "none"
    parts.append(
        f"<p>Drifted over the whole period: {named}; together {drift.drifted_importance:.0%} of "
        "the model's importance.</p>"
    )
    if v.windows:
        importance = {d.feature: d.importance for d in drift.features}
        parts.append(
            figure(
                plots.drift_over_time(v.windows, importance),
                "Each cell: a window's distance to training divided by its threshold.",
            )
        )
    if v.distributions:
        parts.append(
            figure(
                plots.distributions(v.distributions),
                "Training (grey bars) against served (blue), the most drifted features first.",
            )
        )
    rows, classes = [], []
    for d in sorted(drift.features, key=lambda d: -d.importance):
        verdict = {True: "drifted", False: "", None: '<span class="muted">too few rows</span>'}[
            d.drifted
        ]
        rows.append(
            [
                escape(d.feature),
                d.kind,
                percent(d.importance),
                d.statistic,
                cell(d.value),
                cell(d.threshold),
                cell(d.psi),
                percent(d.missing_rate),
                percent(d.reference_missing_rate),
                percent(d.unknown_rate),
                verdict,
            ]
        )
        classes.append("drifted" if d.drifted else "")
    parts.append(
        table(
            [
                "feature",
                "kind",
                "importance",
                "statistic",
                "distance",
                "threshold",
                "PSI",
                "missing",
                "missing in training",
                "unknown categories",
                "verdict",
            ],
            rows,
            left=2,
            classes=classes,
        )
    )
    skew = v.skew
    parts.append("<h3>Training-serving skew (sample)</h3>")
    if skew is None:
        parts.append("<p class='muted'>Not run (skew_sample: 0).</p>")
    else:
        state = "passed" if skew.passed else "FAILED"
        differing = (
            ", ".join(f"{escape(f.feature)} ({f.share:.1%})" for f in skew.features) or "none"
        )
        parts.append(
            f"<p>{skew.rows} served predictions recomputed offline: {state}. Features that "
            f"differ: {differing}; scores that differ: {skew.score_mismatches}.</p>"
        )
    return "\n".join(parts)


def _paired(pairs: list[Paired]) -> str:
    if not pairs:
        return ""
    names = ["roc_auc", "log_loss", "brier", "ece"]
    rows = []
    for p in pairs:
        sides = (("served", p.served, p.served_metrics), ("shadow", p.shadow, p.shadow_metrics))
        for side, version, figures in sides:
            rows.append(
                [
                    f"v{escape(version)} ({side})",
                    f"{p.rows:,}",
                    f"{p.labelled:,}",
                    *[cell(getattr(figures, n)) for n in names],
                    cell(p.score_ks),
                ]
            )
    paired = table(["version", "same requests", "labelled", *names, "score KS"], rows)
    return (
        "<h2>Two versions on the same requests</h2><p>Where a canary had the champion score "
        "the challenger's requests too (or in shadow mode), both versions' quality on exactly "
        f"the same labelled rows: only the models differ.</p>{paired}"
    )


def render(result: MonitoringResult) -> str:
    alerts = result.alerts
    status = (
        f'<div class="alert"><b>{len(alerts)} alert(s)</b>: '
        + "; ".join(escape(f"v{a.version} {a.condition}") for a in alerts)
        + "</div>"
        if alerts
        else '<div class="ok">No alert condition holds.</div>'
    )
    body = "\n".join(_version(v) for v in result.versions) + _paired(result.paired)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>skewless monitoring: {escape(result.model)}</title>
<style>{CSS}</style></head>
<body>
<h1>Monitoring: {escape(result.model)}</h1>
<p>{result.predictions:,} predictions made from {escape(result.since[:16])} to
{escape(result.until[:16])} (labels known by then), in windows of one
{escape(result.window)}. Monitored at {escape(result.monitored_at[:19])} UTC from
<code>{escape(result.prediction_log)}</code>.</p>
{status}
<details><summary>How to read this report</summary>{HOW_TO_READ}</details>
{body}
</body></html>
"""
