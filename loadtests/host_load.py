"""What the host's cores did while the gate's load ran: the service and the load generator's
share, and everyone else's. A latency budget failed on a host that something else kept busy
says so in the report, rather than blaming the candidate in silence (Linux: /proc; elsewhere
nothing is measured)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Beyond this many cores' worth used by other processes during the load, the host was busy.
BUSY_OTHERS_CORES = 0.25


@dataclass(frozen=True)
class CpuSample:
    at: float  # seconds, the host's monotonic clock (/proc/uptime)
    host_busy: float  # seconds of CPU used on all cores since boot
    ours: float  # seconds used by this process, its waited children and the service's session


@dataclass(frozen=True)
class HostLoad:
    cores: int
    seconds: float
    busy_cores: float  # the cores' worth of CPU used, on average over the interval
    gate_cores: float  # of it: the service and the load generator (this process included)

    @property
    def other_cores(self) -> float:
        return max(0.0, self.busy_cores - self.gate_cores)

    @property
    def busy(self) -> bool:
        return self.other_cores > BUSY_OTHERS_CORES

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "cores": self.cores,
            "seconds": round(self.seconds, 2),
            "busy_cores": round(self.busy_cores, 2),
            "gate_cores": round(self.gate_cores, 2),
            "other_cores": round(self.other_cores, 2),
            "busy": self.busy,
        }

    def describe(self) -> str:
        return (
            f"other processes used {self.other_cores:.2f} of {self.cores} cores during the load "
            f"(the service and the load generator {self.gate_cores:.2f})"
        )


def sample(service_session: int | None) -> CpuSample | None:
    """Now. None where /proc is not Linux's."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        uptime = float((PROC / "uptime").read_text().split()[0])
        fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    except (OSError, ValueError, IndexError):
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle and iowait
    mine = os.times()
    ours = mine.user + mine.system + mine.children_user + mine.children_system
    if service_session is not None:
        ours += _session_seconds(service_session, tick)
    return CpuSample(uptime, (sum(values[:8]) - idle) / tick, ours)


def between(before: CpuSample | None, after: CpuSample | None) -> HostLoad | None:
    if before is None or after is None or after.at <= before.at:
        return None
    seconds = after.at - before.at
    return HostLoad(
        cores=os.cpu_count() or 1,
        seconds=seconds,
        busy_cores=(after.host_busy - before.host_busy) / seconds,
        gate_cores=(after.ours - before.ours) / seconds,
    )


def _session_seconds(session: int, tick: int) -> float:
    """CPU seconds of every live process of a session (its waited children included)."""
    total = 0
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp session ...: comm may hold spaces, so after ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:
                total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            pass  # gone meanwhile
    return total / tick
