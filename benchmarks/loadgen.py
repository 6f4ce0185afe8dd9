"""An open-loop load generator for the serving benchmark: requests are *scheduled* at a fixed
rate and each latency is measured from its scheduled send time, so a slow server cannot slow
the generator down and hide its own queueing (no coordinated omission).

REST (and Feast's `feast serve`) over raw keep-alive HTTP/1.1 connections with pre-encoded
request bytes, gRPC through grpc.aio; one asyncio loop (uvloop) in its own process, so the
generator costs as little CPU per request as Python allows on this 2-core machine.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

Call = Callable[[int], Awaitable[bool]]  # request k -> succeeded?


@dataclass(frozen=True)
class LoadResult:
    target_rate: float  # 0: closed loop (saturation)
    seconds: float
    sent: int
    errors: int
    latencies_ms: np.ndarray

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.seconds

    def percentile(self, q: float) -> float:
        return (
            float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")
        )


class HttpPool:
    """Keep-alive HTTP/1.1 connections; each request is one pre-encoded bytes object."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def send(self, request: bytes) -> bool:
        reader, writer = await self.free.get()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            return status == 200
        finally:
            self.free.put_nowait((reader, writer))

    async def close(self) -> None:
        while not self.free.empty():
            _, writer = self.free.get_nowait()
            writer.close()


def http_request(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def open_loop(call: Call, rate: float, seconds: float, warmup: float = 1.0) -> LoadResult:
    """`rate` requests per second for `seconds` (after `warmup` seconds not counted).
    Times come from perf_counter: uvloop's loop.time() has millisecond resolution."""
    latencies: list[float] = []
    errors = 0
    tasks: set[asyncio.Task[None]] = set()
    total = int((seconds + warmup) * rate)
    start = time.perf_counter() + 0.05

    async def one(k: int, scheduled: float) -> None:
        nonlocal errors
        try:
            ok = await call(k)
        except Exception:
            ok = False
        if scheduled - start >= warmup:
            latencies.append((time.perf_counter() - scheduled) * 1000)
            errors += not ok

    for k in range(total):
        scheduled = start + k / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(k, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return LoadResult(rate, seconds, len(latencies), errors, np.asarray(latencies))


async def closed_loop(
    call: Call, concurrency: int, seconds: float, warmup: float = 1.0
) -> LoadResult:
    """`concurrency` callers back to back: the saturation throughput."""
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()
    measure_from = time.perf_counter() + warmup
    end = measure_from + seconds

    async def caller() -> None:
        nonlocal errors
        while (now := time.perf_counter()) < end:
            try:
                ok = await call(next(counter))
            except Exception:
                ok = False
            if now >= measure_from:
                latencies.append((time.perf_counter() - now) * 1000)
                errors += not ok

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return LoadResult(0.0, seconds, len(latencies), errors, np.asarray(latencies))
