"""Cron expressions, the five standard fields (minute hour day-of-month month day-of-week),
each `*`, a number, a range `a-b`, a list `a,b`, or a step `*/n` / `a-b/n`. Day-of-week 0 or
7 is Sunday. When both day fields are restricted (neither starts with `*`), either may match
(cron's own rule). Times are read in UTC.

A few lines rather than a dependency: the controller only asks "did a scheduled moment pass
between two ticks?", minute by minute over at most the gap between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from skewless.errors import BadInput


class CronError(BadInput, ValueError):
    """A cron expression that does not parse (a ValueError too: refused as configuration)."""


RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
NAMES = ("minute", "hour", "day of month", "month", "day of week")


def _field(text: str, low: int, high: int, name: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, slash, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 1 if not slash else -1
        if slash and body != "*" and "-" not in body:
            step = -1  # `5/10`: a step needs a range or `*` (cron refuses it too)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = (int(a), int(b)) if a.isdigit() and b.isdigit() else (-1, -1)
        elif body.isdigit():
            start = end = int(body)
        else:
            start = end = -1
        if step < 1 or not low <= start <= end <= high:
            raise CronError(f"cron {name} field {text!r}: expected numbers in {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    text: str
    fields: tuple[frozenset[int], ...]
    starred: tuple[bool, bool]  # day of month, day of week: `*`-led, i.e. unrestricted

    @classmethod
    def parse(cls, text: str) -> Cron:
        parts = text.split()
        if len(parts) != 5:
            raise CronError(f"cron {text!r}: expected 5 fields (minute hour day month weekday)")
        fields = tuple(_field(p, *RANGES[i], NAMES[i]) for i, p in enumerate(parts))
        weekdays = frozenset(7 if d == 0 else d for d in fields[4]) | frozenset(
            0 if d == 7 else d for d in fields[4]
        )
        # Restricted = not starting with `*` (cron's rule), whatever values it covers.
        starred = (parts[2].startswith("*"), parts[4].startswith("*"))
        return cls(text, (*fields[:4], weekdays), starred)

    def matches(self, moment: datetime) -> bool:
        """Whether `moment`'s minute is scheduled; cron here reads UTC."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        minute, hour, day, month, weekday = self.fields
        if moment.minute not in minute or moment.hour not in hour or moment.month not in month:
            return False
        dow = (moment.weekday() + 1) % 7  # cron: 0 = Sunday
        day_any, dow_any = self.starred
        if day_any or dow_any:
            return moment.day in day and dow in weekday
        return moment.day in day or dow in weekday

    def passed_between(self, after: datetime, until: datetime) -> datetime | None:
        """The latest scheduled minute in (after, until], or None."""
        moment = until.replace(second=0, microsecond=0)
        limit = max(after, until - timedelta(days=366))
        while moment > limit:
            if self.matches(moment):
                return moment
            moment -= timedelta(minutes=1)
        return None
