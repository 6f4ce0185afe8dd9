"""Locust scenarios: REST (FastHttpUser) and gRPC users replaying real request payloads.

Run by the gate (`loadtests/locust_run.py`), or by hand:

    SKEWLESS_LOADTEST_PAYLOADS=payloads.jsonl SKEWLESS_LOADTEST_USER_RATE=10 \\
    locust -f loadtests/locustfile.py --headless -u 20 -r 20 -t 30s \\
        --host http://127.0.0.1:8000 RestUser

Environment:
- SKEWLESS_LOADTEST_PAYLOADS: JSON lines written by `loadtests.payload_file.write_payloads`;
- SKEWLESS_LOADTEST_USER_RATE: requests per second per user (pacing: users x rate = target);
- SKEWLESS_LOADTEST_GRPC_TARGET: host:port of the gRPC face (GrpcUser);
- SKEWLESS_LOADTEST_FINAL_STATS: where to write the run's final figures (JSON) as locust quits.
  Its CSV files are written once a second while it runs and not again at the end, so they can
  miss the last second of requests; these figures are taken after the last one.

This file runs inside locust only: importing locust monkey-patches the standard library
with gevent, so nothing else in skewless imports it.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent
from google.protobuf.json_format import ParseDict
from locust import FastHttpUser, User, constant_throughput, events, task
from locust.env import Environment

from loadtests.payload_file import read_payloads
from serving.protos import prediction_pb2 as pb
from serving.protos import prediction_pb2_grpc as pb_grpc

grpc_gevent.init_gevent()  # grpc's blocking calls must yield to the other greenlets

PAYLOADS = read_payloads(Path(os.environ["SKEWLESS_LOADTEST_PAYLOADS"]))
USER_RATE = float(os.environ.get("SKEWLESS_LOADTEST_USER_RATE", "10"))
TIMEOUT_SECONDS = 10.0
PERCENTILES = {
    "50%": 0.5,
    "66%": 0.66,
    "75%": 0.75,
    "80%": 0.8,
    "90%": 0.9,
    "95%": 0.95,
    "98%": 0.98,
    "99%": 0.99,
    "99.9%": 0.999,
    "99.99%": 0.9999,
    "100%": 1.0,
}
_environment: list[Environment] = []


@events.init.add_listener
def _remember(environment: Environment, **_: Any) -> None:
    _environment.append(environment)


@events.quit.add_listener
def _write_final_stats(exit_code: int, **_: Any) -> None:
    path = os.environ.get("SKEWLESS_LOADTEST_FINAL_STATS")
    if not path or not _environment:
        return
    stats = _environment[0].stats
    total = stats.total
    figures = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rate": total.total_rps,
        "percentiles_ms": {
            name: total.get_response_time_percentile(share)
            for name, share in PERCENTILES.items()
            if total.num_requests
        },
        "failure_examples": [
            f"{e.occurrences}x {e.name}: {e.error}" for e in list(stats.errors.values())[:5]
        ],
    }
    Path(path).write_text(json.dumps(figures))


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
