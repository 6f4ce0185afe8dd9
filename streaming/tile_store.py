"""The stream path's tiles, in Redis beside the event log, shared by every processor of a
project, and applied exactly once.

Per tiled aggregate (feature_repo/tables/tiles.py) and key, the tiles are kept in chunks of
`CHUNK_BUCKETS` buckets, one hash each, `skewless:{project}:tiles:{table}:{key}:{chunk}`,
holding `{bucket}:c`, `{bucket}:l` and `{bucket}:d` (departures, late ones, delay minutes:
integers, so every sum is exact); a set lists the keys seen. Chunks keep each hash small (Redis
stores a small hash as one list and scans it for every field: a week of hourly tiles in one
hash made each read and increment scan 500 fields), and a chunk no window reaches any more is
dropped whole.

One Lua script applies a batch of departures: for each, it adds the event's id to the set of
applied events and, only if the id was new, adds the event to its tiles (summed in the script,
one increment per tile and part) and moves the watermark (the latest event time applied, in
epoch seconds). Redis runs a script whole or not at all, so a processor killed at any point has
applied each event entirely or not at all; an entry it read and did not acknowledge comes back
after a restart (or to another processor) and its id makes it a no-op. That is the exactly-once
effect, without a transaction across the log and the tiles. The same script counts, per view,
the events applied behind its horizon (the boundary a writer last read window sums for:
window_sums.py) and lowers the view's floor (its oldest chunk) when an event lands below it.

The scripts touch keys they compute from their arguments: one Redis server (not a cluster)
holds the event log and the tiles; the online store may be a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import redis

from feature_repo.tables.events import Departure
from feature_repo.tables.tiles import TILED, TiledAggregate, Tiles, WindowSums, tile_of

_APPLY = """
local seen, watermark_key, too_late_ids, too_late_count = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local watermark = tonumber(redis.call('GET', watermark_key) or '0')
local cursor = 0
local function take()
  cursor = cursor + 1
  return ARGV[cursor]
end
local lateness = tonumber(take())
local chunk_buckets = tonumber(take())
-- Per tiled view: its horizon (the boundary whose window sums a writer last took), the count
-- of events applied behind it (they change sums a writer already took), its floor (the
-- oldest chunk that may hold tiles) and the lowest chunk this batch adds to. The written
-- horizon, in epoch seconds, is what lateness is measured against: a writer moves it only
-- once every event before it is in (held back by what any processor still holds), so an
-- event that merely reached this processor after a faster one's is never too late.
local horizons, behind_keys, behind, floor_keys, lowest = {}, {}, {}, {}, {}
local reference = nil
for view = 1, tonumber(take()) do
  horizons[view] = tonumber(redis.call('GET', take()) or '-1')
  behind_keys[view] = take()
  behind[view] = 0
  floor_keys[view] = take()
  local tile_seconds = tonumber(take())
  if horizons[view] >= 0 then
    local at = horizons[view] * tile_seconds
    if reference == nil or at > reference then reference = at end
  end
end
local sums, order = {}, {}
local applied, newly_too_late = 0, 0
local too_late = {}  -- the batch's events (by position) later than the allowed lateness
for position = 1, tonumber(take()) do
  local id = take()
  local time = tonumber(take())
  local late = tonumber(take())
  local delay = tonumber(take())
  local fresh = redis.call('SADD', seen, id) == 1
  if fresh and reference ~= nil and time < reference - lateness then
    -- Too late to change what is online: counted once, kept apart (offline only).
    fresh = false
    newly_too_late = newly_too_late + 1
    redis.call('SADD', too_late_ids, id)
    redis.call('INCR', too_late_count)
  end
  if redis.call('SISMEMBER', too_late_ids, id) == 1 then too_late[#too_late + 1] = position end
  for _ = 1, tonumber(take()) do
    local key = take()
    local bucket = take()
    local view = tonumber(take())
    if fresh then
      local chunk = math.floor(tonumber(bucket) / chunk_buckets)
      if lowest[view] == nil or chunk < lowest[view] then lowest[view] = chunk end
      -- summed here, one HINCRBY per tile and part below: fewer commands than events
      local field = key .. '\0' .. bucket
      local tile = sums[field]
      if tile == nil then
        tile = {key, bucket, 0, 0, 0}
        sums[field] = tile
        order[#order + 1] = field
      end
      tile[3], tile[4], tile[5] = tile[3] + 1, tile[4] + late, tile[5] + delay
      if tonumber(bucket) < horizons[view] then behind[view] = behind[view] + 1 end
    end
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
for view, count in ipairs(behind) do
  if count > 0 then redis.call('INCRBY', behind_keys[view], count) end
end
for view, chunk in pairs(lowest) do
  local floor = redis.call('GET', floor_keys[view])
  if not floor or chunk < tonumber(floor) then redis.call('SET', floor_keys[view], chunk) end
end
redis.call('SET', watermark_key, watermark)
local answer = {applied, watermark, too_late, newly_too_late}
for view = 1, #behind do answer[#answer + 1] = behind[view] end
return answer
"""

_FORGET = """
-- KEYS[1]: the view's floor; ARGV[1]: the first chunk to keep; ARGV[2]: the most chunks one
-- run drops per key; ARGV[3..]: each key's tiles prefix. Chunks from the floor up go, and the
-- floor moves up; a floor far behind (a long gap, a stray old event) is caught up over several
-- runs, so that no run holds the server for long.
local keep = tonumber(ARGV[1])
local floor = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
local stop = math.min(keep, floor + tonumber(ARGV[2]))
for chunk = floor, stop - 1 do
  for i = 3, #ARGV do redis.call('UNLINK', ARGV[i] .. chunk) end
end
if floor < stop then redis.call('SET', KEYS[1], stop) end
return math.max(stop - floor, 0)
"""

_TAKE = """
-- KEYS[1]: the view's horizon, KEYS[2]: its count of events applied behind it; ARGV[1]: the
-- boundary a writer reads for. The horizon only moves forward: an older boundary written again
-- (a fold-in) must not let events between the two pass uncounted.
local horizon = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > horizon then redis.call('SET', KEYS[1], ARGV[1]) end
return tonumber(redis.call('GET', KEYS[2]) or '0')
"""

_SUMS = """
-- ARGV: buckets per chunk, the count of ranges, each range's first and stop bucket, then the
-- tiles prefix of each key. Returns, per key and range, the range's sums: count, late, delay.
local per_chunk, ranges = tonumber(ARGV[1]), tonumber(ARGV[2])
local plans = {}  -- per range: the chunks it reads and the fields of each
for r = 1, ranges do
  local first, stop = tonumber(ARGV[1 + 2 * r]), tonumber(ARGV[2 + 2 * r])
  local plan, current = {}, nil
  for bucket = first, stop - 1 do
    local chunk = math.floor(bucket / per_chunk)
    if current == nil or current[1] ~= chunk then
      current = {chunk, {}}
      plan[#plan + 1] = current
    end
    local fields = current[2]
    fields[#fields + 1] = bucket .. ':c'
    fields[#fields + 1] = bucket .. ':l'
    fields[#fields + 1] = bucket .. ':d'
  end
  plans[r] = plan
end
local out = {}
for i = 3 + 2 * ranges, #ARGV do
  for r = 1, ranges do
    local count, late, delay = 0, 0, 0
    for _, read in ipairs(plans[r]) do
      local values = redis.call('HMGET', ARGV[i] .. read[1], unpack(read[2]))
      for j = 1, #values, 3 do
        if values[j] then  -- a tile's three parts are written together
          count = count + tonumber(values[j])
          late = late + tonumber(values[j + 1])
          delay = delay + tonumber(values[j + 2])
        end
      end
    end
    out[#out + 1] = count
    out[#out + 1] = late
    out[#out + 1] = delay
  end
end
return out
"""

KEY_SEPARATOR = "|"
KEYS_PER_SUM = 50  # keys summed by one script run: a few milliseconds of Redis at most
FORGET_CHUNKS = 64  # chunks one forget run drops per key at most
CHUNK_BUCKETS = 16  # a chunk's hash holds 48 fields: Redis keeps it a small list


@dataclass(frozen=True)
class Applied:
    events: int  # new to the tiles (the others had been applied before)
    watermark: pd.Timestamp | None
    behind: dict[str, int] = field(default_factory=dict)  # view -> events behind its horizon
    too_late: list[Departure] = field(default_factory=list)  # not applied: offline only
    newly_too_late: int = 0  # of those, the ones seen too late for the first time


WRITE_LOCK_SECONDS = 10


class TileStore:
    def __init__(self, client: redis.Redis, project: str) -> None:
        self.client = client
        self.prefix = f"skewless:{project}"
        self.seen = f"{self.prefix}:applied"
        self.watermark_key = f"{self.prefix}:watermark"
        self.too_late_ids = f"{self.prefix}:too_late"
        self.too_late_count = f"{self.prefix}:too_late:count"
        self._apply = client.register_script(_APPLY)
        self._forget = client.register_script(_FORGET)
        self._sums = client.register_script(_SUMS)
        self._take = client.register_script(_TAKE)

    def _view_key(self, aggregate: TiledAggregate, name: str) -> str:
        return f"{self.prefix}:tiles:{aggregate.table}:{name}"

    def keys_key(self, aggregate: TiledAggregate) -> str:
        return self._view_key(aggregate, "keys")

    def horizon_key(self, aggregate: TiledAggregate) -> str:
        return self._view_key(aggregate, "horizon")

    def behind_key(self, aggregate: TiledAggregate) -> str:
        return self._view_key(aggregate, "behind")

    def floor_key(self, aggregate: TiledAggregate) -> str:
        return self._view_key(aggregate, "floor")

    def _chunks_prefix(self, aggregate: TiledAggregate, key: tuple[str, ...]) -> str:
        # The key's values joined by a separator no event's value holds (events.py); "k:" keeps
        # a key named like the view's own entries (keys, floor) apart from them.
        return self._view_key(aggregate, f"k:{KEY_SEPARATOR.join(key)}:")

    def apply(self, departures: Iterable[Departure], *, lateness_seconds: int = 3600) -> Applied:
        """The departures into their tiles, each once. One more than `lateness_seconds` before
        the latest boundary a writer has read for (any view) is not applied (it would change
        rows long served): it is counted once and returned in `too_late`, every time it is
        given again, so that a processor that died before keeping it offline keeps it on the
        next delivery."""
        departures = list(departures)
        views = list(TILED.values())
        args: list[str | int] = [lateness_seconds, CHUNK_BUCKETS, len(views)]
        for aggregate in views:
            args += [
                self.horizon_key(aggregate),
                self.behind_key(aggregate),
                self.floor_key(aggregate),
                int(aggregate.tile.total_seconds()),
            ]
        events: list[str | int] = []
        count = 0
        known: dict[str, set[str]] = {}  # the keys' sets: added once a batch, outside the script
        prefixes: dict[tuple[str, tuple[str, ...]], str] = {}
        for event in departures:
            parts: list[str | int] = []
            for view, aggregate in enumerate(views, start=1):
                key = tuple(getattr(event, name) for name in aggregate.keys)
                prefix = prefixes.get((aggregate.table, key))
                if prefix is None:
                    prefix = prefixes[aggregate.table, key] = self._chunks_prefix(aggregate, key)
                    known.setdefault(self.keys_key(aggregate), set()).add(KEY_SEPARATOR.join(key))
                bucket = tile_of(event.departed_at, aggregate.tile)
                parts += [f"{prefix}{bucket // CHUNK_BUCKETS}", bucket, view]
            seconds = int(event.departed_at.timestamp())
            events += [event.event_id, seconds, event.late, int(event.dep_delay), len(parts) // 3]
            events += parts
            count += 1
        if not count:
            return Applied(0, self.watermark())
        args += [count, *events]
        # The keys first: a key listed with no tile yet reads as zeros, never the reverse.
        pipe = self.client.pipeline(transaction=False)
        for keys_key, members in known.items():
            pipe.sadd(keys_key, *members)
        pipe.execute()
        result: Any = self._apply(
            keys=[self.seen, self.watermark_key, self.too_late_ids, self.too_late_count],
            args=args,
        )
        applied, watermark = int(result[0]), int(result[1])
        too_late = [departures[int(position) - 1] for position in result[2]]
        behind = {a.table: int(n) for a, n in zip(views, result[4:], strict=True) if int(n)}
        moment = pd.Timestamp(watermark, unit="s", tz="UTC") if watermark else None
        return Applied(applied, moment, behind, too_late, int(result[3]))

    def too_late(self) -> int:
        """Departures that came later than the allowed lateness (counted once each)."""
        value: Any = self.client.get(self.too_late_count)
        return int(value or 0)

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

    def take_window_sums(self, aggregate: TiledAggregate, boundary: int) -> int:
        """A writer is about to read the tiles of the windows ending at `boundary`: from now on
        an event applied before it is behind the horizon. The count of such events so far; a
        writer that kept window sums from an earlier boundary may slide them only if the count
        has not moved since (window_sums.py)."""
        behind: Any = self._take(
            keys=[self.horizon_key(aggregate), self.behind_key(aggregate)], args=[boundary]
        )
        return int(behind)

    def behind(self, aggregate: TiledAggregate) -> int:
        """The count of events applied behind the view's horizon so far."""
        value: Any = self.client.get(self.behind_key(aggregate))
        return int(value or 0)

    def tiles(
        self, aggregate: TiledAggregate, keys: list[tuple[str, ...]], first: int, stop: int
    ) -> list[Tiles]:
        """The keys' tiles in the buckets [first, stop)."""
        chunks = range(first // CHUNK_BUCKETS, (stop - 1) // CHUNK_BUCKETS + 1)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            prefix = self._chunks_prefix(aggregate, key)
            for chunk in chunks:
                pipe.hgetall(f"{prefix}{chunk}")
        answers = iter(pipe.execute())
        found = []
        for _ in keys:
            raw = {f: v for _ in chunks for f, v in next(answers).items()}
            tiles = _tiles(raw)
            tiles.buckets = {b: t for b, t in tiles.buckets.items() if first <= b < stop}
            found.append(tiles)
        return found

    def range_sums(
        self,
        aggregate: TiledAggregate,
        keys: list[tuple[str, ...]],
        ranges: list[tuple[int, int]],
    ) -> list[list[WindowSums]]:
        """Per key, the sums of its tiles over each range of buckets [first, stop), summed in
        Redis (only the sums come back), a few dozen keys per script run so that the server
        answers others in between."""
        head: list[int | str] = [CHUNK_BUCKETS, len(ranges)]
        for first, stop in ranges:
            head += [first, stop]
        pipe = self.client.pipeline(transaction=False)
        for at in range(0, len(keys), KEYS_PER_SUM):
            prefixes = [self._chunks_prefix(aggregate, k) for k in keys[at : at + KEYS_PER_SUM]]
            self._sums(keys=[], args=[*head, *prefixes], client=pipe)
        flat = [int(v) for answer in pipe.execute() for v in answer]
        per_key = 3 * len(ranges)
        return [
            [
                (flat[i + 3 * r], flat[i + 3 * r + 1], float(flat[i + 3 * r + 2]))
                for r in range(len(ranges))
            ]
            for i in range(0, len(flat), per_key)
        ]

    def forget(self, aggregate: TiledAggregate, keys: list[tuple[str, ...]], before: int) -> int:
        """Drop the keys' chunks that hold only buckets before `before` (no window reaches
        them again: rows are written forward only). The chunks dropped per key."""
        if not keys:
            return 0
        prefixes = [self._chunks_prefix(aggregate, key) for key in keys]
        result: Any = self._forget(
            keys=[self.floor_key(aggregate)],
            args=[before // CHUNK_BUCKETS, FORGET_CHUNKS, *prefixes],
        )
        return int(result)


_PARTS = {ord("c"): 0, ord("l"): 1, ord("d"): 2}


def _tiles(raw: dict[bytes, bytes]) -> Tiles:
    # Fields are b"<bucket>:<c|l|d>"; parsed as bytes (int() reads ASCII digits): this runs for
    # every key's every tile at each boundary written, the processor's hottest loop.
    parts: dict[int, list[int]] = {}
    for name, value in raw.items():
        bucket = int(name[:-2])
        sums = parts.get(bucket)
        if sums is None:
            sums = parts[bucket] = [0, 0, 0]
        sums[_PARTS[name[-1]]] = int(value)
    tiles = Tiles()
    for bucket, (count, late, delay) in parts.items():
        tiles.buckets[bucket] = (count, late, float(delay))
    return tiles
