"""Single predictions that arrive together are scored together.

The service answers on one event loop per worker, and the Redis read in the core is a blocking
round trip: while it waits, nothing else on the worker runs. Under load many single requests
are parsed in the same turn of the loop; the coalescer hands them to the core as one batch,
so they share one online-store round trip, one pass through the core and one log record.
A request alone (light load) goes on at the next turn of the loop, so it waits for nobody.
The core is unchanged: a batch of singles is scored, routed, logged and counted exactly as a
batch request would be, and each caller gets its own prediction (or the batch's error).
"""

from __future__ import annotations

import asyncio

from .core import Instance, Prediction, PredictorCore
from .errors import NotReady, OnlineStoreUnavailable

Waiting = tuple[Instance, "asyncio.Future[Prediction]"]


class Coalescer:
    def __init__(self, core: PredictorCore) -> None:
        self.core = core
        self._pending: dict[tuple[str, bool], list[Waiting]] = {}

    async def one(self, instance: Instance, *, endpoint: str, return_features: bool) -> Prediction:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction] = loop.create_future()
        key = (endpoint, return_features)
        waiting = self._pending.setdefault(key, [])
        waiting.append((instance, future))
        if len(waiting) == 1:  # after the requests already parsed in this turn of the loop
            loop.call_soon(self._flush, key)
        return await future

    def _flush(self, key: tuple[str, bool]) -> None:
        self._score(self._pending.pop(key), *key)

    def _score(self, batch: list[Waiting], endpoint: str, return_features: bool) -> None:
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
                future.set_result(prediction)
