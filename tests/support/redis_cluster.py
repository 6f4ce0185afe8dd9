"""A real Redis Cluster on loopback for tests: three masters and three replicas, each a
redis-server of its own, joined by `redis-cli --cluster create`. Stops only what it started."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from serving.process import free_port

BUS_OFFSET = 10_000  # Redis Cluster's node-to-node bus listens on the port + 10,000
NODE_TIMEOUT_MS = 1000  # how long a silent master has before its replica is promoted


def _node_port() -> int:
    """A free port whose cluster bus port (the port + 10,000) is free and valid too."""
    while True:
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port


class RedisCluster:
    def __init__(self, folder: Path, masters: int = 3, replicas: int = 1) -> None:
        binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        assert binary and cli, "redis-server and redis-cli are not installed; scripts/test does"
        self.binary, self.cli = binary, cli
        self.folder = folder
        self.replicas = replicas
        self.ports: list[int] = []
        while len(self.ports) < masters * (1 + replicas):
            port = _node_port()
            if port not in self.ports:
                self.ports.append(port)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def connection(self) -> str:
        """Feast's connection string for a cluster: every node, comma-separated."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self, timeout: float = 60.0) -> RedisCluster:
        try:
            for port in self.ports:
                folder = self.folder / str(port)
                folder.mkdir(parents=True)
                self.processes[port] = subprocess.Popen(
                    [
                        self.binary,
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(NODE_TIMEOUT_MS),
                        # A replica may take over however long ago it last heard its master.
                        "--cluster-replica-validity-factor",
                        "0",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(folder),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            deadline = time.monotonic() + timeout
            while not all(self.answers(port) for port in self.ports):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster's redis-servers did not start")
                time.sleep(0.05)
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *nodes,
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            self.wait_ok(timeout)
            self.wait_replicated(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def info(self, port: int, *args: str) -> str:
        done = subprocess.run(
            [self.cli, "-p", str(port), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout

    def wait_ok(self, timeout: float) -> None:
        """Until every live node reports cluster_state:ok and sees every slot served."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [port for port in self.processes if self.answers(port)]
            if live and all(
                "cluster_state:ok" in self.info(port, "cluster", "info")
                and "cluster_slots_ok:16384" in self.info(port, "cluster", "info")
                for port in live
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def wait_replicated(self, timeout: float) -> None:
        """Until every replica has its master's data (a replica that never synced cannot take
        over)."""
        deadline = time.monotonic() + timeout
        replicas = [port for port in self.ports if port not in self.masters()]
        while not all(
            "master_link_status:up" in self.info(port, "info", "replication") for port in replicas
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster's replicas did not sync")
            time.sleep(0.1)

    def masters(self) -> list[int]:
        """The ports of the nodes that are masters now, from a live node's view."""
        live = next(port for port in self.processes if self.answers(port))
        masters = []
        for line in self.info(live, "cluster", "nodes").splitlines():
            fields = line.split()
            flags = fields[2].split(",")  # "fail?" (suspected) counts as failed too
            if "master" in flags and not {"fail", "fail?"} & set(flags):
                masters.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(masters)

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.kill()
        process.wait(30)

    def wait_failover(self, dead: int, timeout: float = 60.0) -> None:
        """Until a replica serves the dead master's slots and the cluster is ok again."""
        deadline = time.monotonic() + timeout
        while dead in self.masters() or len(self.masters()) < len(self.ports) // 2:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from {dead}")
            time.sleep(0.1)
        self.wait_ok(max(1.0, deadline - time.monotonic()))

    def answers(self, port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(8).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
        for process in self.processes.values():
            process.wait(30)
        self.processes.clear()
