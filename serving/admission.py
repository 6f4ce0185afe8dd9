"""Admission at arrival: each HTTP request is stamped, as its headers are parsed, with the time
and the number of requests then in flight on this worker.

Why in the protocol: the handler runs only when the event loop reaches it, so a request that
waited behind a burst cannot tell from inside the handler how long it waited or how many were
ahead. The REST app (`rest.FastPredict`) sheds a prediction request that arrived with
`max_in_flight` already ahead of it, and observes the wait of every admitted one.
"""

from __future__ import annotations

import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ARRIVAL = "skewless.arrival"  # scope key: (perf_counter at headers, requests then in flight)


class StampingProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        # `server_state.tasks`: the worker's requests being handled or waiting to be.
        scope[ARRIVAL] = (time.perf_counter(), len(self.server_state.tasks))
        super().on_headers_complete()
