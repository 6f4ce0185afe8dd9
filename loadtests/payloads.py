"""Request payloads for load tests and the gate, drawn from the real entity rows of the
model's feature service (the flights before the replay's "now"), with a chosen share of
entities the feature store has never seen.

Each payload holds the same instance twice: the REST body and the gRPC request in proto JSON,
so that both kinds of locust users replay exactly the same requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from google.protobuf.json_format import MessageToDict

from serving.grpc_face import grpc_instance
from serving.protos import prediction_pb2 as pb
from serving.schemas import rest_body
from skewless.features.service import ServiceSchema
from skewless.features.store import recent_entity_rows
from skewless.models.configuration import ModelConfig

UNKNOWN = "unknown-"  # prefix of made-up string keys


def unknown_keys(rows: pd.DataFrame, schema: ServiceSchema, share: float, seed: int) -> pd.Series:
    """Replace every join key of a random `share` of rows by a value no table holds; returns
    the mask of rows changed."""
    rng = np.random.default_rng(seed)
    mask = pd.Series(rng.random(len(rows)) < share, index=rows.index)
    for n, index in enumerate(rows.index[mask]):
        for key in schema.join_keys:
            value = rows.at[index, key]
            rows.at[index, key] = (
                -(n + 1) if isinstance(value, int | np.integer) else f"{UNKNOWN}{n}"
            )
    return mask


def payloads(
    rows: pd.DataFrame, schema: ServiceSchema, id_prefix: str | None = None
) -> list[dict[str, Any]]:
    """One payload per row; with `id_prefix`, each carries a request id (golden requests),
    else the service makes one per request (replayed load repeats payloads)."""
    out = []
    for k, row in enumerate(rows.to_dict("records")):
        request_id = f"{id_prefix}-{k}" if id_prefix else ""
        extra = {"request_id": request_id} if request_id else {}
        out.append(
            {
                "rest": rest_body(row, schema, **extra),
                "grpc": MessageToDict(
                    pb.PredictRequest(instance=grpc_instance(row, schema, request_id)),
                    preserving_proto_field_name=True,
                ),
            }
        )
    return out


def replay_payloads(
    store: FeatureStore,
    config: ModelConfig,
    schema: ServiceSchema,
    n: int,
    unknown_share: float,
    seed: int,
) -> tuple[list[dict[str, Any]], int]:
    """The `n` most recent real requests as payloads, a share of them with unknown
    entities; and how many those are."""
    rows = recent_entity_rows(store, config, schema, n)
    unknown = unknown_keys(rows, schema, unknown_share, seed)
    return payloads(rows, schema), int(unknown.sum())
