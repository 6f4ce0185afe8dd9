"""Running `skewless serve` as a child process on free loopback ports: used by the
quickstart's demo, the integration tests and the deployment gate."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    def __init__(
        self,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        program: list[str] | None = None,
    ) -> None:
        # `program` runs instead of `python -m cli` (a test build of the service)
        self.program = program or [sys.executable, "-m", "cli"]
        self.rest_port = free_port()
        self.grpc_port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 90.0, *, until: str = "/readyz") -> ServiceProcess:
        """Start it and wait for `until` to answer 200 (`/livez`: up, ready or not)."""
        out = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        self._log_file = out if self.log_path else None
        command = [
            *self.program,
            "serve",
            "--host",
            "127.0.0.1",
            "--rest-port",
            str(self.rest_port),
            "--grpc-port",
            str(self.grpc_port),
        ]
        # A session of its own: a Ctrl-C at the terminal reaches the caller, which stops the
        # service in order; and a kill can reach its worker processes as one group.
        self.process = subprocess.Popen(
            command, env=self.env, stdout=out, stderr=out, start_new_session=True
        )
        self.wait_ready(timeout, until)
        return self

    def wait_ready(self, timeout: float, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"the service exited with {self.process.returncode} before it was ready"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"the service was not ready within {timeout:.0f} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # workers included
            return self.process.wait()
        finally:
            if self._log_file is not None:
                self._log_file.close()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
