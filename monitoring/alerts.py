"""Which configured alert conditions hold for one version's analysis: each an `Alert` with
its condition's name and a sentence that says what crossed which line; and the skew check's
report as the result records and summarizes it."""

from __future__ import annotations

from skewless.quality.monitoring_result import (
    Alert,
    Drift,
    FeatureDrift,
    Figures,
    Labels,
    PredictionDrift,
    Reference,
    Skew,
    SkewedFeature,
)
from skewless.quality.skew import SkewReport

from .config import MonitoringConfig


def alerts_holding(
    config: MonitoringConfig,
    rows: int,
    reference: Reference,
    labels: Labels,
    summary: Drift,
    prediction_drift: PredictionDrift,
    overall: Figures,
    drift: list[FeatureDrift],
    skew: SkewReport | None,
) -> list[Alert]:
    alerts: list[Alert] = []
    limits = config.alerts

    def alert(condition: str, message: str) -> None:
        alerts.append(Alert(condition=condition, message=message))

    weighted = summary.drifted_importance
    if limits.drifted_importance is not None and weighted >= limits.drifted_importance:
        named = ", ".join(
            f"{d.feature} ({d.statistic} {d.value:.2f}, importance {d.importance:.0%})"
            for d in sorted(drift, key=lambda d: -d.importance)
            if d.drifted
        )
        alert(
            "data_drift",
            f"drifted features carry {weighted:.0%} of the model's importance "
            f"(alert at {limits.drifted_importance:.0%}): {named}",
        )
    ks = prediction_drift.ks
    if limits.prediction_ks is not None and rows >= config.drift.min_rows:
        if ks is not None and ks > limits.prediction_ks:
            alert(
                "prediction_drift",
                f"served scores vs the test window's: KS {ks:.3f} > {limits.prediction_ks}",
            )
    enough = labels.labelled >= limits.min_labelled
    reference_auc = reference.test_metrics.get("roc_auc")
    if enough and limits.auc_drop is not None and overall.roc_auc is not None:
        if reference_auc is not None and overall.roc_auc < reference_auc - limits.auc_drop:
            alert(
                "performance",
                f"ROC AUC {overall.roc_auc:.3f} on {labels.labelled:,} "
                f"labelled predictions vs {reference_auc:.3f} on the test window "
                f"(alert below a drop of {limits.auc_drop})",
            )
    if enough and limits.max_ece is not None and overall.ece is not None:
        if overall.ece > limits.max_ece:
            alert(
                "calibration",
                f"expected calibration error {overall.ece:.3f} > {limits.max_ece}",
            )
    counted = [d for d in drift if d.rows >= config.drift.min_rows]
    if limits.missing_increase is not None:
        for d in counted:
            if d.missing_rate > d.reference_missing_rate + limits.missing_increase:
                alert(
                    "missing_features",
                    f"{d.feature} is missing in {d.missing_rate:.1%} of predictions vs "
                    f"{d.reference_missing_rate:.1%} in training",
                )
    if limits.unknown_category_rate is not None:
        for d in counted:
            if d.unknown_rate is not None and d.unknown_rate > limits.unknown_category_rate:
                alert(
                    "unknown_categories",
                    f"{d.feature}: {d.unknown_rate:.1%} of values are categories the model "
                    "never saw",
                )
    if limits.skew and skew is not None and not skew.passed:
        alert("skew", f"training-serving skew in a sample of {skew.rows}: {skew_summary(skew)}")
    return alerts


def skew_summary(skew: SkewReport) -> str:
    parts = [f"{f.feature} differs in {f.share:.1%}" for f in skew.features[:5]]
    if skew.score_mismatches:
        parts.append(f"{skew.score_mismatches} scores differ (max {skew.max_score_diff:.2g})")
    return "; ".join(parts) or "no differences"


def skew_record(skew: SkewReport) -> Skew:
    return Skew(
        rows=skew.rows,
        passed=skew.passed,
        tolerance=skew.tolerance,
        features=[
            SkewedFeature(
                feature=f.feature,
                rows=f.rows,
                share=f.share,
                example_served=repr(f.example_served),
                example_offline=repr(f.example_offline),
            )
            for f in skew.features
        ],
        score_mismatches=skew.score_mismatches,
        max_score_diff=skew.max_score_diff,
    )
