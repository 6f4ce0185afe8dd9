"""The champion history: every move of the `champion` alias, recorded as one registered-model
tag per move, and what can be read from it (the version a rollback returns to).

Free of MLflow: the registry adapter reads and writes the tags; these functions say what they
hold."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .versions import RegistryError

# The champion history: one tag per move, numbered from 1 (a JSON ChampionMove each). One tag
# for the whole list overflowed MLflow's 5,000-character tag value on PostgreSQL after ~20
# moves; one move stays under it (`record_of`). Registries written before kept the list in
# one tag (LEGACY_HISTORY_TAG): `skewless migrate-registry` rewrites it as move tags, and the
# history of a registry not yet migrated is refused with that advice, never read half.
MOVE_TAG_PREFIX = "skewless.champion_move."
LEGACY_HISTORY_TAG = "skewless.champion_history"
TEXT_CAP = 1500  # characters of a move's `why`, `gate` and `by` kept in its record
TAG_LIMIT = 4900  # serialized characters of one move (MLflow's column: 5,000)
UNGATED = "ungated: the first champion of a registry that had none"


@dataclass(frozen=True)
class ChampionMove:
    version: str
    previous: str | None
    action: str  # pipeline | promote | rollback
    by: str
    at: str  # ISO time, UTC
    why: str
    gate: str = ""  # the passed gate it went through, or UNGATED (older records: empty)


def move_tag(number: int) -> str:
    """The tag of the `number`-th recorded move (zero-padded: the tags sort as they happened)."""
    return f"{MOVE_TAG_PREFIX}{number:06d}"


def record_of(move: ChampionMove) -> str:
    """One move as its tag's value, its free texts cut so that it always fits one tag: the
    cap counts the serialized characters (escaped quotes and control characters too)."""
    fields = asdict(move)
    for name in ("why", "gate", "by"):
        if len(fields[name]) > TEXT_CAP:
            fields[name] = fields[name][: TEXT_CAP - 1] + "\u2026"
    record = json.dumps(fields, ensure_ascii=False)
    while len(record) > TAG_LIMIT:
        longest = max(("why", "gate", "by"), key=lambda name: len(fields[name]))
        fields[longest] = fields[longest][: len(fields[longest]) // 2] + "\u2026"
        record = json.dumps(fields, ensure_ascii=False)
    return record


def history_of(tags: dict[str, str]) -> list[ChampionMove]:
    """The champion moves recorded in a registered model's tags, oldest first."""
    if LEGACY_HISTORY_TAG in tags:
        raise RegistryError(
            "the champion history is in an older skewless's form; run `skewless "
            "migrate-registry` once (after upgrading every host that promotes)"
        )
    return [ChampionMove(**json.loads(tags[key])) for key in move_tags(tags)]


def move_tags(tags: dict[str, str]) -> list[str]:
    """The numbered move tags, in number order."""
    found = [k for k in tags if k.startswith(MOVE_TAG_PREFIX)]
    numbered = [k for k in found if k.removeprefix(MOVE_TAG_PREFIX).isdigit()]
    return sorted(numbered, key=lambda key: int(key.removeprefix(MOVE_TAG_PREFIX)))


def previous_champion(history: list[ChampionMove], current: str) -> str | None:
    """The version the current champion's last promotion replaced (None: none on record).
    Walking back twice goes two promotions back."""
    for move in reversed(history):
        if move.version == current and move.action != "rollback" and move.previous != move.version:
            return move.previous
    return None
