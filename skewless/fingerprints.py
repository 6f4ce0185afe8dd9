"""Feature definition fingerprints compared: what a model recorded at training against what
is read now (`skewless/features/definitions.py` reads them from Feast). Free of Feast: loading
a model checks them without importing it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

Definition = dict[str, str]  # part -> sha256 (hex)


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(definition: Mapping[str, str]) -> str:
    """One feature's fingerprint: the hash of its parts."""
    return digest(dict(definition))[:16]


def definitions_fingerprint(definitions: Mapping[str, Mapping[str, str]]) -> str:
    """One fingerprint for a model's whole set of features (what every answer carries)."""
    return digest({name: fingerprint(d) for name, d in definitions.items()})[:16]


def definition_changes(
    recorded: Mapping[str, Mapping[str, str]], current: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """Each recorded feature whose definition is not the current one, and what changed:
    `weather_temp: ttl changed` reads as `weather_temp: view, source changed`."""
    changes = []
    for name, was in recorded.items():
        now = current.get(name)
        if now is None:
            changes.append(f"{name}: no longer defined")
            continue
        # A part known on one side only (a serving host without the build manifest) cannot
        # be compared: only the parts both sides know are.
        parts = sorted(p for p in set(was) & set(now) if was[p] != now[p])
        if parts:
            changes.append(f"{name}: {', '.join(parts)} changed")
    return changes


def skew_message(
    recorded: Mapping[str, Mapping[str, str]],
    current: Mapping[str, Mapping[str, str]],
    version: str,
) -> str | None:
    """Why a model may not read the current definitions (None: it may): its features'
    definitions changed since it was trained, or it was trained before they were recorded."""
    if not recorded:
        return (
            f"definition_skew: version {version} records no feature definitions (registered "
            "before fingerprints): retrain it (`skewless train`) on the current definitions"
        )
    changes = definition_changes(recorded, current)
    if not changes:
        return None
    shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
    return f"definition_skew: version {version} was trained on other definitions: {shown}"
