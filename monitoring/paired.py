"""Two versions on the same requests: a canary's or shadow mode's paired scores, compared on
the same labelled rows so that only the models differ."""

from __future__ import annotations

import pandas as pd
from scipy.stats import ks_2samp

from skewless.features.outcomes import LABEL
from skewless.quality.monitoring_result import Paired

from .analysis import TIME, performance


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
                served_metrics=performance(labels, labelled["probability"].to_numpy()),
                shadow_metrics=performance(
                    labels, labelled["probability_shadow"].to_numpy(dtype="float64")
                ),
                score_ks=float(
                    ks_2samp(group["probability"], group["probability_shadow"]).statistic
                ),
            )
        )
    return result
