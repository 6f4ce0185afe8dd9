"""How much of the gate's client-side latency is locust? The same service, the same real
payloads, the same rate: once driven by locust (as the gate does), once by a lean asyncio
open-loop client (benchmarks/loadgen.py), each read from both sides (the service's own
/metrics histogram before and after, and the client's own timings).

    python -m benchmarks.gate_views [--rate 1000] [--seconds 30]

Needs `skewless quickstart` (tables, a champion) and the Redis variant applied and
materialized (`SKEWLESS_ONLINE_STORE=redis skewless apply && skewless materialize`).
1 service worker; the clients run on the same 2 cores. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

from benchmarks.loadgen import HttpPool, http_request, open_loop
from loadtests import server_metrics
from loadtests.load_judgement import LATENCY
from loadtests.locust_run import LoadPlan, LocustRun
from loadtests.payload_file import write_payloads
from loadtests.payloads import replay_payloads
from serving.process import ServiceProcess
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.configuration import load_model_config
from skewless.settings import Settings


def server_view(
    before: server_metrics.Samples, after: server_metrics.Samples
) -> tuple[float, float, float, float]:
    h = server_metrics.histogram(
        server_metrics.delta(before, after), LATENCY, endpoint="/v1/predict", stage="total"
    )
    return h.total, h.quantile(0.5) * 1000, h.quantile(0.95) * 1000, h.quantile(0.99) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    os.environ["SKEWLESS_ONLINE_STORE"] = "redis"
    settings = Settings()
    config = load_model_config(settings.model_file)
    store = feature_store.open_store(settings)
    schema = service_schema(store, config.feature_service)
    items, _ = replay_payloads(store, config, schema, 2000, 0.05, seed=7)
    out = Path(tempfile.mkdtemp(prefix="gate-views-"))
    path = write_payloads(items, out / "payloads.jsonl")
    lines = []
    with ServiceProcess(
        {**settings.as_env(), "SKEWLESS_PREDICTION_LOG": str(out / "log")}, out / "service.log"
    ) as service:
        before = server_metrics.scrape(service.url)
        run = LocustRun(
            LoadPlan("rest", args.rate, args.seconds), service.url, service.grpc_target, path, out
        ).start()
        stats = run.wait()
        n, p50, p95, p99 = server_view(before, server_metrics.scrape(service.url))
        c = stats.percentiles_ms
        lines.append(
            f"| locust (FastHttpUser, {LoadPlan('rest', args.rate, 1).users} users) | "
            f"{stats.rate:.0f} | {p50:.2f} / {p95:.2f} / {p99:.2f} | "
            f"{c['50%']:g} / {c['95%']:g} / {c['99%']:g} | {stats.failures} |"
        )
        port = int(service.url.rsplit(":", 1)[1])
        bodies = [
            http_request("127.0.0.1", port, "/v1/predict", json.dumps(i["rest"]).encode())
            for i in items
        ]

        async def lean() -> tuple[float, list[float], int]:
            pool = HttpPool("127.0.0.1", port, 64)
            await pool.open()
            result = await open_loop(
                lambda k: pool.send(bodies[k % len(bodies)]), args.rate, args.seconds
            )
            await pool.close()
            q = [result.percentile(50), result.percentile(95), result.percentile(99)]
            return result.achieved_rate, q, result.errors

        before = server_metrics.scrape(service.url)
        rate, q, errors = asyncio.run(lean())
        n, p50, p95, p99 = server_view(before, server_metrics.scrape(service.url))
        lines.append(
            f"| asyncio open loop (benchmarks/loadgen.py, 64 connections) | {rate:.0f} | "
            f"{p50:.2f} / {p95:.2f} / {p99:.2f} | {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f} | "
            f"{errors} |"
        )
    print(f"REST /v1/predict at {args.rate:g} requests/s for {args.seconds:g} s, 1 worker, Redis\n")
    print(
        "| client | achieved/s | server p50 / p95 / p99 ms | client p50 / p95 / p99 ms | errors |"
    )
    print("|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
