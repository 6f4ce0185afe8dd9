"""Online serving against the machine's floor and Feast's own feature server (`feast serve`,
features only, no model): same machine, same feature service, one run.

    python -m benchmarks.serving_latency [--seconds 6] [--rates 1000,2000]

Needs `skewless quickstart` (tables, a champion model, the SQLite online store), a Redis on
SKEWLESS_REDIS_CONNECTION (default 127.0.0.1:6379; the Redis variant is applied and
materialized first) and wrk and h2load (`apt-get install wrk nghttp2-client`). Pinned: the
service on core 0, every load generator on core 1 (taskset), so a throughput measures the
service, not the two fighting for two cores; Redis is left to the scheduler.

- saturation: wrk (C, closed loop, 16 connections) over 2,000 real request bodies in turn:
  REST on Redis and on SQLite, the same service's `GET /livez` (its floor), `feast serve`;
  gRPC Predict through h2load (HTTP/2; one request body, as h2load sends one);
- open loop: REST at each rate from a Python generator (uvloop) that measures each request's
  latency from its scheduled send time, so queueing is never hidden (no coordinated omission);
- two workers: the service unpinned on both cores with the load generators beside them.
The service's own latency histogram (/metrics, all workers) gives the server-side quantiles.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

from benchmarks.loadgen import HttpPool, LoadResult, http_request, open_loop
from benchmarks.saturation import (
    grpc_ok,
    h2load_grpc,
    pin,
    scrape,
    server_quantiles,
    wrk_saturation,
)
from benchmarks.tools import require
from serving.grpc_face import grpc_instance
from serving.process import ServiceProcess, free_port
from serving.protos import prediction_pb2 as pb
from serving.schemas import rest_body
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.configuration import load_model_config
from skewless.settings import Settings

ROWS = 2000
POOL = 32


def payloads(settings: Settings) -> tuple[list[bytes], list[pb.PredictRequest], list[bytes]]:
    config = load_model_config(settings.model_file)
    store = feature_store.open_store(settings)
    schema = service_schema(store, config.feature_service)
    rows = feature_store.recent_entity_rows(store, config, schema, ROWS)
    rest, grpc_requests, feast = [], [], []
    for _, row in rows.iterrows():
        rest.append(json.dumps(rest_body(row, schema)).encode())
        grpc_requests.append(pb.PredictRequest(instance=grpc_instance(row, schema)))
        entities = {k: row[k] for k in schema.join_keys}
        request = {k: row[k] for k in schema.request_fields}
        unix = {k: int(v.timestamp()) if hasattr(v, "timestamp") else v for k, v in request.items()}
        feast.append(
            json.dumps(
                {
                    "feature_service": config.feature_service,
                    "entities": {k: [v] for k, v in {**entities, **unix}.items()},
                }
            ).encode()
        )
    return rest, grpc_requests, feast


Row = tuple[str, str, str, float, int, float | None, float | None, tuple[float, float] | None]


Opened = list[tuple[float, LoadResult, tuple[float, float]]]


async def open_rates(
    service: ServiceProcess, rest: list[bytes], rates: list[float], seconds: float
) -> Opened:
    pool = HttpPool("127.0.0.1", service.rest_port, POOL)
    await pool.open()
    encoded = [http_request("127.0.0.1", service.rest_port, "/v1/predict", b) for b in rest]
    out = []
    for rate in rates:
        before = scrape(service)
        result = await open_loop(lambda k: pool.send(encoded[k % len(encoded)]), rate, seconds)
        out.append((rate, result, server_quantiles(before, scrape(service), "/v1/predict")))
    await pool.close()
    return out


def start_feast(settings: Settings) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    # Feast's defaults, but for --max-requests: its default (1,000) restarts the worker
    # every second at these rates, which would measure restarts, not serving.
    command = feature_store.feast_command(
        settings, "serve", "-p", str(port), "--no-access-log", "--max-requests", "10000000"
    )
    process = subprocess.Popen(
        command,
        env=feature_store.feast_environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("feast serve did not start")


def one_worker(
    store: str,
    settings: Settings,
    rest: list[bytes],
    message: bytes,
    args: argparse.Namespace,
    folder: Path,
) -> list[Row]:
    rows: list[Row] = []
    env = {"SKEWLESS_ONLINE_STORE": store, "SKEWLESS_WORKERS": "1"}
    log = settings.state_dir / f"benchmark-serve-{store}.log"
    with ServiceProcess(env, log_path=log) as service:
        assert service.process is not None
        pin(service.process.pid, 0)
        wrk_saturation(service.url + "/v1/predict", rest, 2, folder)  # warm
        before = scrape(service)
        rate, errors = wrk_saturation(service.url + "/v1/predict", rest, args.seconds, folder)
        server = server_quantiles(before, scrape(service), "/v1/predict")
        rows.append(("1 pinned", "REST", store, rate, errors, None, None, server))
        print(rows[-1], flush=True)
        rate, errors = wrk_saturation(service.url + "/livez", None, args.seconds, folder)
        rows.append(("1 pinned", "GET /livez (floor)", store, rate, errors, None, None, None))
        print(rows[-1], flush=True)
        if store == "redis":
            before = scrape(service)
            rate, errors = h2load_grpc(service.grpc_target, message, args.seconds)
            calls = grpc_ok(service, before)
            errors += max(0, round(rate * args.seconds - calls))  # not OK in the trailers
            server = server_quantiles(before, scrape(service), "grpc/Predict")
            rows.append(("1 pinned", "gRPC", store, rate, errors, None, None, server))
            print(rows[-1], flush=True)
            for rate, result, server in uvloop.run(
                open_rates(service, rest, args.rates, args.seconds)
            ):
                rows.append(
                    (
                        f"1 pinned, {rate:,.0f}/s offered",
                        "REST open loop",
                        store,
                        result.achieved_rate,
                        result.errors,
                        result.percentile(50),
                        result.percentile(99),
                        server,
                    )
                )
                print(rows[-1], flush=True)
    return rows


def two_workers(
    settings: Settings, rest: list[bytes], args: argparse.Namespace, folder: Path
) -> list[Row]:
    rows: list[Row] = []
    os.sched_setaffinity(0, {0, 1})
    env = {"SKEWLESS_ONLINE_STORE": "redis", "SKEWLESS_WORKERS": "2"}
    with ServiceProcess(env, log_path=settings.state_dir / "benchmark-serve-2.log") as service:
        wrk_saturation(service.url + "/v1/predict", rest, 2, folder)
        before = scrape(service)
        command_rate, errors = wrk_saturation(
            service.url + "/v1/predict", rest, args.seconds, folder
        )
        server = server_quantiles(before, scrape(service), "/v1/predict")
        rows.append(
            ("2 on 2 cores, wrk beside", "REST", "redis", command_rate, errors, None, None, server)
        )
        print(rows[-1], flush=True)
        for rate, result, server in uvloop.run(open_rates(service, rest, [2000.0], args.seconds)):
            rows.append(
                (
                    f"2 on 2 cores, {rate:,.0f}/s offered",
                    "REST open loop",
                    "redis",
                    result.achieved_rate,
                    result.errors,
                    result.percentile(50),
                    result.percentile(99),
                    server,
                )
            )
            print(rows[-1], flush=True)
    os.sched_setaffinity(0, {1})
    return rows


def feast_saturation(
    settings: Settings, feast: list[bytes], args: argparse.Namespace, folder: Path
) -> list[Row]:
    process, port = start_feast(settings)
    try:
        pin(process.pid, 0)
        url = f"http://127.0.0.1:{port}/get-online-features"
        wrk_saturation(url, feast, 2, folder)
        rate, errors = wrk_saturation(url, feast, args.seconds, folder)
    finally:
        process.terminate()
        process.wait(30)
    return [
        ("feast serve, pinned", "REST (features only)", "redis", rate, errors, None, None, None)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rates", default="1000,2000")
    parser.add_argument("--no-materialize", action="store_true")
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--skip-two-workers", action="store_true")
    args = parser.parse_args()
    require("wrk", "h2load", "taskset")
    args.rates = [float(r) for r in args.rates.split(",")]
    os.environ["SKEWLESS_ONLINE_STORE"] = "redis"
    settings = Settings()
    if not args.no_materialize:
        feature_store.apply(settings)
        feature_store.materialize(
            feature_store.open_store(settings), load_model_config(settings.model_file).as_of
        )
    rest, grpc_requests, feast = payloads(settings)
    message = grpc_requests[0].SerializeToString()
    os.sched_setaffinity(0, {1})  # this process and its load generators: core 1
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows += one_worker("redis", settings, rest, message, args, folder)
        rows += one_worker("sqlite", settings, rest, message, args, folder)
        if not args.skip_two_workers:
            rows += two_workers(settings, rest, args, folder)
        if not args.skip_feast:
            rows += feast_saturation(settings, feast, args, folder)
    print(f"\n{args.seconds:.0f} s per run, {ROWS} real requests\n")
    print(
        "| workers, load | face | store | achieved (req/s) | errors | client p50 (ms) "
        "| client p99 (ms) | server p50 (ms) | server p99 (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run, face, store, rate, errors, c50, c99, server in rows:
        client = (f"{c50:.2f}", f"{c99:.2f}") if c50 is not None and c99 is not None else ("—", "—")
        s50, s99 = (f"{server[0]:.2f}", f"{server[1]:.2f}") if server else ("—", "—")
        print(
            f"| {run} | {face} | {store} | {rate:,.0f} | {errors} | {client[0]} | {client[1]} "
            f"| {s50} | {s99} |"
        )


if __name__ == "__main__":
    main()
