"""Single predictions that arrive together are scored together.

The service answers on one event loop per worker, and the Redis read in the core is a blocking
round trip: while it waits, nothing else on the worker runs. Under load many single requests
are parsed in the same turn of the loop; the coalescer hands them to the core as one batch,
so they share one online-store round trip, one pass through the core and one log record.
A request alone (light load) goes on at the next turn of the loop, so it waits for nobody;
batches hold at most MAX_BATCH and go one per turn of the loop.
The core is unchanged: a batch of singles is scored, routed, logged and counted exactly as a
batch request would be, and each caller gets its own prediction (or the batch's error).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from .core import Instance, Prediction, PredictorCore
from .errors import NotReady, OnlineStoreUnavailable

# A caller's answer: its prediction, and when its batch began to be scored (perf_counter):
# the time before is the caller's wait in the queue, the time after the service's work on it.
Scored = tuple[Prediction, float]
Waiting = tuple[Instance, "asyncio.Future[Scored]"]
Key = tuple[str, bool]  # endpoint, return_features

# At most this many singles in one batch. Past ~8 a batch gains little more per prediction,
# and every caller in it waits for the whole batch: a burst of 64 answered as 8 batches of 8,
# one per turn of the loop, answers its first callers ~8 times sooner than as one batch.
MAX_BATCH = 8


class Coalescer:
    def __init__(self, core: PredictorCore) -> None:
        self.core = core
        self._open: dict[Key, list[Waiting]] = {}  # the batch still taking callers, per key
        self._queue: deque[tuple[Key, list[Waiting]]] = deque()  # batches, in arrival order
        self._scheduled = False

    async def one(self, instance: Instance, *, endpoint: str, return_features: bool) -> Scored:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scored] = loop.create_future()
        key = (endpoint, return_features)
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = []
            self._queue.append((key, batch))
            self._schedule(loop)
        batch.append((instance, future))
        if len(batch) >= MAX_BATCH:
            del self._open[key]  # full: the next caller starts the next batch
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """One batch per turn of the loop, after the requests already parsed in this turn,
        and after the callers of the batch before it have been woken to send their answers."""
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._next)

    def _next(self) -> None:
        self._scheduled = False
        key, batch = self._queue.popleft()
        if self._open.get(key) is batch:
            del self._open[key]
        try:
            self._score(batch, *key)
        finally:  # whatever happened, the batches behind it get their turn
            if self._queue:
                self._schedule(asyncio.get_running_loop())

    def _score(self, batch: list[Waiting], endpoint: str, return_features: bool) -> None:
        batch = [w for w in batch if not w[1].done()]  # callers gone (cancelled): not scored
        if not batch:
            return
        started = time.perf_counter()
        try:
            predictions = self.core.predict(
                [instance for instance, _ in batch],
                endpoint=endpoint,
                return_features=return_features,
            )
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, OnlineStoreUnavailable | NotReady):
                # One instance's fault (a key the store cannot encode, a transformation that
                # raises on its row) must not fail the others: each is scored alone again.
                for waiting in batch:
                    self._score([waiting], endpoint, return_features)
                return
            for _, future in batch:  # the batch's fault: every caller's answer
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), prediction in zip(batch, predictions, strict=True):
            if not future.done():  # a caller that went away (cancelled) needs no answer
                future.set_result((prediction, started))
