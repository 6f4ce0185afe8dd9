"""One pipeline at a time: a tick holds an exclusive `flock` on `<state_dir>/ct/pipeline.lock`
while it evaluates and acts. The kernel drops the lock when its holder dies, so a killed
controller never leaves it held; a second controller meanwhile records `locked` and acts not.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from skewless.settings import Settings


def ct_dir(settings: Settings) -> Path:
    """The controller's own folder: its lock, decisions, requests and evidence."""
    folder = settings.state_dir / "ct"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def pipeline_lock(settings: Settings) -> Iterator[int | None]:
    """The lock's descriptor while this process holds it (children given it keep holding it
    while they run: a pipeline outlives a killed controller and still keeps others out); None
    at once when another holds it."""
    path = ct_dir(settings) / "pipeline.lock"
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {datetime.now(UTC).isoformat()}\n")
        handle.flush()
        try:
            yield handle.fileno()
        finally:
            handle.seek(0)
            handle.truncate()  # no holder named once it is free
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def lock_holder(settings: Settings) -> str:
    """Who holds the pipeline lock ("pid since"), read without taking it; "" when free."""
    path = ct_dir(settings) / "pipeline.lock"
    text = path.read_text().strip() if path.exists() else ""
    if not text:
        return ""
    try:
        os.kill(int(text.split()[0]), 0)
    except (ValueError, ProcessLookupError):
        return ""  # its holder died: the kernel dropped the lock with it
    except PermissionError:
        pass  # alive, another user's
    return text
