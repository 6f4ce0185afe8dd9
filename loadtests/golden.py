"""The gate's golden requests: real rows sent alone and as one batch over REST and one by one
over gRPC, every answer checked for form; the scores, for comparison with batch scoring."""

from __future__ import annotations

import math
from typing import Any

import grpc
import httpx
import pandas as pd

from serving.grpc_face import grpc_instance
from serving.protos import prediction_pb2 as pb
from serving.protos import prediction_pb2_grpc as pb_grpc
from serving.schemas import rest_body


def golden_rest(
    url: str, rows: pd.DataFrame, schema: Any, version: str
) -> tuple[list[float], list[str]]:
    """Each row alone, then all of them in one batch; every answer checked for form."""
    scores: list[float] = []
    errors: list[str] = []
    bodies = [rest_body(row, schema, request_id=f"golden-{k}") for k, row in rows.iterrows()]
    with httpx.Client(base_url=url, timeout=10) as client:
        for body in bodies:
            response = client.post("/v1/predict", json=body)
            if response.status_code != 200:
                errors.append(
                    f"REST {body['request_id']}: {response.status_code} {response.text[:200]}"
                )
                scores.append(math.nan)
                continue
            found = response.json()
            errors += _form_errors(found, body["request_id"], version)
            scores.append(float(found.get("probability", math.nan)))
        batch = client.post("/v1/predict/batch", json={"instances": [b for b in bodies]})
        if batch.status_code != 200:
            errors.append(f"REST batch: {batch.status_code} {batch.text[:200]}")
        else:
            answers = batch.json().get("predictions", [])
            if [a.get("probability") for a in answers] != scores:
                errors.append("REST batch answers differ from the single requests")
    return scores, errors


def _form_errors(found: dict[str, Any], request_id: str, version: str) -> list[str]:
    probability = found.get("probability")
    problems = []
    if found.get("request_id") != request_id:
        problems.append("request_id not echoed")
    if not isinstance(probability, float) or not 0.0 <= probability <= 1.0:
        problems.append(f"probability {probability!r}")
    elif found.get("decision") != (probability >= found.get("threshold", math.inf)):
        problems.append("decision disagrees with the threshold")
    if found.get("model_version") != version:
        problems.append(f"served by version {found.get('model_version')!r}")
    if not isinstance(found.get("missing_features"), list):
        problems.append("missing_features absent")
    return [f"REST {request_id}: {p}" for p in problems]


def golden_grpc(target: str, rows: pd.DataFrame, schema: Any) -> tuple[list[float], list[str]]:
    scores: list[float] = []
    errors: list[str] = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionStub(channel)
        for k, row in rows.iterrows():
            request_id = f"golden-grpc-{k}"
            try:
                answer = stub.Predict(
                    pb.PredictRequest(instance=grpc_instance(row, schema, request_id)), timeout=10
                )
            except grpc.RpcError as exc:
                errors.append(f"gRPC {request_id}: {exc.code().name} {exc.details()}")
                scores.append(math.nan)
                continue
            if answer.request_id != request_id or not 0.0 <= answer.probability <= 1.0:
                errors.append(f"gRPC {request_id}: malformed answer")
            scores.append(answer.probability)
    return scores, errors
