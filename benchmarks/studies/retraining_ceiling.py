"""How much can retraining gain on this data at all? An upper bound for the backtest.

Each month of July-December 2013 is scored by a model retrained on the 1st of that month on
every label up to a cut (final labels, no label delay: kinder than any real retrain), against
the static model trained on January-June. The cut lags the 1st by 0, 7 or 30 days: what a
pipeline that holds out its newest 7 or 30 days as a test window can learn. One parameter set
(the configuration's, 600 rounds), no search, so only the data differs.

    python -m benchmarks.retraining_ceiling           # ~4 min on 2 cores; docs/benchmarks.md
    python -m benchmarks.retraining_ceiling --weekly  # and every Monday on every label before
                                                      # it (26 more fits, ~6 min)
"""

from __future__ import annotations

import argparse
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from skewless.features import store as feature_store
from skewless.features.service import ENTITY_TIMESTAMP, historical_features, service_schema
from skewless.models.configuration import load_model_config
from skewless.settings import get_settings

PARAMS = {
    "objective": "binary",
    "learning_rate": 0.03,
    "num_leaves": 31,
    "min_child_samples": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "verbose": -1,
    "seed": 13,
    "num_threads": 2,
}
ROUNDS = 600
START = pd.Timestamp("2013-01-01", tz="UTC")
MONTHS = pd.date_range("2013-07-01", "2014-01-01", freq="MS", tz="UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weekly", action="store_true", help="add weekly retraining, lag 0")
    args = parser.parse_args()
    settings = get_settings()
    config = load_model_config(settings.model_file)
    store = feature_store.open_store(settings)
    schema = service_schema(store, config.feature_service)
    rows = pd.read_parquet(feature_store.file_source_path(store, config.entity_source))
    rows = rows.sort_values(ENTITY_TIMESTAMP, kind="stable").reset_index(drop=True)
    features = historical_features(store, schema.name, rows)[list(schema.features)]
    for name in features.columns:
        if not pd.api.types.is_numeric_dtype(features[name]):
            features[name] = features[name].astype("category")
    labels = rows[config.label].astype("float64").to_numpy()
    known = ~np.isnan(labels)
    times = pd.to_datetime(rows[ENTITY_TIMESTAMP], utc=True)

    def fit(first: pd.Timestamp, cut: pd.Timestamp) -> lgb.Booster:
        chosen = known & (times >= first) & (times < cut)
        return lgb.train(PARAMS, lgb.Dataset(features[chosen], labels[chosen]), ROUNDS)

    started = time.perf_counter()
    static = fit(START, MONTHS[0])
    variants = {
        "expanding, lag 0": (None, 0),
        "expanding, lag 7 days": (None, 7),
        "expanding, lag 30 days": (None, 30),
        "180 days, lag 0": (180, 0),
    }
    table: dict[str, list[float]] = {"static (January-June)": []}
    table.update({name: [] for name in variants})
    for first_day, after in zip(MONTHS[:-1], MONTHS[1:], strict=True):
        month = known & (times >= first_day) & (times < after)
        table["static (January-June)"].append(
            roc_auc_score(labels[month], static.predict(features[month]))
        )
        for name, (days, lag) in variants.items():
            cut = first_day - pd.Timedelta(days=lag)
            first = START if days is None else cut - pd.Timedelta(days=days)
            model = fit(first, cut)
            table[name].append(roc_auc_score(labels[month], model.predict(features[month])))
        print(f"{first_day:%Y-%m} done ({time.perf_counter() - started:.0f} s)", flush=True)
    if args.weekly:  # the freshest a scheduled retrain can be: every label before Monday
        scores = np.full(len(rows), np.nan)
        mondays = pd.date_range(MONTHS[0], MONTHS[-1], freq="W-MON", tz="UTC")
        for monday in mondays:
            week = (times >= monday) & (times < monday + pd.Timedelta(days=7))
            scores[week] = fit(START, monday).predict(features[week])
        print(f"weekly done ({time.perf_counter() - started:.0f} s, {len(mondays)} fits)")
        table["expanding, weekly, lag 0"] = [
            roc_auc_score(labels[month], scores[month])
            for month in (
                known & (times >= first_day) & (times < after)
                for first_day, after in zip(MONTHS[:-1], MONTHS[1:], strict=True)
            )
        ]
    base = float(np.mean(table["static (January-June)"]))
    print(
        "| retrained monthly on | "
        + " | ".join(f"{m:%Y-%m}" for m in MONTHS[:-1])
        + " | mean | vs static |"
    )
    print("|---|" + "---|" * (len(MONTHS) + 1))
    for name, values in table.items():
        mean = float(np.mean(values))
        cells = " | ".join(f"{v:.4f}" for v in values)
        print(f"| {name} | {cells} | {mean:.4f} | {mean - base:+.4f} |")


if __name__ == "__main__":
    main()
