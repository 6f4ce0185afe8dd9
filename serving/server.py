"""`skewless serve`: REST (uvicorn) and gRPC in one process per worker, one predictor core.

Workers are separate processes that each bind both ports with SO_REUSEPORT; the kernel
spreads connections over them. SIGTERM (or SIGINT) makes /readyz false and the gRPC health
NOT_SERVING, waits `drain_seconds` so that load balancers stop sending, then lets uvicorn
drain in-flight requests, stops gRPC with a grace period, flushes the prediction log, and
exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client.multiprocess import mark_process_dead

from .admission import admitting
from .grpc_face import GrpcFace
from .rest import create_app
from .runtime import Runtime
from .settings import ServingSettings

log = logging.getLogger("skewless.serving")
GRPC_GRACE_SECONDS = 5.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: Runtime, grpc_face: GrpcFace) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.grpc_face = grpc_face
        self.loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not uvicorn's handler: it would re-raise the signal after shutdown (exit -15).
        if self.runtime.draining:
            self.force_exit = sig == signal.SIGINT
            return
        self.runtime.draining = True
        log.warning(
            "signal %d: not ready; draining in %.1f s", sig, self.runtime.settings.drain_seconds
        )
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self.grpc_face.set_health(), self.loop)
        timer = threading.Timer(self.runtime.settings.drain_seconds, self._exit)
        timer.daemon = True
        timer.start()

    def _exit(self) -> None:
        self.should_exit = True

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


def bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. Without it, a response written as headers then body
    # waits for the client's delayed ACK: ~40 ms per request on a kept-alive connection.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_worker(settings: ServingSettings) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # third-party noise in the log
    reuse = settings.workers > 1
    rest_socket = bind(settings.serve_host, settings.rest_port, reuse_port=reuse)
    runtime = Runtime(settings)
    grpc_face = GrpcFace(runtime, settings.serve_host, settings.grpc_port, reuse_port=reuse)

    async def start_grpc() -> None:
        await grpc_face.start()
        # Everything a request needs is imported and loaded: keep those objects out of every
        # later garbage collection (a full one costs ~50 ms here, see ARCHITECTURE.md).
        gc.collect()
        gc.freeze()
        rest_port = rest_socket.getsockname()[1]
        print(
            f"serving {runtime.config.name} "
            f"(champion {runtime.slots.champion.version if runtime.slots.champion else 'none'}) "
            f"REST http://{settings.serve_host}:{rest_port} gRPC {settings.serve_host}:"
            f"{grpc_face.port}",
            flush=True,
        )
        asyncio.get_running_loop().create_task(_health_loop(runtime, grpc_face))

    async def stop_grpc() -> None:
        await grpc_face.stop(GRPC_GRACE_SECONDS)

    app = create_app(runtime, (start_grpc, stop_grpc))
    config = uvicorn.Config(
        app,
        loop="asyncio",
        http=admitting(app),  # httptools, each request stamped at arrival, refused if full
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )
    server = DrainingServer(config, runtime, grpc_face)
    # The standard asyncio loop, shared with grpc.aio: uvloop gave no measurable gain here
    # (REST saturation 703 requests/s with it, 725-829 without, on this noisy machine).
    try:
        asyncio.run(server.serve(sockets=[rest_socket]))
    finally:
        runtime.prediction_log.close()  # even after a forced exit skipped the lifespan
    return 0


async def _health_loop(runtime: Runtime, grpc_face: GrpcFace) -> None:
    """Keep the gRPC health status in step with /readyz (model loaded, store answering)."""
    while not runtime.draining:
        try:
            await grpc_face.set_health()
        except Exception:  # it must outlive anything, or gRPC health freezes for good
            log.exception("gRPC health update failed; trying again")
        await asyncio.sleep(1.0)


def serve(settings: ServingSettings) -> int:
    if settings.workers == 1:  # its own registry is the whole service
        return run_worker(settings.model_copy(update={"metrics_dir": None}))
    # The workers' shared metric files: a fresh folder per service, named in the environment
    # before they start (prometheus_client and Feast read it at import), removed at the end.
    folder = Path(tempfile.mkdtemp(prefix="skewless-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROCESS_DIR"] = str(folder)
    shared = settings.model_copy(update={"metrics_dir": folder})
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=run_worker, args=(shared,)) for _ in range(settings.workers)]
    for worker in workers:
        worker.start()

    def forward(sig: int, _: FrameType | None) -> None:
        # SIGTERM for both: a terminal's Ctrl-C already reached the workers (same process
        # group), and a second SIGINT would make uvicorn skip the graceful shutdown.
        for worker in workers:
            if worker.is_alive():
                worker.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        running = list(workers)
        while running:
            for sentinel in multiprocessing.connection.wait([w.sentinel for w in running]):
                ended = next(w for w in running if w.sentinel == sentinel)
                ended.join()
                running.remove(ended)
                # Its gauges leave the live figures; its counters stay in the sums.
                mark_process_dead(ended.pid, str(folder))  # type: ignore[no-untyped-call]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(w.exitcode == 0 for w in workers) else 1


if __name__ == "__main__":
    sys.exit(serve(ServingSettings()))
