"""What one model version's served predictions say, against that version's own reference:
drift per feature, missing and unknown values, prediction drift, performance once labels are
known, per window of time and per segment; and which configured alert conditions hold
(`alerts.py`), with the report's distributions (`distributions.py`).

Pure computation over frames (the prediction log's rows with their labels joined): the I/O
(log, registry, Feast, files) is in `run.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from skewless.errors import BadInput
from skewless.features.outcomes import KNOWN_AT, LABEL
from skewless.models.contract import ModelContract
from skewless.quality.metrics import calibration, metrics
from skewless.quality.monitoring_result import (
    Drift,
    FeatureDrift,
    Figures,
    Labels,
    Performance,
    PredictionDrift,
    Reference,
    Segment,
    VersionResult,
    Window,
)
from skewless.quality.prediction_log import ENTITY, FEATURE, REQUEST
from skewless.quality.skew import SkewReport

from .alerts import alerts_holding, skew_record
from .config import MonitoringConfig, WindowSize
from .distributions import distribution, score_histogram
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


def performance(labels: np.ndarray, scores: np.ndarray) -> Figures:
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
        overall = performance(labels[labelled], scores[labelled])
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
                distribution(d.feature, self.columns[d.feature], values[d.feature])
                for d in _most_drifted(drift, self.config.plotted_features)
            ],
            performance=Performance(
                overall=overall,
                segments=self._segments(rows, segments, labels, scores, labelled),
            ),
            windows=self._windows(rows, values, scores, labels, labelled),
            skew=None if skew is None else skew_record(skew),
            alerts=alerts_holding(
                self.config,
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
        return PredictionDrift(
            ks=figures["ks"],
            psi=figures["psi"],
            mean_score=float(scores.mean()) if len(scores) else None,
            test_median_score=self.test_quantiles[50],
            histogram=score_histogram(scores, self.test_quantiles),
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
                figures = performance(labels[index][mask], scores[index][mask])
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
            figures = performance(labels[index][mask], scores[index][mask])
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


def _most_drifted(drift: list[FeatureDrift], n: int) -> list[FeatureDrift]:
    """Drifted features first, by importance; then the closest to their thresholds."""
    return sorted(drift, key=lambda d: (not d.drifted, -d.importance if d.drifted else -_ratio(d)))[
        :n
    ]


def _ratio(d: FeatureDrift) -> float:
    """Distance over threshold (0 where either is undefined)."""
    return d.value / d.threshold if d.value is not None and d.threshold else 0.0
