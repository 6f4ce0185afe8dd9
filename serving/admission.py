"""Each HTTP request is stamped with the time its headers were parsed.

Why in the protocol: the handler runs only when the event loop reaches it, so a request that
waited behind a burst cannot tell from inside the handler how long it waited. The REST app
(`rest.FastPredict`) observes that wait for every admitted prediction request.
"""

from __future__ import annotations

import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ARRIVAL = "skewless.arrival"  # scope key: time.perf_counter() when the headers were parsed


class StampingProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        scope[ARRIVAL] = time.perf_counter()
        super().on_headers_complete()
