"""A consumer of the event log in a group: valid events out, in log order; an entry that is not
one goes to the dead-letter stream with its reason (counted, acknowledged) and is never raised,
so a malformed event cannot stop a processor.

After a restart a consumer first takes back the entries it had been given and not acknowledged
(its pending entries: what it was holding when it stopped), then claims those another consumer
has held unacknowledged for a minute (it died and did not come back under its name), then reads
new ones. Several consumers of one group share the log: Redis gives each entry to one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from feature_repo.tables.events import Event, MalformedEvent, parse_event

from .log import EventLog, Read

FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class Delivered:
    entry_id: str
    event: Event


class EventReader:
    def __init__(
        self, log: EventLog, group: str, consumer: str, *, claim_idle_ms: int = 60_000
    ) -> None:
        self.log, self.group, self.consumer = log, group, consumer
        self.claim_idle_ms = claim_idle_ms  # another consumer's entries, idle this long: ours
        log.create_group(group)
        self._taking_back = True  # its own pending entries first
        self.dead_lettered = 0

    def poll(self, *, count: int = 1000, block_ms: int = 1000) -> list[Delivered]:
        """The next valid events (at most `count` entries read); acknowledge them with `ack`
        once their effect is stored. Until then a restarted consumer is given them again.
        Empty only when there was nothing to read (a batch of dead letters reads on)."""
        while True:
            reads = self._read(count, block_ms)
            if not reads:
                return []
            delivered = self._checked(reads)
            if delivered:
                return delivered

    def _read(self, count: int, block_ms: int) -> list[Read]:
        reads: list[Read] = []
        if self._taking_back:
            reads = self.log.read(
                self.group, self.consumer, count=count, block_ms=None, pending=True
            )
            self._taking_back = bool(reads)
        if not reads:
            reads = self.log.read(
                self.group, self.consumer, count=count, block_ms=block_ms, pending=False
            )
        if not reads:  # idle: what a consumer that died (and never came back) still holds
            reads = self.log.claim_idle(
                self.group, self.consumer, idle_ms=self.claim_idle_ms, count=count
            )
        return reads

    def _checked(self, reads: list[Read]) -> list[Delivered]:
        """The valid events; the others dead-lettered (counted, acknowledged)."""
        delivered = []
        # A time far ahead of the wall clock is a typo, not an event: it would move every clock
        # and make every true event after it look late.
        horizon = datetime.now(UTC) + FUTURE_TOLERANCE
        for read in reads:
            problem = read.encoding_error
            if problem is None:
                try:
                    event = parse_event(read.fields)
                    if event.event_time <= horizon:
                        delivered.append(Delivered(read.entry_id, event))
                        continue
                    problem = (
                        f"{event.KIND}: event time {event.event_time.isoformat()} is more than "
                        f"{FUTURE_TOLERANCE} ahead of the wall clock"
                    )
                except MalformedEvent as exc:
                    problem = str(exc)
            self.log.dead_letter(self.group, read.entry_id, read.fields, problem)
            self.dead_lettered += 1
        return delivered

    def ack(self, entry_ids: list[str]) -> None:
        self.log.ack(self.group, entry_ids)
