"""The stream path's tiles, in Redis beside the event log, shared by every processor of a
project, and applied exactly once.

Per tiled aggregate (feature_repo/tables/tiles.py) and key, a hash
`skewless:{project}:tiles:{table}:{key}` holds `{bucket}:c`, `{bucket}:l` and `{bucket}:d`
(departures, late ones, delay minutes: integers, so every sum is exact); a set lists the keys
seen. One Lua script applies a batch of departures: for each, it adds the event's id to the
set of applied events and, only if the id was new, adds the event to its tiles (summed in the
script, one increment per tile and part) and moves the watermark (the latest event time
applied, in epoch seconds). Redis runs a script whole or not at all, so a processor killed at
any point has applied each event entirely or not at all; an entry it read and did not
acknowledge comes back after a restart (or to another processor) and its id makes it a no-op.
That is the exactly-once effect, without a transaction across the log and the tiles.

The script touches keys it computes from its arguments: one Redis server (not a cluster) holds
the event log and the tiles; the online store may be a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import redis

from feature_repo.tables.events import Departure
from feature_repo.tables.tiles import TILED, TiledAggregate, Tiles, tile_of

_APPLY = """
local seen, watermark_key = KEYS[1], KEYS[2]
local watermark = tonumber(redis.call('GET', watermark_key) or '0')
local sums, order = {}, {}
local i, applied = 2, 0
for _ = 1, tonumber(ARGV[1]) do
  local id, time, late, delay, aggregates = ARGV[i], tonumber(ARGV[i + 1]),
    tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  i = i + 5
  local fresh = redis.call('SADD', seen, id) == 1
  for _ = 1, aggregates do
    if fresh then
      -- summed here, one HINCRBY per tile and part below: fewer commands than events
      local field = ARGV[i] .. '\0' .. ARGV[i + 1]
      local tile = sums[field]
      if tile == nil then
        tile = {ARGV[i], ARGV[i + 1], 0, 0, 0}
        sums[field] = tile
        order[#order + 1] = field
      end
      tile[3], tile[4], tile[5] = tile[3] + 1, tile[4] + late, tile[5] + delay
    end
    i = i + 2
  end
  if fresh then
    applied = applied + 1
    if time > watermark then watermark = time end
  end
end
for _, field in ipairs(order) do
  local tile = sums[field]
  redis.call('HINCRBY', tile[1], tile[2] .. ':c', tile[3])
  redis.call('HINCRBY', tile[1], tile[2] .. ':l', tile[4])
  redis.call('HINCRBY', tile[1], tile[2] .. ':d', tile[5])
end
redis.call('SET', watermark_key, watermark)
return {applied, watermark}
"""

KEY_SEPARATOR = "|"


@dataclass(frozen=True)
class Applied:
    events: int  # new to the tiles (the others had been applied before)
    watermark: pd.Timestamp | None


WRITE_LOCK_SECONDS = 10


class TileStore:
    def __init__(self, client: redis.Redis, project: str) -> None:
        self.client = client
        self.prefix = f"skewless:{project}"
        self.seen = f"{self.prefix}:applied"
        self.watermark_key = f"{self.prefix}:watermark"
        self._apply = client.register_script(_APPLY)

    def tiles_key(self, aggregate: TiledAggregate, key: tuple[str, ...]) -> str:
        return f"{self.prefix}:tiles:{aggregate.table}:{KEY_SEPARATOR.join(key)}"

    def keys_key(self, aggregate: TiledAggregate) -> str:
        return f"{self.prefix}:tiles:{aggregate.table}:keys"

    def apply(self, departures: Iterable[Departure]) -> Applied:
        args: list[str | int] = []
        count = 0
        known: dict[str, set[str]] = {}  # the keys' sets: added once a batch, outside the script
        for event in departures:
            parts: list[str | int] = []
            for aggregate in TILED.values():
                key = _key_of(event, aggregate)
                if key is None:
                    continue
                parts += [
                    self.tiles_key(aggregate, key),
                    tile_of(event.departed_at, aggregate.tile),
                ]
                known.setdefault(self.keys_key(aggregate), set()).add(KEY_SEPARATOR.join(key))
            seconds = int(event.departed_at.timestamp())
            args += [event.event_id, seconds, event.late, int(event.dep_delay), len(parts) // 2]
            args += parts
            count += 1
        if not count:
            return Applied(0, self.watermark())
        # The keys first: a key listed with no tile yet reads as zeros, never the reverse.
        pipe = self.client.pipeline(transaction=False)
        for keys_key, members in known.items():
            pipe.sadd(keys_key, *members)
        pipe.execute()
        result: Any = self._apply(keys=[self.seen, self.watermark_key], args=[count, *args])
        applied, watermark = int(result[0]), int(result[1])
        return Applied(applied, pd.Timestamp(watermark, unit="s", tz="UTC") if watermark else None)

    @contextmanager
    def writing(self, view: str) -> Iterator[dict[str, int]]:
        """One processor at a time writes a view's rows (a Redis lock), and sees what was
        written last per row key (epoch seconds); what it sets there is stored on leaving.
        Rows then only ever move forward, on any online store: Feast's SQLite store would let
        a slower processor overwrite a newer row with an older one."""
        marks = f"{self.prefix}:written:{view}"
        # A processor killed while it writes leaves the lock to expire: a short timeout, so the
        # others wait seconds, not a minute (one boundary's rows take milliseconds to write).
        lock = self.client.lock(
            f"{self.prefix}:writing:{view}", timeout=WRITE_LOCK_SECONDS, blocking_timeout=60
        )
        with lock:
            raw: Any = self.client.hgetall(marks)
            written = {k.decode(): int(v) for k, v in raw.items()}
            before = dict(written)
            yield written
            changed = {k: v for k, v in written.items() if before.get(k) != v}
            if changed:
                self.client.hset(marks, mapping=changed)

    def watermark(self) -> pd.Timestamp | None:
        value: Any = self.client.get(self.watermark_key)
        return pd.Timestamp(int(value), unit="s", tz="UTC") if value else None

    def keys(self, aggregate: TiledAggregate) -> list[tuple[str, ...]]:
        members: Any = self.client.smembers(self.keys_key(aggregate))
        found = [tuple(m.decode().split(KEY_SEPARATOR)) for m in members]
        return sorted(found)

    def tiles(self, aggregate: TiledAggregate, keys: list[tuple[str, ...]]) -> list[Tiles]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self.tiles_key(aggregate, key))
        return [_tiles(raw) for raw in pipe.execute()]

    def forget(
        self,
        aggregate: TiledAggregate,
        keys: list[tuple[str, ...]],
        tiles: list[Tiles],
        before: int,
    ) -> None:
        """Drop the buckets older than `before` from the keys' tiles (as read)."""
        pipe = self.client.pipeline(transaction=False)
        for key, key_tiles in zip(keys, tiles, strict=True):
            old = [b for b in key_tiles.buckets if b < before]
            if old:
                fields = [f"{b}:{part}" for b in old for part in "cld"]
                pipe.hdel(self.tiles_key(aggregate, key), *fields)
        pipe.execute()


def _key_of(event: Departure, aggregate: TiledAggregate) -> tuple[str, ...] | None:
    values = {"origin": event.origin, "dest": event.dest, "carrier": event.carrier}
    key = tuple(values.get(name) for name in aggregate.keys)
    if any(v is None for v in key):
        return None
    return tuple(str(v) for v in key)


_PARTS = {ord("c"): 0, ord("l"): 1, ord("d"): 2}


def _tiles(raw: dict[bytes, bytes]) -> Tiles:
    # Fields are b"<bucket>:<c|l|d>"; parsed as bytes (int() reads ASCII digits): this runs for
    # every key's every tile at each boundary written, the processor's hottest loop.
    parts: dict[int, list[int]] = {}
    for field, value in raw.items():
        bucket = int(field[:-2])
        sums = parts.get(bucket)
        if sums is None:
            sums = parts[bucket] = [0, 0, 0]
        sums[_PARTS[field[-1]]] = int(value)
    tiles = Tiles()
    for bucket, (count, late, delay) in parts.items():
        tiles.buckets[bucket] = (count, late, float(delay))
    return tiles
