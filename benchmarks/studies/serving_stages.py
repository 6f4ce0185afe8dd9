"""CPU per prediction, stage by stage, inside one service process (no network client): where a
prediction's microseconds go on this machine.

    python -m benchmarks.serving_stages [--store redis|sqlite|both] [--calls 3000]

For each online store it builds the service's runtime as `skewless serve` does, then times
(CPU, `time.process_time`, median of 5 rounds) over real request bodies:
- validate: the request body through the wire model (pydantic);
- features: the online read of the feature service (store round trip, decoding, on-demand
  view, TTL rule);
- encode + score: the model input and LightGBM (the single-row path where the code has one);
- metrics: the metric updates one prediction makes (7: stage and total latencies, score,
  counts), made the way the measured code makes them;
- logging: what the prediction log adds (the core with and without it, writer thread included);
- framework: a whole REST request through the ASGI app (routing, body, JSON, response), less
  the core and validate; "framework, core stubbed" times it with the core answering a kept
  prediction (lower: without the core's allocations the collector runs less often);
- core, other: the rest of the core (routing to a role, the answer objects): what is left.
The stages add up to about the whole request (each is a difference or a median: ±5 µs).
Needs `skewless quickstart` (and, for Redis,
`benchmarks/serving_latency.py` once: it applies and materializes the Redis variant). Runs
against whatever `serving` is importable, so an older checkout can be measured the same way
(PYTHONPATH=<old checkout>).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

ROUNDS = 5


def cpu_us(call: Callable[[], Any], calls: int) -> float:
    for _ in range(min(300, calls)):
        call()
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(calls):
            call()
        rounds.append((time.process_time() - started) / calls * 1e6)
    return statistics.median(rounds)


def measure(store: str, calls: int) -> dict[str, float]:
    os.environ["SKEWLESS_ONLINE_STORE"] = store
    os.environ.setdefault("SKEWLESS_PREDICTION_LOG", f"/tmp/skewless-stages-{store}")
    from serving.core import Instance
    from serving.rest import create_app
    from serving.runtime import Runtime
    from serving.settings import ServingSettings

    runtime = Runtime(ServingSettings())
    runtime.refresh_models()
    runtime.prediction_log.start()
    champion = runtime.slots.champion
    assert champion is not None, "no champion: run skewless quickstart"
    body = runtime.wire.single(**runtime.example()).model_dump_json().encode()
    parsed = runtime.wire.single.model_validate_json(body)
    instance = Instance(None, parsed.entities.__dict__, parsed.request.__dict__)
    rows = [{**instance.entities, **instance.request}]
    now = datetime.now(UTC)
    read = runtime.reader(rows, now)
    single = getattr(champion.model, "single", None)
    gc.collect()
    gc.freeze()  # as the server does after start-up

    def predict() -> None:
        runtime.core.predict([instance], endpoint="/v1/predict")

    figures = {
        "validate": cpu_us(lambda: runtime.wire.single.model_validate_json(body), calls),
        "features": cpu_us(lambda: runtime.reader(rows, now), calls),
        "encode + score": cpu_us(
            (lambda: single.score(read.values))
            if single
            else (lambda: champion.model.score(read.values)),
            calls,
        ),
    }
    core_all = cpu_us(predict, calls)
    figures["metrics"] = cpu_us(_metric_updates(runtime.metrics, champion.version), calls)
    log, runtime.core.prediction_log = runtime.core.prediction_log, None
    core_no_log = cpu_us(predict, calls)
    runtime.core.prediction_log = log
    figures["logging"] = core_all - core_no_log  # the writer thread and its GC load included
    figures["core, other"] = core_all - sum(
        figures[k] for k in ("features", "encode + score", "metrics", "logging")
    )

    app = create_app(runtime)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/predict",
        "raw_path": b"/v1/predict",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "headers": [
            (b"host", b"x"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    loop = asyncio.new_event_loop()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(_: dict[str, Any]) -> None:
        return None

    def request() -> None:
        loop.run_until_complete(app(scope, receive, send))

    figures["whole request"] = cpu_us(request, calls)
    answer = runtime.core.predict([instance], endpoint="/v1/predict")
    real, runtime.core.predict = runtime.core.predict, lambda *_, **__: answer
    stubbed = cpu_us(request, calls) - figures["validate"]
    runtime.core.predict = real
    figures["framework"] = figures["whole request"] - core_all - figures["validate"]
    figures["whole request"] = figures.pop("whole request")  # last in the table
    figures["framework, core stubbed"] = stubbed
    runtime.prediction_log.close()
    return figures


def _metric_updates(metrics: Any, version: str) -> Callable[[], None]:
    """The metric updates of one REST prediction, made as the measured code makes them."""
    if hasattr(metrics, "child"):
        child = metrics.child
    else:  # before issue 14: a label lookup per update

        def child(metric: Any, *labels: str) -> Any:
            return metric.labels(*labels)

    def updates() -> None:
        child(metrics.latency, "/v1/predict", "features").observe(0.0001)
        child(metrics.latency, "/v1/predict", "score").observe(0.0001)
        child(metrics.predictions, "champion", version).inc()
        child(metrics.scores, "champion").observe(0.3)
        child(metrics.role_latency, "champion").observe(0.0002)
        child(metrics.latency, "/v1/predict", "total").observe(0.0002)
        child(metrics.requests, "/v1/predict", "200").inc()

    return updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("redis", "sqlite", "both"), default="both")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--json", action="store_true", help="one store's figures as JSON")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.store, args.calls)))
        return
    stores = ("redis", "sqlite") if args.store == "both" else (args.store,)
    results = {}
    for store in stores:  # a process each: two runtimes in one would share metric files
        done = subprocess.run(
            [sys.executable, __file__, "--store", store, "--calls", str(args.calls), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        results[store] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nCPU µs per prediction, median of {ROUNDS} rounds of {args.calls} calls\n")
    print("| stage | " + " | ".join(stores) + " |")
    print("|---|" + "---|" * len(stores))
    for stage in next(iter(results.values())):
        print(f"| {stage} | " + " | ".join(f"{results[s][stage]:.0f}" for s in stores) + " |")


if __name__ == "__main__":
    main()
