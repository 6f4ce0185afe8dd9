"""The lean Redis connection on its own, against a scripted fake server (the parity and
frozen-Redis tests run it against a real Redis): a connection the server closed while idle is
replaced without failing the call, and after an error reply or a timeout halfway through a
reply the next call never reads what was left of the old one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from skewless.online.resp import RespConnection, pack

Script = Callable[[socket.socket, int], None]  # a connection, its number (0, 1, ...)


@pytest.fixture
def fake_redis() -> Iterator[Callable[[Script], int]]:
    """A loopback server running `script` on each connection it accepts; yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    threads: list[threading.Thread] = []

    def start(script: Script) -> int:
        def serve() -> None:
            number = 0
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                thread = threading.Thread(target=script, args=(conn, number), daemon=True)
                thread.start()
                threads.append(thread)
                number += 1

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    server.close()


def _read_command(conn: socket.socket, count: int = 1) -> bytes:
    data = b""
    while data.count(b"*") < count or not data.endswith(b"\r\n"):
        data += conn.recv(4096)
    return data


def _client(port: int, timeout: float = 1.0) -> RespConnection:
    return RespConnection(redis.Redis(port=port, socket_timeout=timeout))


def test_a_connection_closed_while_idle_is_replaced_without_failing_the_call(
    fake_redis: Callable[[Script], int],
) -> None:
    def script(conn: socket.socket, number: int) -> None:
        _read_command(conn)
        conn.sendall(b"$%d\r\nconn-%d\r\n" % (len(f"conn-{number}"), number))
        conn.close()  # as a Redis restart or an idle timeout would

    connection = _client(fake_redis(script))
    assert connection.execute([pack("GET", "k")]) == [b"conn-0"]
    time.sleep(0.05)  # the server's close reaches the client
    assert connection.execute([pack("GET", "k")]) == [b"conn-1"]  # a new connection, no error


def test_after_an_error_reply_the_next_call_reads_only_its_own_replies(
    fake_redis: Callable[[Script], int],
) -> None:
    def script(conn: socket.socket, number: int) -> None:
        _read_command(conn, 2)
        if number == 0:  # an error, then a reply the failed call never reads
            conn.sendall(b"-WRONGTYPE wrong kind of value\r\n$5\r\nstale\r\n")
        else:
            conn.sendall(b"$5\r\nfresh\r\n$5\r\nfresh\r\n")
        time.sleep(0.5)

    connection = _client(fake_redis(script))
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        connection.execute([pack("GET", "a"), pack("GET", "b")])
    assert connection.execute([pack("GET", "a"), pack("GET", "b")]) == [b"fresh", b"fresh"]


def test_a_timeout_halfway_through_a_reply_leaves_nothing_for_the_next_call(
    fake_redis: Callable[[Script], int],
) -> None:
    def script(conn: socket.socket, number: int) -> None:
        _read_command(conn)
        if number == 0:
            conn.sendall(b"*2\r\n$3\r\nold")  # half a reply, then a stall
            time.sleep(0.5)
            conn.sendall(b"\r\n$3\r\nold\r\n")
        else:
            conn.sendall(b"*2\r\n$3\r\nnew\r\n$3\r\nnew\r\n")
        time.sleep(0.5)

    connection = _client(fake_redis(script), timeout=0.1)
    with pytest.raises(RedisTimeoutError):
        connection.execute([pack("HMGET", "k", "a", "b")])
    assert connection.execute([pack("HMGET", "k", "a", "b")]) == [[b"new", b"new"]]
