"""The prediction service over real servers on loopback: REST and gRPC agree with each other
and with batch scoring; bad input gets 4xx / INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pandas as pd
import pytest

from serving.batch import TIMESTAMP, score_rows
from serving.grpc_face import grpc_instance, to_value
from serving.metrics import Metrics
from serving.models import ModelLoader
from serving.process import ServiceProcess
from serving.protos import prediction_pb2 as pb
from serving.protos import prediction_pb2_grpc as pb_grpc
from serving.schemas import rest_body
from skewless.features import store as feature_store
from skewless.registry.adapter import ModelRegistry

from .serving_setup import ServingWorld

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))


@pytest.fixture(scope="module")
def service(serving_world: ServingWorld) -> Iterator[ServiceProcess]:
    with serving_world.service("api", max_batch_size=64, max_body_bytes=65536) as running:
        yield running


@pytest.fixture(scope="module")
def rows(serving_world: ServingWorld) -> pd.DataFrame:
    rows = serving_world.requests(40).copy()
    rows.loc[3, "tailnum"] = None  # an unknown aircraft: its features are missing
    return rows


def test_rest_grpc_and_batch_scoring_give_the_same_scores(
    service: ServiceProcess, serving_world: ServingWorld, rows: pd.DataFrame
) -> None:
    schema = serving_world.schema
    rest = [
        httpx.post(
            service.url + "/v1/predict",
            json=rest_body(row, schema, request_id=f"r{i}", return_features=True),
            timeout=10,
        ).json()
        for i, row in rows.iterrows()
    ]
    assert all("probability" in r for r in rest), rest[0]
    with grpc.insecure_channel(service.grpc_target) as channel:
        answer = pb_grpc.PredictionStub(channel).PredictBatch(
            pb.PredictBatchRequest(
                instances=[
                    grpc_instance(row, serving_world.schema, f"g{i}") for i, row in rows.iterrows()
                ]
            ),
            timeout=10,
        )
    grpc_scores = [p.probability for p in answer.predictions]
    assert [p.request_id for p in answer.predictions] == [f"g{i}" for i in range(len(rows))]
    assert grpc_scores == [r["probability"] for r in rest]  # identical, not close

    # Batch scoring of the same flights at the same moment (the online store's as_of).
    store = feature_store.open_store(serving_world.settings)
    loader = ModelLoader(
        ModelRegistry(serving_world.settings.state_dir),
        serving_world.config.name,
        schema,
        Metrics(),
        serving_world.folder / "cache",
        namespace_of=lambda project: pytest.fail(f"no other namespace here ({project})"),
    )
    batch = score_rows(
        store, schema, loader.load(), rows.assign(**{TIMESTAMP: serving_world.config.as_of})
    )
    diffs = (batch["probability"] - pd.Series(grpc_scores)).abs()
    assert diffs.max() < 1e-12, diffs.max()
    assert len(set(grpc_scores)) > 10  # real, varied scores
    assert rest[3]["missing_features"] and all(
        rest[3]["features"][name] is None for name in rest[3]["missing_features"]
    )
    assert all(r["model_version"] == rest[0]["model_version"] for r in rest)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["request"].pop("distance"), "request.distance"),
        (lambda b: b["request"].update(distance="far"), "request.distance"),
        (lambda b: b["request"].update(distance=True), "request.distance"),
        (lambda b: b["entities"].update(origin=7), "entities.origin"),
        (lambda b: b["entities"].update(airport="JFK"), "entities.airport"),
        (
            lambda b: b["request"].update(scheduled_departure="tomorrow"),
            "request.scheduled_departure",
        ),
        (lambda b: b["request"].update(requested_at="2013-12-30T23:00:00"), "request.requested_at"),
        (lambda b: b.pop("entities"), "entities"),
        (lambda b: b.update(return_features="yes"), "return_features"),
    ],
)
def test_bad_rest_input_gets_422_naming_the_field(
    service: ServiceProcess, serving_world: ServingWorld, rows: pd.DataFrame, change, field
) -> None:
    body = rest_body(rows.iloc[0], serving_world.schema)
    change(body)
    response = httpx.post(service.url + "/v1/predict", json=body, timeout=10)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["code"] == "invalid_input"
    assert "Traceback" not in response.text


def test_malformed_oversized_and_too_large_batches_get_4xx(
    service: ServiceProcess, serving_world: ServingWorld, rows: pd.DataFrame
) -> None:
    malformed = httpx.post(
        service.url + "/v1/predict",
        content=b'{"entities": {',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert malformed.status_code == 422 and malformed.json()["field"], malformed.text
    huge = httpx.post(
        service.url + "/v1/predict",
        content=b"x" * 70_000,
        timeout=10,
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"
    chunked = httpx.post(  # no Content-Length: the limit must hold while reading
        service.url + "/v1/predict",
        content=iter([b"x" * 40_000, b"x" * 40_000]),
        timeout=10,
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413 and chunked.json()["field"] == "body", chunked.text
    one = rest_body(rows.iloc[0], serving_world.schema)
    too_many = httpx.post(
        service.url + "/v1/predict/batch", json={"instances": [one] * 65}, timeout=10
    )
    assert too_many.status_code == 422 and too_many.json()["field"] == "instances"
    empty = httpx.post(service.url + "/v1/predict/batch", json={"instances": []}, timeout=10)
    assert empty.status_code == 422 and empty.json()["field"] == "instances"
    ok = httpx.post(service.url + "/v1/predict/batch", json={"instances": [one] * 64}, timeout=10)
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 64


def test_bad_grpc_input_gets_invalid_argument_naming_the_field(
    service: ServiceProcess, serving_world: ServingWorld, rows: pd.DataFrame
) -> None:
    good = grpc_instance(rows.iloc[0], serving_world.schema, "x")
    wrong_type = pb.Instance()
    wrong_type.CopyFrom(good)
    wrong_type.request["distance"].CopyFrom(to_value("far"))
    missing = pb.Instance()
    missing.CopyFrom(good)
    del missing.entities["origin"]
    with grpc.insecure_channel(service.grpc_target) as channel:
        stub = pb_grpc.PredictionStub(channel)
        for instance, field in (
            (wrong_type, "instance.request.distance"),
            (missing, "instance.entities.origin"),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(pb.PredictRequest(instance=instance), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in caught.value.details()
            assert ("field", field) in tuple(caught.value.trailing_metadata())
        with pytest.raises(grpc.RpcError) as caught:
            stub.PredictBatch(pb.PredictBatchRequest(instances=[good] * 65), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        big = pb.PredictRequest(instance=good)
        big.instance.request_id = "x" * 70_000
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(big, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # message-size limit


def test_grpcurl_lists_checks_health_and_predicts(
    service: ServiceProcess, serving_world: ServingWorld, rows: pd.DataFrame
) -> None:
    def grpcurl(*args: str) -> str:
        done = subprocess.run(
            [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = grpcurl(service.grpc_target, "list")
    assert "skewless.serving.v1.Prediction" in listed and "grpc.health.v1.Health" in listed
    health = grpcurl(service.grpc_target, "grpc.health.v1.Health/Check")
    assert '"status": "SERVING"' in health
    body = rest_body(rows.iloc[0], serving_world.schema)
    request = {
        "instance": {
            "entities": {k: {"string_value": v} for k, v in body["entities"].items()},
            "request": {
                k: {"double_value": v} if isinstance(v, float) else {"timestamp_value": v}
                for k, v in body["request"].items()
            },
        }
    }
    answer = json.loads(
        grpcurl(
            "-d", json.dumps(request), service.grpc_target, "skewless.serving.v1.Prediction/Predict"
        )
    )
    rest = httpx.post(service.url + "/v1/predict", json=body, timeout=10).json()
    assert answer["probability"] == rest["probability"]


def test_openapi_example_works_and_metrics_are_exposed(service: ServiceProcess) -> None:
    schema = httpx.get(service.url + "/openapi.json", timeout=10).json()
    components = schema["components"]["schemas"]
    example = components["PredictRequest"]["examples"][0]
    batch_example = components["PredictBatchRequest"]["examples"][0]
    assert httpx.post(service.url + "/v1/predict", json=example, timeout=10).status_code == 200
    batch = httpx.post(service.url + "/v1/predict/batch", json=batch_example, timeout=10)
    assert batch.status_code == 200
    # What the labelled series below count, made here: a test must not rely on others.
    unknown = {**example, "entities": {**example["entities"], "tailnum": "N-NEVER-SEEN"}}
    answer = httpx.post(service.url + "/v1/predict", json=unknown, timeout=10)
    assert answer.status_code == 200 and answer.json()["missing_features"]
    invalid = {**example, "request": {**example["request"], "distance": "far"}}
    assert httpx.post(service.url + "/v1/predict", json=invalid, timeout=10).status_code == 422
    metrics = httpx.get(service.url + "/metrics", timeout=10).text
    for name in (
        'skewless_request_duration_seconds_bucket{endpoint="/v1/predict",le="0.002",stage="features"}',
        'skewless_request_duration_seconds_count{endpoint="/v1/predict",stage="score"}',
        'skewless_requests_total{endpoint="/v1/predict",status="200"}',
        'skewless_requests_total{endpoint="/v1/predict",status="422"}',
        "skewless_model_info{",
        "skewless_online_store_errors_total",
        "skewless_prediction_log_dropped_total",
        "skewless_missing_features_total{",
    ):
        assert name in metrics, name
    assert httpx.get(service.url + "/livez", timeout=10).status_code == 200
    ready = httpx.get(service.url + "/readyz", timeout=10).json()
    assert ready["ready"] is True and ready["model_version"]


def test_schemathesis_finds_nothing_with_every_check(
    service: ServiceProcess, tmp_path: Path
) -> None:
    """The schema is the exact contract: every schema-valid request is accepted, every
    invalid one refused with a documented status, every response as documented."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            service.url + "/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "60",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    generated = re.search(r"(\d+) generated", done.stdout)
    assert generated and int(generated.group(1)) >= 100, done.stdout[-2000:]
    assert "No issues found" in done.stdout


def test_the_readme_curl_and_grpcurl_examples_work(service: ServiceProcess) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    curl_body = re.search(r"curl -s http://127.0.0.1:8000/v1/predict .* -d '(.+)'", readme)
    grpcurl_body = re.search(r"\$GRPCURL -plaintext -d '(.+)' 127.0.0.1:50051 ", readme)
    assert curl_body and grpcurl_body, "the README lost its examples"
    rest = httpx.post(service.url + "/v1/predict", json=json.loads(curl_body.group(1)), timeout=10)
    assert rest.status_code == 200, rest.text
    done = subprocess.run(
        [
            GRPCURL,
            "-plaintext",
            "-d",
            grpcurl_body.group(1),
            service.grpc_target,
            "skewless.serving.v1.Prediction/Predict",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["probability"] == rest.json()["probability"]
    assert rest.json()["features"]["minutes_to_departure"] == 60.0


def test_the_service_starts_from_the_online_store_and_the_registry_alone(
    service: ServiceProcess, serving_world: ServingWorld, tmp_path: Path
) -> None:
    """A serving host has Redis, the Feast registry and MLflow, not the offline tables."""
    repo = serving_world.settings.repo_path
    host = tmp_path / "serving_host"
    (host / "data").mkdir(parents=True)
    for path in repo.iterdir():
        if path.suffix in {".py", ".yaml"}:
            shutil.copy(path, host / path.name)
    shutil.copy(repo / "data" / "registry_redis.db", host / "data" / "registry_redis.db")
    assert not list(host.rglob("*.parquet"))
    with serving_world.service("no-offline", repo_path=host) as bare:
        schema = httpx.get(bare.url + "/openapi.json", timeout=10).json()
        example = schema["components"]["schemas"]["PredictRequest"]["examples"][0]
        answer = httpx.post(bare.url + "/v1/predict", json=example, timeout=10)
        assert answer.status_code == 200, answer.text
        reference = httpx.post(service.url + "/v1/predict", json=example, timeout=10).json()
        assert answer.json()["probability"] == reference["probability"]
        assert answer.json()["missing_features"] == reference["missing_features"]
