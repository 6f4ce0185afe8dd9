"""Saturation tools of the serving benchmarks: wrk (REST) and h2load (gRPC) pinned to core 1,
the service pinned to core 0, and what the service's own /metrics say between two scrapes."""

from __future__ import annotations

import re
import struct
import subprocess
import tempfile
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving.process import ServiceProcess


def pin(pid: int, core: int) -> None:
    """Every thread of `pid` and of its children (server workers) on one core."""
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    for each in (str(pid), *children):
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(core), each], capture_output=True, check=True
        )


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


def scrape(service: ServiceProcess) -> str:
    return httpx.get(service.url + "/metrics", timeout=10).text


def wrk_saturation(
    url: str, bodies: list[bytes] | None, seconds: float, folder: Path
) -> tuple[float, int]:
    """Requests/s and failed answers of wrk on core 1: POSTs of `bodies` in turn, or GETs."""
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds:.0f}s"]
    if bodies is not None:
        script = folder / "bodies.lua"
        literal = ",\n".join("[==[" + b.decode() + "]==]" for b in bodies)
        script.write_text(
            f"local bodies = {{{literal}}}\nlocal i = 0\nrequest = function()\n"
            "  i = i % #bodies + 1\n"
            '  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])\n'
            "end\n"
        )
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(failed.group(1)) if failed else 0
    errors += sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    return rate, errors


def h2load_grpc(target: str, message: bytes, seconds: float) -> tuple[float, int]:
    """gRPC Predict saturation from h2load on core 1: the length-prefixed message over h2c."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as body:
        body.write(b"\x00" + struct.pack(">I", len(message)) + message)
        body.flush()
        out = subprocess.run(
            [
                "taskset",
                "-c",
                "1",
                "h2load",
                "-c",
                "16",
                "-m",
                "1",
                "-D",
                f"{seconds:.0f}",
                "-d",
                body.name,
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                f"http://{target}/skewless.serving.v1.Prediction/Predict",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rate = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    failed = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed", out
    )
    errors = (int(codes.group(4)) + int(codes.group(3)) if codes else 0) + (
        int(failed.group(1)) if failed else 0
    )
    return rate, errors


def grpc_ok(service: ServiceProcess, before: str) -> float:
    """gRPC calls answered OK between a scrape and now (h2load's 2xx includes gRPC errors)."""

    def ok(text: str) -> float:
        pattern = r'^skewless_requests_total\{endpoint="grpc/Predict",status="OK"\} (\S+)$'
        found = re.search(pattern, text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    return ok(scrape(service)) - ok(before)
