"""The skew check: what was served, recomputed offline, value by value and score by score.

A sample of the prediction log is turned back into entity rows stamped at each request's
feature time; the feature service is read offline (point in time) for them, and the served
feature values and scores are compared with the recomputed ones. Any difference is
training-serving skew.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from feast import FeatureStore

from skewless.errors import BadInput
from skewless.features.service import ENTITY_TIMESTAMP as TIMESTAMP
from skewless.features.service import ServiceSchema, historical_features
from skewless.models.artifacts import ModelFetcher
from skewless.quality.parity import compare_features
from skewless.quality.prediction_log import ENTITY, FEATURE, REQUEST

SCORE_ATOL = 1e-9
ROW = "_skew_row"


@dataclass(frozen=True)
class FeatureSkew:
    feature: str
    rows: int
    share: float
    example_served: object = None
    example_offline: object = None


@dataclass(frozen=True)
class SkewReport:
    rows: int
    tolerance: float
    features: list[FeatureSkew] = field(default_factory=list)  # only those that differ
    score_mismatches: int = 0
    max_score_diff: float = 0.0

    @property
    def passed(self) -> bool:
        worst = max((f.share for f in self.features), default=0.0)
        return worst <= self.tolerance and self.score_mismatches / max(self.rows, 1) <= (
            self.tolerance
        )


def check_skew(
    store: FeatureStore,
    schema: ServiceSchema,
    served: pd.DataFrame,
    loader: ModelFetcher,
    *,
    sample: int,
    tolerance: float,
    seed: int = 0,
) -> SkewReport:
    """`served`: prediction-log rows (see `skewless.quality.prediction_log`)."""
    served = served[served["served_by"] != "shadow"]
    if served.empty:
        raise BadInput("the prediction log holds no served predictions to check")
    picked = served.sample(n=min(sample, len(served)), random_state=seed).reset_index(drop=True)
    picked[ROW] = range(len(picked))
    entity_rows = pd.DataFrame({ROW: picked[ROW], TIMESTAMP: picked["feature_time"]})
    for key in schema.join_keys:
        entity_rows[key] = picked[ENTITY + key]
    for name in schema.request_fields:
        entity_rows[name] = picked[REQUEST + name]
    offline = historical_features(store, schema.name, entity_rows)
    online = picked[[ROW]].assign(**{name: picked[FEATURE + name] for name in schema.features})
    mismatches = compare_features(online, offline, list(schema.features), key=ROW)
    features = [
        FeatureSkew(m.feature, m.rows, m.rows / len(picked), m.left, m.right) for m in mismatches
    ]
    diffs = np.zeros(len(picked))
    for version, index in picked.groupby("model_version").groups.items():
        model = loader.load(str(version))
        rescored = model.model.score(offline.loc[index])
        diffs[index] = np.abs(rescored - picked.loc[index, "probability"].to_numpy())
    return SkewReport(
        rows=len(picked),
        tolerance=tolerance,
        features=features,
        score_mismatches=int((diffs > SCORE_ATOL).sum()),
        max_score_diff=float(diffs.max()),
    )
