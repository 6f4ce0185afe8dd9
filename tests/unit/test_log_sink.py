"""The prediction log's sink process: what the worker's writer sends it is written, whether the
worker closes the pipe (shutdown) or dies, signals to the worker's group do not cut it off,
and a sink that dies is replaced, what it held counted dropped, nothing after it lost."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from serving.log_sink import HEADER, sink_settings
from serving.log_writer import CHUNK, PredictionLog
from serving.metrics import Metrics
from skewless.quality.prediction_log import FEATURE, LogRecord, read_prediction_log

NOW = datetime(2013, 6, 1, 12, tzinfo=UTC)


def _record(k: int, rows: int = 1) -> LogRecord:
    return LogRecord(
        NOW + timedelta(seconds=k),
        NOW,
        "t",
        [f"r{k}-{i}" for i in range(rows)],
        [{"k": f"x{i}"} for i in range(rows)],
        {"f": [float(k)] * rows},
        ["champion"] * rows,
        ["m"] * rows,
        ["1"] * rows,
        [0.5] * rows,
        [True] * rows,
        1.0,
    )


def test_the_sink_writes_everything_sent_when_its_pipe_closes(tmp_path: Path) -> None:
    """End of file is what the sink sees when its worker stops or dies: it writes what it
    holds (no flush was due: 60 s, 10,000 rows) and reports every prediction."""
    settings = sink_settings(tmp_path, ("k",), (), flush_rows=10_000, flush_seconds=60)
    sink = subprocess.Popen(
        [sys.executable, "-m", "serving.log_sink", settings],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert sink.stdin is not None and sink.stdout is not None
    assert sink.stdout.readline() == b"ready\n"
    for first in (0, 10):
        frame = pickle.dumps([_record(k, rows=3) for k in range(first, first + 10)])
        sink.stdin.write(HEADER.pack(len(frame)) + frame)
    sink.stdin.write(HEADER.pack(1000) + b"cut short")  # a worker killed mid-frame
    sink.stdin.flush()
    # Ctrl-C or a SIGTERM to the worker's process group: the sink stops at end of file only.
    sink.send_signal(signal.SIGINT)
    sink.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert sink.poll() is None
    out, _ = sink.communicate(timeout=60)
    assert sink.returncode == 0
    reports = [line.split() for line in out.decode().splitlines()]
    assert {kind for kind, _ in reports} == {"written"}
    assert sum(int(rows) for _, rows in reports) == 60
    logged = read_prediction_log(tmp_path)
    assert len(logged) == 60 and logged["request_id"].is_unique
    assert sorted(logged[FEATURE + "f"].unique()) == [float(k) for k in range(20)]


def _wait(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_sink_that_dies_is_replaced_and_what_it_held_is_counted_dropped(
    tmp_path: Path,
) -> None:
    metrics = Metrics()
    log = PredictionLog(
        tmp_path,
        metrics,
        queue_size=100_000,
        flush_rows=100_000,
        flush_seconds=60,
        join_keys=("k",),
        request_fields=(),
    )
    written = metrics.log_written._value.get()  # the metrics may be shared between tests
    dropped = metrics.log_dropped._value.get()
    log.start()
    _wait(lambda: log.sink_ready, "the sink never said it was ready")
    held = 50  # sent to the sink, which writes nothing before 60 s or 100,000 rows
    for k in range(held):
        log.append(_record(k))
    _wait(lambda: log._sent == held, "the writer did not send the first records")
    first = log._sink
    assert first is not None
    first.kill()
    first.wait()
    n = 2 * CHUNK + 7
    for k in range(held, held + n):
        log.append(_record(k))
    log.close()
    assert log._sink is None and first.returncode != 0  # replaced, and the new one ended
    logged = read_prediction_log(tmp_path)
    assert len(logged) == n
    assert metrics.log_written._value.get() - written == n
    assert metrics.log_dropped._value.get() - dropped == held  # lost with the sink, counted


def test_a_worker_on_one_cpu_converts_in_its_writer_thread(tmp_path: Path) -> None:
    """Pinned to one CPU the sink would share it with its worker: the writer thread converts
    and writes the parts itself (the same PartWriter), by rows and by time, all counted."""
    pinned = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-c",
            "from serving.log_sink import one_cpu; print(one_cpu())",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert pinned.stdout.strip() == "True"  # a worker pinned to one CPU is seen as such
    metrics = Metrics()
    log = PredictionLog(
        tmp_path,
        metrics,
        queue_size=100_000,
        flush_rows=300,
        flush_seconds=0.2,
        join_keys=("k",),
        request_fields=(),
        in_process=True,
    )
    written = metrics.log_written._value.get()
    log.start()
    assert log.sink_ready and log._sink is None  # no process
    n = 2 * CHUNK + 7
    for k in range(n):
        log.append(_record(k))
    _wait(lambda: metrics.log_written._value.get() - written == n, "not written by time")
    for k in range(n, n + 5):
        log.append(_record(k))
    log.close()
    logged = read_prediction_log(tmp_path)
    assert len(logged) == n + 5 and log._sink is None
    assert metrics.log_written._value.get() - written == n + 5
