"""Do monitoring's parts decide as documented: strict thresholds, drift verdicts beyond
chance, windows, reference shares, history rows?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.analysis import window_start
from monitoring.config import Drift, load_monitoring_config
from monitoring.distributions import shares_from_quantiles
from monitoring.drift import feature_drift
from skewless.models.configuration import load_model_config
from skewless.quality import statistics
from skewless.quality.reference import derive_schema
from skewless.strict_yaml import ConfigError

RNG = np.random.default_rng(7)
REFERENCE = pd.DataFrame(
    {
        "temp": RNG.normal(50, 10, 20_000),
        "kind": RNG.choice(["a", "b", "c", "d"], 20_000, p=[0.4, 0.3, 0.2, 0.1]),
    }
)
SCHEMA = derive_schema(REFERENCE, ["temp", "kind"])


DEFAULTS = Drift()


def _drift(name: str, values: object):  # type: ignore[no-untyped-def]
    return feature_drift(
        name, values, SCHEMA["columns"][name], 20_000, 0.5, frozenset("abcd"), DEFAULTS
    )


def test_a_shifted_numeric_feature_drifts_and_a_fresh_sample_does_not() -> None:
    same = _drift("temp", RNG.normal(50, 10, 5_000))
    moved = _drift("temp", RNG.normal(56, 10, 5_000))
    assert same.drifted is False and same.statistic == "ks"
    assert moved.drifted is True and moved.value > 0.1


def test_a_small_window_needs_more_than_the_threshold_to_drift() -> None:
    # 250 rows: the KS critical value at alpha 0.001 is about 0.12, above the 0.1 threshold.
    small = _drift("temp", RNG.normal(50, 10, 250))
    assert small.threshold == pytest.approx(statistics.ks_critical(250, 20_000, 0.001))
    assert small.threshold > 0.1
    tiny = _drift("temp", RNG.normal(80, 10, 50))
    assert tiny.drifted is None  # fewer rows than min_rows: no verdict, however far


def test_categories_drift_by_psi_and_unknown_ones_are_counted() -> None:
    same = _drift("kind", pd.Series(RNG.choice(list("abcd"), 5_000, p=[0.4, 0.3, 0.2, 0.1])))
    moved = _drift("kind", pd.Series(RNG.choice(list("abcde"), 5_000, p=[0.1] * 4 + [0.6])))
    assert same.drifted is False and same.statistic == "psi"
    assert moved.drifted is True
    assert moved.unknown_rate == pytest.approx(0.6, abs=0.03)


def test_psi_critical_grows_with_bins_and_shrinks_with_rows() -> None:
    assert statistics.psi_critical(10, 200, 1e5, 0.001) > statistics.psi_critical(
        4, 200, 1e5, 0.001
    )
    assert statistics.psi_critical(10, 200, 1e5, 0.001) > statistics.psi_critical(
        10, 20_000, 1e5, 0.001
    )
    # Same-distribution samples stay below it nearly always.
    p = np.full(10, 0.1)
    below = 0
    for _ in range(200):
        counts = RNG.multinomial(300, p) / 300
        below += statistics.psi(p, counts) <= statistics.psi_critical(10, 300, 1e9, 0.01)
    assert below >= 190


def test_reference_shares_read_off_quantiles_match_the_sample() -> None:
    values = REFERENCE["temp"].to_numpy()
    edges = np.linspace(30, 70, 21)
    shares = shares_from_quantiles(SCHEMA["columns"]["temp"]["quantiles"], edges)
    direct = np.histogram(np.clip(values, 30, 70), bins=edges)[0] / len(values)
    assert shares.sum() == pytest.approx(1.0)
    assert np.abs(shares - direct).max() < 0.01


def test_windows_start_on_the_hour_the_day_and_monday() -> None:
    times = pd.Series(pd.to_datetime(["2013-03-07T15:45:00Z", "2013-03-10T23:59:00Z"]))
    assert window_start(times, "hour")[0] == pd.Timestamp("2013-03-07T15:00:00Z")
    assert window_start(times, "day")[1] == pd.Timestamp("2013-03-10T00:00:00Z")
    weeks = window_start(times, "week")
    assert (weeks == pd.Timestamp("2013-03-04T00:00:00Z")).all()  # both in Monday 4 March's week


def test_the_monitoring_section_is_strict(tmp_path: Path) -> None:
    source = Path("skewless/configs/delay_model.yaml").read_text()
    good = tmp_path / "good.yaml"
    good.write_text(source)
    config = load_monitoring_config(load_model_config(good))
    assert config.alerts.drifted_importance == 0.3 and config.window == "day"
    typo = tmp_path / "typo.yaml"
    typo.write_text(source.replace("  window: day", "  windw: day"))
    with pytest.raises(ConfigError, match="monitoring.windw: unknown key"):
        load_monitoring_config(load_model_config(typo))
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.replace("  window: day", "  window: fortnight"))
    with pytest.raises(ConfigError, match="monitoring.window"):
        load_monitoring_config(load_model_config(bad))


def test_two_versions_are_compared_on_the_same_requests_only() -> None:
    from sklearn.metrics import roc_auc_score

    from monitoring.paired import paired_comparison

    n = 400
    labels = RNG.integers(0, 2, n).astype("float64")
    challenger = np.clip(labels * 0.3 + RNG.uniform(0, 0.7, n), 0, 1)
    champion = np.clip(labels * 0.1 + RNG.uniform(0, 0.9, n), 0, 1)
    ids = [f"r{i}" for i in range(n)]
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "request_id": ids,
                    "served_by": "challenger",
                    "model_version": "2",
                    "probability": challenger,
                    "label": labels,
                }
            ),
            pd.DataFrame(
                {
                    "request_id": ids,
                    "served_by": "shadow",
                    "model_version": "1",
                    "probability": champion,
                    "label": labels,
                }
            ),
            # the champion's own traffic: other requests, not part of the pairing
            pd.DataFrame(
                {
                    "request_id": [f"o{i}" for i in range(50)],
                    "served_by": "champion",
                    "model_version": "1",
                    "probability": 0.5,
                    "label": 1.0,
                }
            ),
        ],
        ignore_index=True,
    )
    rows["feature_time"] = pd.Timestamp("2013-07-01T12:00:00Z")
    rows.loc[:9, "label"] = np.nan  # ten not yet known
    (pair,) = paired_comparison(rows)
    assert (pair.served, pair.shadow, pair.rows, pair.labelled) == ("2", "1", n, n - 10)
    known = ~np.isnan(rows["label"].to_numpy()[:n])
    y = labels[known]
    assert pair.served_metrics.roc_auc == pytest.approx(roc_auc_score(y, challenger[known]))
    assert pair.shadow_metrics.roc_auc == pytest.approx(roc_auc_score(y, champion[known]))


def test_labels_known_between_count_after_exclusive_until_inclusive() -> None:
    from datetime import UTC, datetime

    from skewless.features.outcomes import KnownTimes

    stamps = pd.Series(
        pd.to_datetime(
            ["2013-07-01T10:00Z", "2013-07-01T11:00Z", "2013-07-02T00:00Z", None], utc=True
        )
    )
    known = KnownTimes.of(stamps)
    at = datetime(2013, 7, 1, 10, tzinfo=UTC)
    assert known.between(at, datetime(2013, 7, 1, 11, tzinfo=UTC)) == 1  # 10:00 excluded
    assert known.between(at.replace(hour=9), datetime(2013, 7, 2, tzinfo=UTC)) == 3
    assert known.between(datetime(2013, 7, 2, tzinfo=UTC), datetime(2013, 8, 1, tzinfo=UTC)) == 0
