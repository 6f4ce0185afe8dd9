"""The window sums a stream processor slides between boundaries, on a real Redis: equal to
the sums taken afresh from every tile, taken afresh when an event lands behind the horizon
(a late one), and the tiles' chunks no window reaches any more are dropped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from feature_repo.tables.events import Departure
from feature_repo.tables.tiles import ROUTE_7D, tile_of
from streaming.log import redis_client
from streaming.tile_store import CHUNK_BUCKETS, TileStore
from streaming.window_sums import SlidingSums

pytestmark = pytest.mark.integration

START = datetime(2013, 6, 1, tzinfo=UTC)
ROUTES = [("EWR", "ORD"), ("JFK", "LAX"), ("LGA", "ATL")]


def _departure(n: int, at: datetime, route: tuple[str, str], delay: int) -> Departure:
    return Departure(
        flight_id=f"f{n}",
        origin=route[0],
        dest=route[1],
        carrier="UA",
        tailnum=None,
        scheduled_departure=at - timedelta(minutes=delay),
        departed_at=at,
        dep_delay=float(delay),
    )


@pytest.fixture
def tiles(redis_connection: str) -> Iterator[TileStore]:
    client = redis_client(redis_connection)
    store = TileStore(client, f"test_window_sums_{datetime.now().timestamp():.0f}")
    yield store
    for key in client.scan_iter(f"{store.prefix}:*"):
        client.delete(key)


def _fresh(tiles: TileStore, boundary: int) -> dict[tuple[str, ...], list[tuple[int, int, float]]]:
    aggregate = ROUTE_7D
    keys = tiles.keys(aggregate)
    read = tiles.tiles(aggregate, keys, boundary - aggregate.steps_longest, boundary)
    steps = [aggregate.steps(w) for w in aggregate.windows]
    return {k: [t.window_at(boundary, s) for s in steps] for k, t in zip(keys, read, strict=True)}


def test_slid_sums_equal_fresh_ones_and_a_late_event_makes_them_fresh(tiles: TileStore) -> None:
    aggregate = ROUTE_7D
    hour = timedelta(hours=1)
    n = 0
    sums = SlidingSums(tiles)
    last = -1
    for h in range(24 * 10):  # ten days, one departure an hour on a route in turn
        at = START + h * hour + timedelta(minutes=7)
        tiles.apply([_departure(n, at, ROUTES[h % 3], delay=(h * 7) % 61 - 5)])
        n += 1
        if h % 5 == 4:  # a boundary written every five hours
            boundary = tile_of(at, aggregate.tile) + 1
            keys, got = sums.at(aggregate, boundary, last)
            assert dict(zip(keys, got, strict=True)) == _fresh(tiles, boundary)
            last = boundary
    assert sums.slid > 30  # it slid most of the time, not summed anew
    summed = sums.summed

    # A late event: two days before the last boundary, inside the week the sums hold.
    late_at = START + (24 * 10 - 48) * hour + timedelta(minutes=3)
    tiles.apply([_departure(n, late_at, ROUTES[0], delay=40)], lateness_seconds=3 * 86_400)
    boundary = last + 1
    keys, got = sums.at(aggregate, boundary, last)
    assert dict(zip(keys, got, strict=True)) == _fresh(tiles, boundary)
    assert sums.summed == summed + len(ROUTES)  # taken afresh, not slid past the late event


def test_chunks_no_window_reaches_are_dropped(tiles: TileStore) -> None:
    aggregate = ROUTE_7D
    first = START + timedelta(minutes=5)
    tiles.apply([_departure(1, first, ROUTES[0], delay=3)])
    later = first + timedelta(days=30)
    tiles.apply([_departure(2, later, ROUTES[0], delay=3)])
    sums = SlidingSums(tiles)
    sums.at(aggregate, tile_of(later, aggregate.tile) + 1, -1)
    prefix = tiles._chunks_prefix(aggregate, ROUTES[0])
    old_chunk = tile_of(first, aggregate.tile) // CHUNK_BUCKETS
    new_chunk = tile_of(later, aggregate.tile) // CHUNK_BUCKETS
    assert not tiles.client.exists(f"{prefix}{old_chunk}")  # a month old: dropped
    assert tiles.client.exists(f"{prefix}{new_chunk}")
