"""Online latency of the prediction service (REST and gRPC) against Feast's own feature server
(`feast serve`, features only, no model), same machine, same Redis, same feature service.

    python benchmarks/serving_latency.py [--seconds 10] [--rates 1000,2000]

Needs `skewless quickstart` (tables, a champion model) and a Redis on SKEWLESS_REDIS_CONNECTION
(default 127.0.0.1:6379); it applies and materializes the Redis variant first. For each face:
sequential latency (one caller), open-loop latency at each fixed rate (measured from each
request's scheduled send time), and the saturation throughput (32 callers back to back). For
skewless it also reads the server's own latency histogram (/metrics) over each run. 1 server
worker; the load generator runs on the same 2 cores. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import uvloop
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loadgen import HttpPool, LoadResult, closed_loop, http_request, open_loop  # noqa: E402
from serving.grpc_face import grpc_instance  # noqa: E402
from serving.process import ServiceProcess, free_port  # noqa: E402
from serving.protos import prediction_pb2 as pb  # noqa: E402
from serving.protos import prediction_pb2_grpc as pb_grpc  # noqa: E402
from serving.schemas import rest_body  # noqa: E402
from skewless import feature_store as fs  # noqa: E402
from skewless.config import load_model_config  # noqa: E402
from skewless.features import service_schema  # noqa: E402
from skewless.settings import Settings  # noqa: E402

ROWS = 2000
POOL = 32


def pin(pid: int, core: int) -> None:
    """Every thread of `pid` and of its children (server workers) on one core."""
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    for each in (str(pid), *children):
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(core), each], capture_output=True, check=True
        )


def payloads(settings: Settings) -> tuple[list[bytes], list[pb.PredictRequest], list[bytes]]:
    config = load_model_config(settings.config)
    store = fs.open_store(settings)
    schema = service_schema(store, config.feature_service)
    rows = fs.recent_entity_rows(store, config, schema, ROWS)
    rest, grpc_requests, feast = [], [], []
    for _, row in rows.iterrows():
        rest.append(json.dumps(rest_body(row, schema)).encode())
        grpc_requests.append(pb.PredictRequest(instance=grpc_instance(row, schema)))
        entities = {k: row[k] for k in schema.join_keys}
        request = {k: row[k] for k in schema.request_fields}
        unix = {k: int(v.timestamp()) if hasattr(v, "timestamp") else v for k, v in request.items()}
        feast.append(json.dumps({
            "feature_service": config.feature_service,
            "entities": {k: [v] for k, v in {**entities, **unix}.items()},
        }).encode())  # fmt: skip
    return rest, grpc_requests, feast


def server_quantiles(before: str, after: str, endpoint: str) -> tuple[float, float]:
    """p50 and p99 (ms) of the service's own `total` histogram between two scrapes."""

    def buckets(text: str) -> dict[float, float]:
        found: dict[float, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = s.labels
                if (
                    s.name.endswith("_bucket")
                    and labels.get("endpoint") == endpoint
                    and (labels.get("stage") == "total")
                ):
                    found[float(labels["le"])] = s.value
        return found

    start, end = buckets(before), buckets(after)
    counts = [(le, end[le] - start.get(le, 0.0)) for le in sorted(end)]
    total = counts[-1][1]

    def quantile(q: float) -> float:
        target, lower, below = q * total, 0.0, 0.0
        for le, cumulative in counts:
            if cumulative >= target:
                share = (target - below) / max(cumulative - below, 1e-9)
                return (lower + share * (le - lower)) * 1000
            lower, below = le, cumulative
        return float("inf")

    return quantile(0.5), quantile(0.99)


async def run_face(
    name: str, call: Callable[[int], Any], rates: list[float], seconds: float,
    metrics: Callable[[], str] | None, endpoint: str,
) -> list[tuple[str, str, LoadResult, tuple[float, float] | None]]:  # fmt: skip
    results = []
    plans: list[tuple[str, Callable[[], Any]]] = [
        ("sequential", lambda: closed_loop(call, 1, seconds)),
        *[(f"{r:,.0f} rps", lambda r=r: open_loop(call, r, seconds)) for r in rates],
        ("saturation (32 callers)", lambda: closed_loop(call, POOL, seconds)),
    ]
    for label, plan in plans:
        before = metrics() if metrics else ""
        result = await plan()
        server = server_quantiles(before, metrics(), endpoint) if metrics else None
        results.append((name, label, result, server))
        print(
            f"{name:9} {label:24} achieved {result.achieved_rate:7,.0f}/s errors {result.errors:4} "
            f"client p50 {result.percentile(50):6.2f} p99 {result.percentile(99):7.2f} ms"
            + (f" | server p50 {server[0]:.2f} p99 {server[1]:.2f} ms" if server else ""),
            flush=True,
        )
    return results


async def bench_skewless(service, rest, grpc_requests, rates, seconds, one_worker):  # type: ignore[no-untyped-def]
    # /metrics is per process: with several workers one scrape sees one worker only.
    scrape = (lambda: httpx.get(service.url + "/metrics", timeout=10).text) if one_worker else None
    pool = HttpPool("127.0.0.1", service.rest_port, POOL)
    await pool.open()
    encoded = [http_request("127.0.0.1", service.rest_port, "/v1/predict", b) for b in rest]
    out = await run_face("REST", lambda k: pool.send(encoded[k % len(encoded)]), rates, seconds,
                         scrape, "/v1/predict")  # fmt: skip
    await pool.close()
    async with grpc.aio.insecure_channel(service.grpc_target) as channel:
        stub = pb_grpc.PredictionStub(channel)

        async def call(k: int) -> bool:
            await stub.Predict(grpc_requests[k % len(grpc_requests)], timeout=5)
            return True

        out += await run_face("gRPC", call, rates, seconds, scrape, "grpc/Predict")
    return out


async def bench_feast(port: int, feast: list[bytes], rates, seconds):  # type: ignore[no-untyped-def]
    pool = HttpPool("127.0.0.1", port, POOL)
    await pool.open()
    encoded = [http_request("127.0.0.1", port, "/get-online-features", b) for b in feast]
    out = await run_face("feast", lambda k: pool.send(encoded[k % len(encoded)]), rates, seconds,
                         None, "")  # fmt: skip
    await pool.close()
    return out


def start_feast(settings: Settings) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    # Feast's defaults, but for --max-requests: its default (1,000) restarts the worker
    # every second at these rates, which would measure restarts, not serving.
    command = fs.feast_command(
        settings, "serve", "-p", str(port), "--no-access-log", "--max-requests", "10000000"
    )
    process = subprocess.Popen(command, env=fs.feast_environment(settings),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("feast serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="1000,2000")
    parser.add_argument("--no-materialize", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="skewless server processes")
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on core 0, load generator on core 1 (taskset): the figures then measure "
        "the server, not the two fighting for both cores",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    os.environ["SKEWLESS_ONLINE_STORE"] = "redis"
    settings = Settings()
    if not args.no_materialize:
        fs.apply(settings)
        fs.materialize(fs.open_store(settings), load_model_config(settings.config).as_of)
    rest, grpc_requests, feast = payloads(settings)
    rows: list[tuple[str, str, LoadResult, tuple[float, float] | None]] = []
    env = {"SKEWLESS_WORKERS": str(args.workers)}
    if args.pin:
        os.sched_setaffinity(0, {1})
    with ServiceProcess(env, log_path=settings.state_dir / "benchmark-serve.log") as service:
        if args.pin and service.process is not None:
            pin(service.process.pid, 0)
        rows += uvloop.run(
            bench_skewless(service, rest, grpc_requests, rates, args.seconds, args.workers == 1)
        )
    if not args.skip_feast:
        process, port = start_feast(settings)
        try:
            rows += uvloop.run(bench_feast(port, feast, rates, args.seconds))
        finally:
            process.terminate()
            process.wait(30)
    print(
        f"\n{args.seconds:.0f} s per run, {args.workers} skewless worker(s), Redis, "
        f"{ROWS} real requests\n"
    )
    print("| face | load | achieved (req/s) | errors | client p50 (ms) | client p99 (ms) "
          "| server p50 (ms) | server p99 (ms) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, label, r, server in rows:
        s50, s99 = (f"{server[0]:.2f}", f"{server[1]:.2f}") if server else ("—", "—")
        print(f"| {name} | {label} | {r.achieved_rate:,.0f} | {r.errors} | {r.percentile(50):.2f} "
              f"| {r.percentile(99):.2f} | {s50} | {s99} |")  # fmt: skip


if __name__ == "__main__":
    main()
