"""Locust scenarios: REST (FastHttpUser) and gRPC users replaying real request payloads.

Run by the gate (`loadtests/locust_run.py`), or by hand:

    SKEWLESS_LOADTEST_PAYLOADS=payloads.jsonl SKEWLESS_LOADTEST_USER_RATE=10 \\
    locust -f loadtests/locustfile.py --headless -u 20 -r 20 -t 30s \\
        --host http://127.0.0.1:8000 RestUser

Environment:
- SKEWLESS_LOADTEST_PAYLOADS: JSON lines written by `loadtests.payload_file.write_payloads`;
- SKEWLESS_LOADTEST_USER_RATE: requests per second per user (pacing: users x rate = target);
- SKEWLESS_LOADTEST_GRPC_TARGET: host:port of the gRPC face (GrpcUser).

This file runs inside locust only: importing locust monkey-patches the standard library
with gevent, so nothing else in skewless imports it.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import time
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent
from google.protobuf.json_format import ParseDict
from locust import FastHttpUser, User, constant_throughput, task

from loadtests.payload_file import read_payloads
from serving.protos import prediction_pb2 as pb
from serving.protos import prediction_pb2_grpc as pb_grpc

grpc_gevent.init_gevent()  # grpc's blocking calls must yield to the other greenlets

PAYLOADS = read_payloads(Path(os.environ["SKEWLESS_LOADTEST_PAYLOADS"]))
USER_RATE = float(os.environ.get("SKEWLESS_LOADTEST_USER_RATE", "10"))
TIMEOUT_SECONDS = 10.0


def _cycle(items: list[Any]) -> itertools.cycle[Any]:
    """Each user walks the payloads from its own random start."""
    start = random.randrange(len(items))
    return itertools.cycle(items[start:] + items[:start])


@functools.cache
def _grpc_requests() -> list[pb.PredictRequest]:
    return [ParseDict(p["grpc"], pb.PredictRequest()) for p in PAYLOADS]


class RestUser(FastHttpUser):
    wait_time = constant_throughput(USER_RATE)
    network_timeout = TIMEOUT_SECONDS
    connection_timeout = TIMEOUT_SECONDS

    def on_start(self) -> None:
        self.bodies = _cycle([p["rest"] for p in PAYLOADS])

    @task
    def predict(self) -> None:
        self.client.post("/v1/predict", json=next(self.bodies), name="rest /v1/predict")


class GrpcUser(User):
    wait_time = constant_throughput(USER_RATE)

    def on_start(self) -> None:
        self.channel = grpc.insecure_channel(os.environ["SKEWLESS_LOADTEST_GRPC_TARGET"])
        self.stub = pb_grpc.PredictionStub(self.channel)
        self.requests = _cycle(_grpc_requests())

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def predict(self) -> None:
        request = next(self.requests)
        started = time.perf_counter()
        exception: Exception | None = None
        length = 0
        try:
            length = self.stub.Predict(request, timeout=TIMEOUT_SECONDS).ByteSize()
        except grpc.RpcError as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type="grpc",
            name="grpc Predict",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )
