"""Admission in the HTTP protocol: each request stamped as its headers are parsed, and a
prediction request admitted or refused once its body is in, before any ASGI machinery.

Why in the protocol:
- The handler runs only when the event loop reaches it, so a request that waited behind a
  burst cannot tell from inside the handler how long it waited. The REST app
  (`front.Front`) observes that wait for every admitted prediction request.
- The requests of a burst are parsed in one turn of the event loop, before any of their
  handlers runs. Counted by the app, all of them found the count of the turn before, and each
  refusal cost a request cycle, a task and the app (~70-90 µs of CPU): at three times capacity
  the refusals took the core that the admitted requests needed. Counted here, the count is
  right as each body completes, and a refusal is bytes written to the socket.
- Counting once the body is in (not at the headers) keeps a client slow to send its body from
  holding a place; it holds no request cycle either until its body is in.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ARRIVAL = "skewless.arrival"  # scope key: time.perf_counter() when the headers were parsed


ADMITTED = "skewless.admitted"  # scope key: counted in flight by the protocol


class Door(Protocol):
    """Who admits (`front.Front`), for the prediction paths and bodies up to its limit."""

    @property
    def paths(self) -> frozenset[str]: ...

    @property
    def limit(self) -> int: ...

    def admit(self, path: str, closing: bool) -> tuple[bytes, bool] | None:
        """None: admitted and counted in flight; else the whole HTTP refusal (saying
        Connection: close if `closing` or if the service is draining) and whether the
        connection closes after it."""
        ...


class AdmittingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the stamp and admission. A prediction request's cycle
    starts only once its body is in and it is admitted. Left to the app as before: any other
    request, one behind a pipelined request still being answered (its answer must wait its
    turn), a client waiting for `100 Continue`, an upgrade, a body of no or too large a length."""

    door: Door | None = None  # set per service by `admitting`
    _held: bytearray | None = None  # the body of a request waiting for admission
    _held_path = ""  # and its path

    def on_headers_complete(self) -> None:
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        scope[ARRIVAL] = time.perf_counter()
        # A refusal earlier in this read armed the keep-alive timer: not while a request runs.
        self._unset_keepalive_if_required()
        self._held = None
        if self._holds():
            self._held = bytearray()
            return  # the cycle starts at admission
        super().on_headers_complete()

    def _holds(self) -> bool:
        door = self.door
        if door is None or self.expect_100_continue or self.parser.should_upgrade():
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False
        if self.parser.get_method() != b"POST":
            return False
        self._held_path = httptools.parse_url(self.url).path.decode("ascii", "replace")
        if self._held_path not in door.paths:
            return False
        length = next((v for k, v in self.headers if k == b"content-length"), None)
        return length is not None and length.isdigit() and int(length) <= door.limit

    def on_body(self, body: bytes) -> None:
        if self._held is None:
            super().on_body(body)
        else:
            self._held += body

    def on_message_complete(self) -> None:
        held, self._held = self._held, None
        if held is None:
            super().on_message_complete()
            return
        if self.transport.is_closing():  # behind a refusal that closes: never answered
            return
        assert self.door is not None
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        closing = self.parser.get_http_version() == "1.0" or not self.parser.should_keep_alive()
        refusal = self.door.admit(self._held_path, closing)
        if refusal is None:
            scope[ADMITTED] = True  # the app uncounts it when answered
            super().on_headers_complete()
            super().on_body(bytes(held))
            super().on_message_complete()
            return
        answer, close = refusal
        self.transport.write(answer)
        # A client that sends without reading its refusals is not queued answers without end.
        if close or self.flow.write_paused:
            self.transport.close()
        self.on_response_complete()  # keep-alive timer, reading resumed, as after any answer


def admitting(door: Door) -> type[AdmittingProtocol]:
    """The protocol class for one service (uvicorn takes a class, and makes one per connection)."""
    return type("AdmittingProtocol", (AdmittingProtocol,), {"door": door})
