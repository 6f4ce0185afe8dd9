"""Writing the prediction log: every served prediction, appended off the request path.

The request path only appends one record per request (or coalesced batch) to a buffer bounded
in predictions (never blocking: a full buffer drops the record and counts it). A writer thread
wakes every TICK_SECONDS and pickles what waits into a pipe to the log's sink, a child process
(`serving/log_sink.py`) that turns records into parquet parts (`serving/log_parts.py`) and
reports what it wrote, which the thread adds to this worker's counters.

Except on one core: a worker allowed a single CPU (pinned) would share it with its sink, and
there the sink's pickling and the kernel's switching cost more than converting in the writer
thread (measured side by side: server p99 at 1,000/s 2.7-3.4 ms with the sink, 1.5-1.6 ms
converting in the thread; docs/benchmarks.md). Such a worker converts and writes in its
writer thread (`PartWriter`, the sink's own code).

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
from typing import TYPE_CHECKING

from skewless.quality.prediction_log import LogRecord

from .log_sink import HEADER, one_cpu, sink_settings
from .metrics import Metrics

if TYPE_CHECKING:
    from .log_parts import PartWriter

log = logging.getLogger("skewless.serving")

# The writer thread shares the worker's core and GIL with the event loop: it sends what waits
# every TICK_SECONDS, CHUNK records per frame, and hands the GIL back between frames. Pickling
# is C and takes ~1 µs per prediction; the conversion it replaced took the GIL for milliseconds.
TICK_SECONDS = 0.05
CHUNK = 128
# A deeper pipe than Linux's 64 KiB: a second's records at 1,000/s wait in the kernel, not in
# the writer, while the sink writes a part.
PIPE_BYTES = 1 << 20
RESPAWN_SECONDS = 5.0


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
        in_process: bool | None = None,
    ) -> None:
        """`in_process`: convert in the writer thread (True) or in a sink process (False);
        by default in the thread only when this process may run on one CPU alone."""
        self.directory = directory
        self.metrics = metrics
        self.queue_size = queue_size
        self._join_keys, self._request_fields = tuple(join_keys), tuple(request_fields)
        self._settings = sink_settings(
            directory, self._join_keys, self._request_fields, flush_rows, flush_seconds
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
        # The sink, and what it was sent and has reported (written or dropped), in predictions:
        # what a dead sink leaves between the two is counted dropped.
        self._sink: subprocess.Popen[bytes] | None = None
        self._sent = self._reported = 0
        self._reports = b""  # the sink's last report line, while it is incomplete
        self._ready = self._was_ready = False
        self._spawned_at = 0.0
        if in_process is None:
            in_process = one_cpu()
        self.in_process = in_process
        self._parts: PartWriter | None = None  # the writer thread's own, when in process
        self._flush_rows, self._flush_seconds = flush_rows, flush_seconds

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.in_process:
            from .log_parts import PartWriter  # pyarrow: only where it is used

            self._parts = PartWriter(
                self.directory,
                self._join_keys,
                self._request_fields,
                written=self.metrics.log_written.inc,
                dropped=self.metrics.log_dropped.inc,
                flush_rows=self._flush_rows,
                flush_seconds=self._flush_seconds,
            )
        else:
            self._spawn()
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

    @property
    def sink_ready(self) -> bool:
        """The current sink has started and said so (in process: always)."""
        return self._parts is not None or (self._sink is not None and self._ready)

    def _spawn(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)  # the sink runs this checkout's code
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        self._spawned_at = time.monotonic()
        sink = subprocess.Popen(
            # -P: the working directory's own `serving/`, if any, is not imported instead
            [sys.executable, "-P", "-m", "serving.log_sink", self._settings],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # signals to the worker's group are not the sink's
        )
        assert sink.stdin is not None and sink.stdout is not None
        with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: 64 KiB it is
            fcntl.fcntl(sink.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(sink.stdout.fileno(), False)
        self._sink, self._ready, self._sent, self._reported, self._reports = sink, False, 0, 0, b""

    def _run(self) -> None:
        while True:
            self._wake.wait(TICK_SECONDS)
            stopping = self._stopping  # read before sending: nothing appended is left behind
            try:
                self._send_waiting()
                self._read_reports()
                self._flush_due(stopping)
                if stopping:
                    self._finish()
            except Exception:  # the writer must outlive anything, or the log stops for good
                log.exception("the prediction log writer failed; it goes on")
            if stopping:
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
            self._read_reports()  # its pipe back must not fill while this one does
            time.sleep(0)  # hand the GIL to the event loop: see TICK_SECONDS

    def _flush_due(self, stopping: bool) -> None:
        """In process: a part by the sink's own rule (`PartWriter.flush_if_due`), and what
        is left when stopping."""
        if self._parts is None:
            return
        if stopping:
            self._parts.flush()
        else:
            self._parts.flush_if_due()

    def _send(self, chunk: list[LogRecord], rows: int) -> None:
        if self._parts is not None:
            self._parts.add(chunk)  # counts a clash dropped itself
            self._flush_due(False)  # under steady load the loop may not pause: bound it here
            return
        try:
            frame = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            log.exception("could not pickle %d logged predictions", rows)
            self.metrics.log_dropped.inc(rows)
            return
        frame = HEADER.pack(len(frame)) + frame
        for _attempt in (1, 2):  # a dead sink's frame goes again, once, to a new sink
            if self._sink is None and not self._respawn_allowed():
                break
            try:
                if self._sink is None:
                    self._spawn()
                assert self._sink is not None and self._sink.stdin is not None
                # Blocks (without the GIL) while the pipe is full: the buffer then fills and drops.
                self._sink.stdin.write(frame)
                self._sink.stdin.flush()
                self._sent += rows
                return
            except OSError:
                self._lost()
        self.metrics.log_dropped.inc(rows)

    def _respawn_allowed(self) -> bool:
        """A sink that died after it had started is replaced at once; one that died starting
        (it would again: a broken install, no memory) only every RESPAWN_SECONDS, the records
        in between dropped and counted, not a process started per frame."""
        return self._was_ready or time.monotonic() - self._spawned_at >= RESPAWN_SECONDS

    def _lost(self) -> None:
        """The sink died: what it was sent and had not reported is counted dropped."""
        sink, self._sink = self._sink, None
        if sink is None:
            return
        log.error("the prediction log's sink stopped (exit %s)", sink.poll())
        sink.kill()
        sink.wait()
        self._read_reports(sink, until_end=True)
        self._was_ready = self._ready
        if self._sent > self._reported:
            self.metrics.log_dropped.inc(self._sent - self._reported)
        assert sink.stdin is not None
        with contextlib.suppress(OSError):  # its unsent bytes go nowhere
            sink.stdin.close()

    def _read_reports(
        self, sink: subprocess.Popen[bytes] | None = None, until_end: bool = False
    ) -> None:
        """What the sink wrote or lost since the last look, into this worker's counters."""
        sink = sink or self._sink
        if sink is None or sink.stdout is None:
            return
        fd = sink.stdout.fileno()
        os.set_blocking(fd, until_end)
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
                self._report(line)

    def _report(self, line: bytes) -> None:
        kind, _, rows = line.partition(b" ")
        if kind == b"ready":
            self._ready = True
        elif kind in (b"written", b"dropped") and rows.isdigit():
            counter = self.metrics.log_written if kind == b"written" else self.metrics.log_dropped
            counter.inc(int(rows))
            self._reported += int(rows)
        else:
            log.warning("the prediction log's sink said %r", line[:200])

    def _finish(self) -> None:
        """End of file to the sink, which writes what it holds and exits; its last reports."""
        sink = self._sink
        if sink is None:
            return
        assert sink.stdin is not None
        try:
            sink.stdin.close()
        except OSError:
            log.exception("the prediction log's sink stopped before the end")
        self._read_reports(sink, until_end=True)
        code = sink.wait()
        if code:
            log.error("the prediction log's sink exited with %s", code)
        if self._sent > self._reported:
            self.metrics.log_dropped.inc(self._sent - self._reported)
        self._sink = None
