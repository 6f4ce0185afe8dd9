"""A real Ray cluster of two nodes on loopback for tests: `ray start --head` and a second
`ray start --address`, one CPU each, so that two workers must land on two nodes. Each runs
in the foreground (`--block`) in a session of its own; stopping it stops that session's
processes only (`ray stop` would stop every Ray on the machine).

The nodes get a HOME of their own: a Ray started by `ray.init()` without an address writes
~/.ray/auth_token, and a later `ray start` finding it demands that token of every client
(Ray 2.60), which `ray status` then fails without."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serving.process import free_port

RAY = str(Path(sys.executable).with_name("ray"))
# Ray's default is 30 % of the memory per node, in /dev/shm: two nodes on one host would ask
# for 60 % of it. The batch work moves little through the object store.
OBJECT_STORE_BYTES = 2 * 1024**3


class RayCluster:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env: dict[str, str] = {}
        self.logs: list[Path] = []
        # Ray's sockets live under its temp folder, and a Unix socket's path may not exceed
        # 107 bytes: a short folder of its own, not one under the caller's.
        self.sessions = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, nodes: int = 2, timeout: float = 120.0) -> RayCluster:
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(self.folder)}
        env = self.env
        common = [
            "--block",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--disable-usage-stats",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
        ]
        head = [
            RAY,
            "start",
            "--head",
            f"--port={self.port}",
            "--include-dashboard=false",
            f"--temp-dir={self.sessions}",
            *common,
        ]
        try:
            self._spawn(head, "head", env)
            self._wait_for(1, timeout)
            for n in range(1, nodes):
                self._spawn([RAY, "start", f"--address={self.address}", *common], f"node{n}", env)
            self._wait_for(nodes, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, command: list[str], name: str, env: dict[str, str]) -> None:
        self.logs.append(self.folder / f"{name}.log")
        with self.logs[-1].open("wb") as log:  # the node keeps its own descriptor
            self.processes.append(
                subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )

    def _wait_for(self, nodes: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, log in zip(self.processes, self.logs, strict=True):
                if process.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"a Ray node exited ({process.args}):\n{tail}")
            status = subprocess.run(
                [RAY, "status", f"--address={self.address}"],
                capture_output=True,
                text=True,
                env=self.env,
            )
            if status.returncode == 0 and status.stdout.count(" node_") >= nodes:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Ray cluster did not reach {nodes} nodes in {timeout:.0f} s")

    def stop(self) -> None:
        """SIGTERM to each node's processes, then SIGKILL to whatever is left of them. Ray's
        workers put themselves in process groups of their own but stay in their node's
        session, so the session is what names them."""
        sessions = {process.pid for process in self.processes}
        _signal_sessions(sessions, signal.SIGTERM)
        # `ray start --block` takes its full grace when its own children got the SIGTERM too
        # (15 s seen in CI): a few seconds, then the SIGKILL that ends it anyway.
        deadline = time.monotonic() + 5
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        _signal_sessions(sessions, signal.SIGKILL)
        for process in self.processes:
            process.wait()
        self.processes.clear()
        shutil.rmtree(self.sessions, ignore_errors=True)


def _signal_sessions(sessions: set[int], sig: signal.Signals) -> None:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp session ...: comm may hold spaces, so after ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) in sessions:
                os.kill(int(stat.parent.name), sig)
        except (OSError, ValueError, IndexError):
            pass  # gone meanwhile
