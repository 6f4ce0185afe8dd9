"""The event log: one Redis Stream per Feast project, read in consumer groups, and its
dead-letter stream.

- `skewless:{project}:events`: the events, each entry a flat map of strings in the schema of
  feature_repo/tables/events.py. Producers append (`publish`, or `XADD` themselves).
- `skewless:{project}:events:dead`: entries that are not valid events, each with the id it had
  in the log, the reason (the field at fault) and its fields as they came; counted per reason
  in the hash `skewless:{project}:events:dead:counts`. Dead-lettering an entry acknowledges it
  in its group in the same transaction: it is never delivered again and never lost.

Entries are read as bytes and decoded one by one, so that one entry that is not UTF-8 is a
dead letter, not an exception that stops a reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from skewless.settings import Settings


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str  # its id in the event log
    reason: str
    fields: dict[str, str]


@dataclass(frozen=True)
class GroupState:
    name: str
    consumers: int
    pending: int  # delivered, not acknowledged
    last_delivered: str
    lag: int | None  # entries not yet delivered to the group (Redis >= 7)


@dataclass(frozen=True)
class Read:
    """One entry as read: its fields (bytes that are not UTF-8 replaced, to keep them visible)
    and, when they are not, why it cannot be an event."""

    entry_id: str
    fields: dict[str, str]
    encoding_error: str | None = None


def redis_client(connection: str) -> redis.Redis:
    """A client from a Feast-style connection string: host:port[,db=N][,password=...]."""
    parts = connection.split(",")
    params = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
    host, _, port = parts[0].partition(":")
    return redis.Redis(
        host=host or "127.0.0.1",
        port=int(port or 6379),
        db=int(params.get("db", 0)),
        username=params.get("username"),
        password=params.get("password"),
        ssl=params.get("ssl", "false").lower() == "true",
        socket_connect_timeout=5,
        retry=None,  # type: ignore[arg-type]  # no retries: a reader retries its own loop
    )


class EventLog:
    def __init__(self, client: redis.Redis, project: str) -> None:
        self.client, self.project = client, project
        self.stream = f"skewless:{project}:events"
        self.dead = f"{self.stream}:dead"
        self.dead_counts = f"{self.dead}:counts"

    @classmethod
    def of(cls, settings: Settings, project: str) -> EventLog:
        return cls(redis_client(settings.event_log), project)

    def publish(self, entries: Iterable[Mapping[str, str]], *, batch: int = 1000) -> list[str]:
        """Append entries in order, `batch` to a round trip; their ids."""
        ids: list[str] = []
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        for fields in entries:
            pipe.xadd(self.stream, dict(fields))  # type: ignore[arg-type]
            queued += 1
            if queued == batch:
                ids.extend(_text(i) for i in pipe.execute())
                queued = 0
        if queued:
            ids.extend(_text(i) for i in pipe.execute())
        return ids

    def length(self) -> int:
        length: Any = self.client.xlen(self.stream)  # redis-py types sync and async as one
        return int(length)

    def create_group(self, group: str, *, start: str = "0") -> None:
        """The group, reading from `start` (0: the whole log); nothing if it exists."""
        try:
            self.client.xgroup_create(self.stream, group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(
        self, group: str, consumer: str, *, count: int, block_ms: int | None, pending: bool
    ) -> list[Read]:
        """Entries for this consumer: its own delivered but unacknowledged ones (`pending`:
        what it held when it stopped), else new ones, waiting at most `block_ms`."""
        answer: Any = self.client.xreadgroup(
            group,
            consumer,
            {self.stream: "0" if pending else ">"},
            count=count,
            # BLOCK 0 is "wait forever" to Redis: no wait is no BLOCK at all.
            block=None if pending or not block_ms else block_ms,
        )
        return [
            _decode(_text(entry_id), raw)
            for _stream, entries in answer or []
            for entry_id, raw in entries
        ]

    def claim_idle(self, group: str, consumer: str, *, idle_ms: int, count: int) -> list[Read]:
        """Entries another consumer of the group was given and has not acknowledged for
        `idle_ms` (it died and did not come back under its name), now this consumer's."""
        answer: Any = self.client.xautoclaim(
            self.stream, group, consumer, min_idle_time=idle_ms, start_id="0-0", count=count
        )
        entries = answer[1] if answer else []
        return [_decode(_text(entry_id), raw) for entry_id, raw in entries if raw is not None]

    def ack(self, group: str, ids: list[str]) -> None:
        if ids:
            self.client.xack(self.stream, group, *ids)

    def oldest_pending(self, group: str) -> dict[str, str] | None:
        """The fields of the group's oldest entry delivered and not acknowledged (a processor
        holds it), or None: events before it are all in."""
        summary: Any = self.client.xpending(self.stream, group)
        if not summary or not summary.get("pending"):
            return None
        entry_id = _text(summary["min"])
        found: Any = self.client.xrange(self.stream, min=entry_id, max=entry_id, count=1)
        if not found:
            return None
        return _decode(entry_id, found[0][1]).fields

    def dead_letter(
        self, group: str, entry_id: str, fields: Mapping[str, str], reason: str
    ) -> None:
        """The entry to the dead-letter stream, counted, and acknowledged: in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            self.dead,
            {"entry_id": entry_id, "reason": reason, "fields": json.dumps(dict(fields))},
        )
        pipe.hincrby(self.dead_counts, reason_class(reason), 1)
        pipe.xack(self.stream, group, entry_id)
        pipe.execute()

    def dead_letters(self, *, last: int = 20) -> list[DeadLetter]:
        entries: Any = self.client.xrevrange(self.dead, count=last)
        letters = []
        for _id, raw in reversed(entries):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            letters.append(
                DeadLetter(fields["entry_id"], fields["reason"], json.loads(fields["fields"]))
            )
        return letters

    def dead_letter_counts(self) -> dict[str, int]:
        counts: Any = self.client.hgetall(self.dead_counts)
        return {_text(k): int(v) for k, v in counts.items()}

    def groups(self) -> list[GroupState]:
        if not self.client.exists(self.stream):
            return []
        states = []
        infos: Any = self.client.xinfo_groups(self.stream)
        for info in infos:
            lag = info.get("lag")
            states.append(
                GroupState(
                    name=_text(info["name"]),
                    consumers=int(info["consumers"]),
                    pending=int(info["pending"]),
                    last_delivered=_text(info["last-delivered-id"]),
                    lag=None if lag is None else int(lag),
                )
            )
        return states


def reason_class(reason: str) -> str:
    """What dead letters are counted by: the reason's subject (`departure.dep_delay`, `kind`)."""
    return reason.split(":", 1)[0]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(entry_id: str, raw: Mapping[bytes, bytes]) -> Read:
    try:
        return Read(entry_id, {k.decode(): v.decode() for k, v in raw.items()})
    except UnicodeDecodeError as exc:
        fields = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
        return Read(entry_id, fields, f"encoding: not UTF-8 ({exc.reason} at byte {exc.start})")
