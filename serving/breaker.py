"""The online store's circuit breaker: after `failures` consecutive failed reads the service
stops asking the store and answers 503 at once; a background probe (the store's PING, with the
request path's timeout) closes it again as soon as the store answers.

Why: the request path reads the store synchronously on the one event loop, so a frozen Redis
holds every caller of both faces for a whole timeout per request. Open, the breaker turns that
into one timeout and then immediate refusals, and no user request is spent on finding out
whether the store is back.
"""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    def __init__(self, failures: int) -> None:
        self.threshold = failures
        self._failed = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()  # reads run in the loop; the probe in a worker thread

    @property
    def open(self) -> bool:
        return self._opened_at is not None

    def open_seconds(self) -> float:
        opened = self._opened_at
        return 0.0 if opened is None else time.monotonic() - opened

    def succeeded(self) -> None:
        with self._lock:
            self._failed = 0
            self._opened_at = None

    def failed(self) -> bool:
        """Count a failed read; True when this one opened the breaker."""
        with self._lock:
            self._failed += 1
            if self._opened_at is None and self._failed >= self.threshold:
                self._opened_at = time.monotonic()
                return True
            return False
