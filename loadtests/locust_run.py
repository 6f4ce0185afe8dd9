"""Running the locust scenarios headless in a child process, and reading back what they saw.

Locust gets a session of its own, so a Ctrl-C at the terminal reaches the caller only, which
then stops locust itself (and whatever else it started) in order.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
USER_CLASS = {"rest": "RestUser", "grpc": "GrpcUser"}


@dataclass(frozen=True)
class LoadPlan:
    protocol: Literal["rest", "grpc"]
    rate: float  # requests per second, all users together
    seconds: float
    user_rate: float = 10.0  # requests per second per user

    @property
    def users(self) -> int:
        return max(1, math.ceil(self.rate / self.user_rate))

    @property
    def paced_user_rate(self) -> float:
        """Each user's pace, so that all of them together make exactly `rate`."""
        return self.rate / self.users


@dataclass(frozen=True)
class ClientStats:
    """Locust's view of a run: the Aggregated row of its CSV report (milliseconds; locust
    rounds times under 100 ms to whole milliseconds)."""

    requests: int
    failures: int
    rate: float
    percentiles_ms: dict[str, float]
    failure_examples: list[str] = field(default_factory=list)

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 1.0


class LocustRun:
    def __init__(
        self, plan: LoadPlan, rest_url: str, grpc_target: str, payloads: Path, out_dir: Path
    ) -> None:
        self.plan = plan
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_prefix = out_dir / f"locust-{plan.protocol}"
        self.html = out_dir / f"locust-{plan.protocol}.html"
        self.final = out_dir / f"locust-{plan.protocol}-final.json"
        self.command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            str(plan.users),
            "--spawn-rate",
            str(plan.users),
            "--run-time",
            f"{plan.seconds:g}s",
            "--stop-timeout",
            "5",
            "--host",
            rest_url,
            "--csv",
            str(self.csv_prefix),
            "--html",
            str(self.html),
            "--only-summary",
            "--exit-code-on-error",
            "0",
            "--loglevel",
            "WARNING",
            USER_CLASS[plan.protocol],
        ]
        self.env = {
            **os.environ,
            "SKEWLESS_LOADTEST_PAYLOADS": str(payloads),
            "SKEWLESS_LOADTEST_USER_RATE": str(plan.paced_user_rate),
            "SKEWLESS_LOADTEST_GRPC_TARGET": grpc_target,
            "SKEWLESS_LOADTEST_FINAL_STATS": str(self.final),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocustRun:
        self.final.unlink(missing_ok=True)  # an earlier run's figures are not this run's
        with (self.out_dir / f"locust-{self.plan.protocol}.log").open("wb") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        return self

    def wait(self) -> ClientStats:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=self.plan.seconds + 120)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError("locust did not finish in time") from None
        if code != 0:
            raise RuntimeError(
                f"locust exited with {code}; see {self.out_dir}/locust-{self.plan.protocol}.log"
            )
        try:
            return read_final_stats(self.final)
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeError(
                f"locust left no final figures ({exc}); see {self.out_dir}/"
                f"locust-{self.plan.protocol}.log"
            ) from None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL: locust's whole session, gevent workers included."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


@contextmanager
def signals_held() -> Iterator[None]:
    """Clean-up that a second Ctrl-C or a SIGTERM must not cut short: both wait until it
    is done (and are then handled as usual)."""
    caught: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda s, _: caught.append(s))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


def read_final_stats(path: Path) -> ClientStats:
    """The figures the locustfile wrote as locust quit, after its last request (its CSV files
    are written once a second and can miss the last one)."""
    figures = json.loads(path.read_text())
    return ClientStats(
        requests=int(figures["requests"]),
        failures=int(figures["failures"]),
        rate=float(figures["rate"]),
        percentiles_ms={k: float(v) for k, v in figures["percentiles_ms"].items()},
        failure_examples=list(figures["failure_examples"]),
    )
