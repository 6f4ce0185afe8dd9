"""Labels that arrive late, through Feast: each entity's outcome as known at a moment T.

The outcomes are a feature view keyed by the entity id (the `request_id` a client sends) and
stamped with the moment each label became known; one point-in-time read as of T (an entity
row per id, all at T) returns a label only where it was known by T. Monitoring joins them to
served predictions; retraining as of T learns only from them. Nothing here knows what the
label means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureStore

from skewless.errors import BadInput
from skewless.features.service import ENTITY_TIMESTAMP, historical_features
from skewless.features.store import file_source_path
from skewless.models.configuration import ModelConfig, Outcomes

LABEL, KNOWN_AT = "label", "label_known_at"


@dataclass(frozen=True)
class OutcomeSource:
    view: str
    join_key: str
    label: str
    known_at: str
    table: Path | None = None  # the view's parquet file, where it is a local FileSource


def outcome_source(store: FeatureStore, config: ModelConfig | Outcomes | None) -> OutcomeSource:
    """The configured outcome view, checked: it exists, has one join key, holds both fields,
    and its table is there."""
    outcomes = config.outcomes if isinstance(config, ModelConfig) else config
    if outcomes is None:
        raise BadInput(
            "the model configuration names no `outcomes:` (the feature view of its labels as "
            "they become known)"
        )
    try:
        view = store.get_feature_view(outcomes.feature_view)
    except Exception:  # Feast raises its own not-found error per registry kind
        raise BadInput(
            f"no feature view {outcomes.feature_view!r} holds the outcomes: run `skewless apply`"
        ) from None
    keys = [column.name for column in view.entity_columns]
    if len(keys) != 1:
        raise BadInput(f"outcome view {view.name!r} must have one join key, has {keys}")
    fields = {f.name for f in view.features}
    for name in (outcomes.label, outcomes.known_at):
        if name not in fields:
            raise BadInput(f"outcome view {view.name!r} has no field {name!r}")
    table = None
    if view.batch_source is not None and view.batch_source.name:
        table = file_source_path(store, view.batch_source.name)  # absent: a clear error
    return OutcomeSource(view.name, keys[0], outcomes.label, outcomes.known_at, table)


@dataclass(frozen=True)
class KnownTimes:
    """When each label became known, sorted: how many became known in a stretch of time is
    two binary searches (the controller asks once per tick, a backtest once per day)."""

    sorted_ns: np.ndarray  # datetime64[ns], UTC

    @classmethod
    def of(cls, known_at: pd.Series) -> KnownTimes:
        utc = pd.to_datetime(known_at, utc=True).dropna()
        return cls(np.sort(utc.to_numpy(dtype="datetime64[ns]")))

    def between(self, after: datetime, until: datetime) -> int:
        """Labels known in (after, until]: new data to learn from."""
        lo, hi = (np.datetime64(pd.Timestamp(t).tz_convert(None), "ns") for t in (after, until))
        right = np.searchsorted(self.sorted_ns, hi, "right")
        return int(right - np.searchsorted(self.sorted_ns, lo, "right"))


def known_times(source: OutcomeSource) -> KnownTimes:
    if source.table is None:
        raise BadInput(f"outcome view {source.view!r} is not a local parquet table")
    return KnownTimes.of(pd.read_parquet(source.table, columns=[source.known_at])[source.known_at])


def join_labels(
    store: FeatureStore, source: OutcomeSource, request_ids: pd.Series, as_of: datetime
) -> pd.DataFrame:
    """`label` (1.0, 0.0, or NaN where not known by `as_of`) and `label_known_at` per entity
    id, indexed like `request_ids`."""
    ids = pd.Series(request_ids.astype("string").unique(), dtype="string")
    entity_rows = pd.DataFrame({source.join_key: ids, ENTITY_TIMESTAMP: pd.Timestamp(as_of)})
    read = historical_features(
        store, [f"{source.view}:{source.label}", f"{source.view}:{source.known_at}"], entity_rows
    )
    known = pd.to_datetime(read[source.known_at], utc=True)
    # A label stamped after `as_of` cannot come back from a point-in-time read; the check
    # keeps that promise visible should a store ever break it.
    labels = pd.to_numeric(read[source.label], errors="coerce").astype("float64")
    labels[known > pd.Timestamp(as_of)] = np.nan
    by_id = pd.DataFrame({LABEL: labels, KNOWN_AT: known})
    by_id.index = pd.Index(ids)
    joined = by_id.reindex(request_ids.astype("string").to_numpy())
    joined.index = request_ids.index
    return joined
