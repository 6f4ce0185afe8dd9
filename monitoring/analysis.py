"""What one model version's served predictions say, against that version's own reference:
drift per feature, missing and unknown values, prediction drift, performance once labels are
known, per window of time and per segment; and which configured alert conditions hold.

Pure computation over frames (the prediction log's rows with their labels joined): the I/O
(log, registry, Feast, files) is in `run.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from skewless.errors import BadInput
from skewless.features.outcomes import KNOWN_AT, LABEL
from skewless.models.contract import ModelContract
from skewless.quality.metrics import calibration, metrics
from skewless.quality.monitoring_result import (
    Alert,
    Distribution,
    Drift,
    FeatureDrift,
    Figures,
    Histogram,
    Labels,
    Paired,
    Performance,
    PredictionDrift,
    Reference,
    Segment,
    Skew,
    SkewedFeature,
    VersionResult,
    Window,
)
from skewless.quality.prediction_log import ENTITY, FEATURE, REQUEST
from skewless.quality.skew import SkewReport

from .config import MonitoringConfig, WindowSize
from .drift import feature_drift, numeric_values, score_drift

TIME = "feature_time"  # the moment a prediction was made, in the data's clock


@dataclass(frozen=True)
class VersionReference:
    version: str
    schema: dict[str, Any]  # schema.json: the train window's feature statistics
    reference: dict[str, Any]  # reference.json: importance, test-window scores and quality
    contract: ModelContract

    def against(self, which: str) -> VersionReference:
        """The same version with `recent` (its test window's) feature statistics in place of
        its training window's."""
        if which == "training":
            return self
        recent = self.reference.get("recent_schema")
        if recent is None:
            raise BadInput(
                f"version {self.version} has no recent feature statistics (registered by an "
                "older skewless): compare against `training`, or retrain"
            )
        return replace(self, schema=recent)


def window_start(times: pd.Series, size: WindowSize) -> pd.Series:
    if size == "hour":
        return times.dt.floor("h")
    days = times.dt.floor("D")
    if size == "day":
        return days
    return days - pd.to_timedelta(days.dt.dayofweek, unit="D")  # weeks start on Monday


def _performance(labels: np.ndarray, scores: np.ndarray) -> Figures:
    ece = calibration(labels, scores)["expected_calibration_error"] if len(labels) else None
    return Figures(**metrics(labels, scores), ece=ece)


class VersionAnalysis:
    """Fit-then-calculate: made once per version from its reference, then run on rows."""

    def __init__(self, ref: VersionReference, config: MonitoringConfig) -> None:
        self.ref = ref
        self.config = config
        self.columns = ref.schema["columns"]
        self.reference_rows = int(ref.schema["rows"])
        self.importance: dict[str, float] = ref.reference["importance"]
        self.categories = {
            spec.name: frozenset(spec.categories)
            for spec in ref.contract.features
            if spec.kind == "categorical"
        }
        self.test_quantiles: list[float] = ref.reference["test_scores"]["quantiles"]

    def _drift(self, values: dict[str, Any], index: np.ndarray | slice) -> list[FeatureDrift]:
        result = []
        for name, ref in self.columns.items():
            column = values[name]
            chosen = column[index] if isinstance(column, np.ndarray) else column.iloc[index]
            result.append(
                feature_drift(
                    name,
                    chosen,
                    ref,
                    self.reference_rows,
                    self.importance.get(name, 0.0),
                    self.categories.get(name, frozenset()),
                    self.config.drift,
                )
            )
        return result

    def _values(self, rows: pd.DataFrame) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, ref in self.columns.items():
            column = (
                rows[FEATURE + name] if FEATURE + name in rows else pd.Series([None] * len(rows))
            )
            column = column.reset_index(drop=True)
            values[name] = numeric_values(column) if ref["kind"] == "numeric" else column
        return values

    def drift_summary(self, rows: pd.DataFrame) -> tuple[float, list[str]]:
        """The importance share of the drifted features and their names, most important
        first: what the drift trigger reads, without the rest of `run`."""
        drift = self._drift(self._values(rows.reset_index(drop=True)), slice(None))
        drifted = sorted((d for d in drift if d.drifted), key=lambda d: -d.importance)
        return float(sum(d.importance for d in drifted)), [d.feature for d in drifted]

    def run(
        self, rows: pd.DataFrame, segments: list[str], skew: SkewReport | None
    ) -> VersionResult:
        rows = rows.reset_index(drop=True)
        values = self._values(rows)
        scores = rows["probability"].to_numpy(dtype="float64")
        labelled = rows[LABEL].notna().to_numpy()
        labels = rows[LABEL].to_numpy(dtype="float64")
        drift = self._drift(values, slice(None))
        drifted = [d for d in drift if d.drifted]
        delay_hours = (
            rows.loc[labelled, KNOWN_AT] - rows.loc[labelled, TIME]
        ).dt.total_seconds() / 3600
        reference = Reference(
            train_rows=self.reference_rows,
            test_rows=self.ref.reference["test_scores"]["rows"],
            test_metrics=self.ref.reference["test_metrics"],
        )
        label_summary = Labels(
            labelled=int(labelled.sum()),
            coverage=float(labelled.mean()) if len(rows) else 0.0,
            delay_hours_median=float(delay_hours.median()) if len(delay_hours) else None,
            delay_hours_p90=float(delay_hours.quantile(0.9)) if len(delay_hours) else None,
        )
        drift_summary = Drift(
            features=drift,
            drifted=[d.feature for d in sorted(drifted, key=lambda d: -d.importance)],
            drifted_importance=float(sum(d.importance for d in drifted)),
        )
        prediction_drift = self._prediction_drift(scores)
        overall = _performance(labels[labelled], scores[labelled])
        return VersionResult(
            version=self.ref.version,
            rows=len(rows),
            served_by={str(k): int(v) for k, v in rows["served_by"].value_counts().items()},
            first=rows[TIME].min().isoformat(),
            last=rows[TIME].max().isoformat(),
            reference=reference,
            labels=label_summary,
            drift=drift_summary,
            prediction_drift=prediction_drift,
            distributions=[
                self._distribution(d.feature, values[d.feature])
                for d in _most_drifted(drift, self.config.plotted_features)
            ],
            performance=Performance(
                overall=overall,
                segments=self._segments(rows, segments, labels, scores, labelled),
            ),
            windows=self._windows(rows, values, scores, labels, labelled),
            skew=None if skew is None else _skew_record(skew),
            alerts=self._alerts(
                len(rows),
                reference,
                label_summary,
                drift_summary,
                prediction_drift,
                overall,
                drift,
                skew,
            ),
        )

    def _prediction_drift(self, scores: np.ndarray) -> PredictionDrift:
        figures = score_drift(scores, self.test_quantiles)
        edges = np.linspace(0.0, 1.0, 21)
        return PredictionDrift(
            ks=figures["ks"],
            psi=figures["psi"],
            mean_score=float(scores.mean()) if len(scores) else None,
            test_median_score=self.test_quantiles[50],
            histogram=Histogram(
                edges=edges.tolist(),
                reference=_shares_from_quantiles(self.test_quantiles, edges).tolist(),
                current=_shares(scores, edges).tolist(),
            ),
        )

    def _distribution(self, name: str, values: Any) -> Distribution:
        """Reference vs current shares of one feature, for the report's plots: 20 equal bins
        between the reference's 1st and 99th percentiles, or the most common categories."""
        ref = self.columns[name]
        if ref["kind"] == "numeric":
            q = ref["quantiles"]
            low, high = (q[1], q[99]) if q and q[99] > q[1] else ((q[0], q[0] + 1) if q else (0, 1))
            edges = np.linspace(low, high, 21)
            present = values[~np.isnan(values)]
            return Distribution(
                feature=name,
                kind="numeric",
                edges=edges.tolist(),
                reference=_shares_from_quantiles(q, edges).tolist(),
                current=_shares(present, edges).tolist(),
            )
        current = values.dropna().astype(str).value_counts(normalize=True)
        reference = pd.Series(ref["frequencies"], dtype="float64")
        top = (reference.add(current, fill_value=0)).sort_values(ascending=False).index[:12]
        return Distribution(
            feature=name,
            kind="categorical",
            categories=[str(c) for c in top],
            reference=[float(reference.get(c, 0.0)) for c in top],
            current=[float(current.get(c, 0.0)) for c in top],
        )

    def _segments(
        self,
        rows: pd.DataFrame,
        segments: list[str],
        labels: np.ndarray,
        scores: np.ndarray,
        labelled: np.ndarray,
    ) -> dict[str, list[Segment]]:
        result: dict[str, list[Segment]] = {}
        for segment in segments:
            column = next(
                (p + segment for p in (ENTITY, REQUEST, FEATURE) if p + segment in rows), None
            )
            if column is None:
                continue
            groups = []
            for value, index in rows.groupby(column, dropna=False).indices.items():
                mask = labelled[index]
                figures = _performance(labels[index][mask], scores[index][mask])
                groups.append(
                    Segment(
                        value=str(value),
                        predictions=len(index),
                        mean_score=float(scores[index].mean()),
                        **figures.model_dump(),
                    )
                )
            result[segment] = sorted(groups, key=lambda g: -g.predictions)
        return result

    def _windows(
        self,
        rows: pd.DataFrame,
        values: dict[str, Any],
        scores: np.ndarray,
        labels: np.ndarray,
        labelled: np.ndarray,
    ) -> list[Window]:
        starts = window_start(rows[TIME], self.config.window)
        windows = []
        for start, index in sorted(rows.groupby(starts).indices.items()):
            drift = self._drift(values, index)
            mask = labelled[index]
            figures = _performance(labels[index][mask], scores[index][mask])
            windows.append(
                Window(
                    start=pd.Timestamp(start).isoformat(),
                    rows=len(index),
                    labelled=int(mask.sum()),
                    mean_score=float(scores[index].mean()),
                    prediction_ks=score_drift(scores[index], self.test_quantiles)["ks"],
                    **figures.model_dump(
                        include={"roc_auc", "log_loss", "brier", "ece", "positive_rate"}
                    ),
                    drifted=[d.feature for d in drift if d.drifted],
                    drifted_importance=float(sum(d.importance for d in drift if d.drifted)),
                    # distance / threshold per feature: the over-time drift picture
                    drift_ratio={
                        d.feature: None if d.drifted is None else _ratio(d) for d in drift
                    },
                )
            )
        return windows

    def _alerts(
        self,
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
        cfg = self.config.alerts

        def alert(condition: str, message: str) -> None:
            alerts.append(Alert(condition=condition, message=message))

        weighted = summary.drifted_importance
        if cfg.drifted_importance is not None and weighted >= cfg.drifted_importance:
            named = ", ".join(
                f"{d.feature} ({d.statistic} {d.value:.2f}, importance {d.importance:.0%})"
                for d in sorted(drift, key=lambda d: -d.importance)
                if d.drifted
            )
            alert(
                "data_drift",
                f"drifted features carry {weighted:.0%} of the model's importance "
                f"(alert at {cfg.drifted_importance:.0%}): {named}",
            )
        ks = prediction_drift.ks
        if cfg.prediction_ks is not None and rows >= self.config.drift.min_rows:
            if ks is not None and ks > cfg.prediction_ks:
                alert(
                    "prediction_drift",
                    f"served scores vs the test window's: KS {ks:.3f} > {cfg.prediction_ks}",
                )
        enough = labels.labelled >= cfg.min_labelled
        reference_auc = reference.test_metrics.get("roc_auc")
        if enough and cfg.auc_drop is not None and overall.roc_auc is not None:
            if reference_auc is not None and overall.roc_auc < reference_auc - cfg.auc_drop:
                alert(
                    "performance",
                    f"ROC AUC {overall.roc_auc:.3f} on {labels.labelled:,} "
                    f"labelled predictions vs {reference_auc:.3f} on the test window "
                    f"(alert below a drop of {cfg.auc_drop})",
                )
        if enough and cfg.max_ece is not None and overall.ece is not None:
            if overall.ece > cfg.max_ece:
                alert(
                    "calibration",
                    f"expected calibration error {overall.ece:.3f} > {cfg.max_ece}",
                )
        counted = [d for d in drift if d.rows >= self.config.drift.min_rows]
        if cfg.missing_increase is not None:
            for d in counted:
                if d.missing_rate > d.reference_missing_rate + cfg.missing_increase:
                    alert(
                        "missing_features",
                        f"{d.feature} is missing in {d.missing_rate:.1%} of predictions vs "
                        f"{d.reference_missing_rate:.1%} in training",
                    )
        if cfg.unknown_category_rate is not None:
            for d in counted:
                if d.unknown_rate is not None and d.unknown_rate > cfg.unknown_category_rate:
                    alert(
                        "unknown_categories",
                        f"{d.feature}: {d.unknown_rate:.1%} of values are categories the model "
                        "never saw",
                    )
        if cfg.skew and skew is not None and not skew.passed:
            alert(
                "skew", f"training-serving skew in a sample of {skew.rows}: {_skew_summary(skew)}"
            )
        return alerts


def paired_comparison(rows: pd.DataFrame) -> list[Paired]:
    """Two versions on the same requests: a served prediction and a shadow score of another
    version for the same `request_id` (a canary, where the champion also scores the
    challenger's rows; or shadow mode). Quality on the same labelled rows, so that only the
    models differ."""
    served = rows[rows["served_by"] != "shadow"]
    shadow = rows[rows["served_by"] == "shadow"][
        ["request_id", TIME, "model_version", "probability"]
    ]
    # The same request: its id and the moment it was served (an id asked about twice is two).
    pairs = served.merge(shadow, on=["request_id", TIME], suffixes=("", "_shadow"))
    pairs = pairs[pairs["model_version"].astype(str) != pairs["model_version_shadow"].astype(str)]
    result = []
    for (version, other), group in pairs.groupby(["model_version", "model_version_shadow"]):
        labelled = group[group[LABEL].notna()]
        labels = labelled[LABEL].to_numpy(dtype="float64")
        result.append(
            Paired(
                served=str(version),
                shadow=str(other),
                rows=len(group),
                labelled=len(labelled),
                served_metrics=_performance(labels, labelled["probability"].to_numpy()),
                shadow_metrics=_performance(
                    labels, labelled["probability_shadow"].to_numpy(dtype="float64")
                ),
                score_ks=float(
                    ks_2samp(group["probability"], group["probability_shadow"]).statistic
                ),
            )
        )
    return result


def _most_drifted(drift: list[FeatureDrift], n: int) -> list[FeatureDrift]:
    """Drifted features first, by importance; then the closest to their thresholds."""
    return sorted(drift, key=lambda d: (not d.drifted, -d.importance if d.drifted else -_ratio(d)))[
        :n
    ]


def _ratio(d: FeatureDrift) -> float:
    """Distance over threshold (0 where either is undefined)."""
    return d.value / d.threshold if d.value is not None and d.threshold else 0.0


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares per bin, values outside the edges counted in the end bins."""
    if not len(values):
        return np.zeros(len(edges) - 1)
    counts = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
    shares: np.ndarray = counts / len(values)
    return shares


def _shares_from_quantiles(quantiles: list[float], edges: np.ndarray) -> np.ndarray:
    """The reference's shares per bin, read off its quantile function (linear between the
    101 quantiles; mass outside the edges counted in the end bins)."""
    q = np.asarray(quantiles, dtype="float64")
    if not len(q):
        return np.zeros(len(edges) - 1)
    levels = np.linspace(0, 1, len(q))
    keep = np.append(np.diff(q) > 0, True)  # a repeated value: its last level (CDF jumps)
    cdf = np.interp(edges, q[keep], levels[keep], left=0.0, right=1.0)
    cdf[0], cdf[-1] = 0.0, 1.0
    shares: np.ndarray = np.diff(cdf)
    return shares


def _skew_record(skew: SkewReport) -> Skew:
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


def _skew_summary(skew: SkewReport) -> str:
    parts = [f"{f.feature} differs in {f.share:.1%}" for f in skew.features[:5]]
    if skew.score_mismatches:
        parts.append(f"{skew.score_mismatches} scores differ (max {skew.max_score_diff:.2g})")
    return "; ".join(parts) or "no differences"
