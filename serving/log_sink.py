"""The prediction log's sink: a child process of each service worker that turns the records the
worker served into parquet parts (`serving/log_parts.py`).

Why a process: converting records to Arrow and writing parquet in a thread of the worker held
the worker's GIL for milliseconds at a time, and the requests waiting behind it made the
client p99 at 1,000 requests/s ~3 ms against ~2 ms without the log (docs/benchmarks.md, issue
14). In a process of its own, the kernel's scheduler, not the GIL, shares the core, and the
worker only pickles records into a pipe (`serving/log_writer.py`).

The wire, one way each:
- stdin: frames, a 4-byte big-endian length, then a pickled list of `LogRecord`s; end of file
  (the worker closed the pipe, or died) means write what is left and exit;
- stdout: `ready` once started, then a line per part written or lost, `written N` or
  `dropped N` (predictions), which the worker adds to its own counters.

Run as `python -m serving.log_sink '<settings as JSON>'` by the worker, never by hand.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import select
import signal
import struct
import sys
import time
from pathlib import Path
from typing import Any

HEADER = struct.Struct(">I")
# The sink's share of a busy core: below the worker's, so that a request waits less behind a
# conversion, but not so far below that it falls behind at the worker's saturation.
NICE = 5


def read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes from `fd`, or None at end of file (a frame cut short counts as none)."""
    chunks: list[bytes] = []
    missing = size
    while missing:
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def sink_settings(
    directory: Path,
    join_keys: tuple[str, ...],
    request_fields: tuple[str, ...],
    flush_rows: int,
    flush_seconds: float,
) -> str:
    """The sink's one argument: what the worker's `PredictionLog` was configured with."""
    return json.dumps(
        {
            "directory": str(directory),
            "join_keys": list(join_keys),
            "request_fields": list(request_fields),
            "flush_rows": flush_rows,
            "flush_seconds": flush_seconds,
        }
    )


def say(line: str) -> None:
    """A line to the worker; a worker gone (killed) hears nothing, and the sink goes on
    writing what it was sent."""
    with contextlib.suppress(OSError):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def run(settings: dict[str, Any], fd: int = 0) -> None:
    from .log_parts import PartWriter  # pyarrow: imported once the signals are set (main)

    def report(kind: str) -> Any:
        def counted(rows: int) -> None:
            say(f"{kind} {rows}")

        return counted

    parts = PartWriter(
        Path(settings["directory"]),
        settings["join_keys"],
        settings["request_fields"],
        written=report("written"),
        dropped=report("dropped"),
        flush_rows=int(settings["flush_rows"]),
        flush_seconds=float(settings["flush_seconds"]),
    )
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, parts.deadline - time.monotonic()))
        if ready:
            header = read_exactly(fd, HEADER.size)
            frame = read_exactly(fd, HEADER.unpack(header)[0]) if header else None
            if frame is None:
                break
            parts.add(pickle.loads(frame))  # the parent worker is the only writer
        parts.flush_if_due()
    parts.flush()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s log sink: %(message)s")
    os.nice(NICE)
    # End of file is the one way to stop it: a Ctrl-C or a SIGTERM to the worker's process
    # group must not cut off what it holds; the worker closes the pipe when it has drained.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    say("ready")
    run(json.loads(sys.argv[1]))


def one_cpu() -> bool:
    """May this process run on one CPU only: pinned (affinity), or a cgroup quota of at most
    one CPU (a container's `--cpus=1`, a pod's `limits.cpu: 1`)?"""
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2:
        return True
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return False
    return quota != "max" and int(quota) <= int(period)


if __name__ == "__main__":
    main()
