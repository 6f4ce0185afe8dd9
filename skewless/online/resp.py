"""A lean Redis connection for the request path: a whole pipeline of commands in one write,
its replies parsed by hiredis in C.

Why not redis-py's pipeline: for the 8 HMGETs of one prediction it spent ~100 µs of CPU here
(command objects, a pooled connection per call, a parse call per reply), a third of the whole
prediction (docs/benchmarks.md, issue 14). This class keeps redis-py's connection settings
(host, port, db, credentials, TLS, timeouts) and raises redis-py's exceptions, so callers
treat both the same. It speaks RESP2 and holds no state between calls but its socket; after
any error the socket is dropped and the next call connects again.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Sequence
from typing import Any, NoReturn

import hiredis
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP: pack once, send many times."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # a tuple of any length
    return packed


class RespConnection:
    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        if "path" in kwargs:
            raise ValueError("a Redis over a Unix socket is not supported by the lean reader")
        self.address = (kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)))
        self.timeout: float | None = kwargs.get("socket_timeout")
        self.connect_timeout = kwargs.get("socket_connect_timeout") or self.timeout
        self.tls = issubclass(pool.connection_class, redis.SSLConnection)
        self.hello: list[bytes] = []
        if kwargs.get("password"):
            user = kwargs.get("username")
            self.hello.append(
                pack("AUTH", user, kwargs["password"]) if user else pack("AUTH", kwargs["password"])
            )
        if kwargs.get("db"):
            self.hello.append(pack("SELECT", int(kwargs["db"])))
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._pending = 0  # replies owed to the last send

    def execute(self, packed: Sequence[bytes]) -> list[Any]:
        """Send the packed commands, return their replies in order (an error reply raises)."""
        self.send(packed)
        return self.receive()

    def send(self, packed: Sequence[bytes]) -> None:
        """Send without waiting: `receive` reads the replies, so that the round trips to
        several servers overlap (send to each, then receive from each)."""
        try:
            sock = self._sock if self._sock is not None and self._idle_ok() else self._connect()
            sock.sendall(b"".join(packed))
            self._pending = len(packed)
        except BaseException as exc:
            self._fail(exc)

    def receive(self) -> list[Any]:
        """The replies to the last `send`, in order (an error reply raises)."""
        try:
            if self._sock is None:
                raise OSError("nothing was sent on this connection")
            count, self._pending = self._pending, 0
            return self._replies(self._sock, count)
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> NoReturn:
        """Any failure leaves the stream's state unknown: the socket is closed, and a socket
        error becomes redis-py's, as the service's error handling expects; anything else (an
        error reply, an interrupt) goes on as it is. Called from a plain `try` (free until it
        raises), not a context manager: `execute` is on every request's path."""
        self.close()
        if isinstance(exc, TimeoutError):
            raise RedisTimeoutError("Timeout reading from Redis") from None
        if isinstance(exc, (OSError, hiredis.ProtocolError)):
            raise RedisConnectionError(f"Redis connection failed: {exc}") from None
        raise exc

    def _idle_ok(self) -> bool:
        """A kept socket must have nothing to read between calls: if it has, the server closed
        it (a restart, an idle timeout) or sent something unasked, so it is replaced rather
        than failing the request that would use it (as redis-py's pool checks too)."""
        assert self._sock is not None
        readable, _, _ = select.select([self._sock], [], [], 0)
        if readable:
            self.close()
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._reader = hiredis.Reader()  # a half-read reply must not reach the next call
        self._pending = 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.address[0])
        sock.settimeout(self.timeout)
        self._sock = sock
        if self.hello:
            sock.sendall(b"".join(self.hello))
            self._replies(sock, len(self.hello))
        return sock

    def _replies(self, sock: socket.socket, count: int) -> list[Any]:
        reader = self._reader
        replies: list[Any] = []
        while len(replies) < count:
            reply = reader.gets()
            if reply is False:  # hiredis: no whole reply buffered yet
                data = sock.recv(65536)
                if not data:
                    raise OSError("Redis closed the connection")
                reader.feed(data)
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))
            replies.append(reply)
        return replies
