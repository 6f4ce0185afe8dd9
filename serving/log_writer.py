"""Writing the prediction log: every served prediction, appended off the request path.

The request path only appends one record per request (or coalesced batch) to a buffer bounded
in predictions (never blocking: a full buffer drops the record and counts it). A writer thread
wakes every TICK_SECONDS and pickles what waits into a pipe to the log's sink, a child process
(`serving/log_sink.py`) that turns records into parquet parts (`serving/log_parts.py`) and
reports what it wrote, which the thread adds to this worker's counters.

The buffer is a deque, not a `queue.Queue`: a queue's `put` takes a lock and wakes the writer
on every request; a deque append costs the request path next to nothing (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from skewless.prediction_log import LogRecord

from .log_sink import HEADER, sink_settings
from .metrics import Metrics

log = logging.getLogger("skewless.serving")

# The writer thread shares the worker's core and GIL with the event loop: it sends what waits
# every TICK_SECONDS, CHUNK records per frame, and hands the GIL back between frames. Pickling
# is C and takes ~1 µs per prediction; the conversion it replaced took the GIL for milliseconds.
TICK_SECONDS = 0.05
CHUNK = 128
# A deeper pipe than Linux's 64 KiB: a second's records at 1,000/s wait in the kernel, not in
# the writer, while the sink writes a part.
PIPE_BYTES = 1 << 20


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        metrics: Metrics,
        *,
        queue_size: int,
        flush_rows: int,
        flush_seconds: float,
        join_keys: Iterable[str],
        request_fields: Iterable[str],
    ) -> None:
        self.directory = directory
        self.metrics = metrics
        self.queue_size = queue_size
        self._settings = sink_settings(
            directory, tuple(join_keys), tuple(request_fields), flush_rows, flush_seconds
        )
        # Appended by the request path, popped by the writer: both atomic under the GIL.
        self._pending: deque[LogRecord] = deque()
        # Rows in and rows out, each written by one thread only: their difference is what
        # waits (a record holds one request's predictions, or a coalesced batch's).
        self._rows_in = 0
        self._rows_out = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._sink: subprocess.Popen[bytes] | None = None
        self._reports = b""  # the sink's last report line, while it is incomplete

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sink = self._spawn()
        self._thread.start()

    def append(self, record: LogRecord) -> None:
        rows = len(record)
        if self._rows_in - self._rows_out + rows > self.queue_size:
            self.metrics.log_dropped.inc(rows)
            return
        self._pending.append(record)
        self._rows_in += rows

    def close(self, timeout: float = 30.0) -> None:
        """Write everything waiting, then stop the writer and its sink (graceful shutdown).
        Idempotent."""
        if self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the prediction log writer did not finish within %.0f s", timeout)

    def _spawn(self) -> subprocess.Popen[bytes]:
        root = str(Path(__file__).resolve().parent.parent)  # the sink runs this checkout's code
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        sink = subprocess.Popen(
            [sys.executable, "-m", "serving.log_sink", self._settings],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert sink.stdin is not None and sink.stdout is not None
        with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: 64 KiB it is
            fcntl.fcntl(sink.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(sink.stdout.fileno(), False)
        return sink

    def _run(self) -> None:
        while True:
            self._wake.wait(TICK_SECONDS)
            stopping = self._stopping  # read before sending: nothing appended is left behind
            self._send_waiting()
            self._read_reports()
            if stopping:
                self._finish()
                return

    def _send_waiting(self) -> None:
        """Waiting records to the sink, CHUNK records a frame, the event loop between."""
        while self._pending:
            chunk: list[LogRecord] = []
            rows = 0
            while self._pending and len(chunk) < CHUNK:
                record = self._pending.popleft()
                chunk.append(record)
                rows += len(record)
            self._rows_out += rows
            self._send(chunk, rows)
            time.sleep(0)  # hand the GIL to the event loop: see TICK_SECONDS

    def _send(self, chunk: list[LogRecord], rows: int) -> None:
        frame = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
        frame = HEADER.pack(len(frame)) + frame
        for _attempt in (1, 2):  # a dead sink's frame goes again, once
            assert self._sink is not None and self._sink.stdin is not None
            try:
                # Blocks (without the GIL) while the pipe is full: the buffer then fills and drops.
                self._sink.stdin.write(frame)
                self._sink.stdin.flush()
                return
            except OSError:  # the sink died, and what it had not written with it: another one
                log.exception("the prediction log's sink stopped (exit %s)", self._sink.poll())
                self._sink.kill()
                self._sink.wait()
                self._read_reports()
                with contextlib.suppress(OSError):  # its unsent bytes: the frame goes again
                    self._sink.stdin.close()
                self._sink = self._spawn()
        self.metrics.log_dropped.inc(rows)

    def _read_reports(self) -> None:
        """What the sink wrote or lost since the last look, into this worker's counters."""
        assert self._sink is not None and self._sink.stdout is not None
        fd = self._sink.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                return
            lines = (self._reports + data).split(b"\n")
            self._reports = lines.pop()
            for line in lines:
                kind, rows = line.split()
                counter = (
                    self.metrics.log_written if kind == b"written" else self.metrics.log_dropped
                )
                counter.inc(int(rows))

    def _finish(self) -> None:
        """End of file to the sink, which writes what it holds and exits; its last reports."""
        assert self._sink is not None and self._sink.stdin is not None
        try:
            self._sink.stdin.close()
        except OSError:
            log.exception("the prediction log's sink stopped before the end")
        assert self._sink.stdout is not None
        os.set_blocking(self._sink.stdout.fileno(), True)
        self._read_reports()
        code = self._sink.wait()
        if code:
            log.error("the prediction log's sink exited with %s", code)
