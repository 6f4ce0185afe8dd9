"""On-demand retraining: `skewless ct trigger --why` leaves a request file that the next tick
acts on (whatever the cooldown) and removes."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from skewless.registry.versions import operator
from skewless.settings import Settings

from .lock import ct_dir


@dataclass(frozen=True)
class Request:
    path: Path
    why: str


def request_retrain(settings: Settings, why: str) -> Path:
    """An on-demand trigger, acted on (and removed) by the next tick."""
    folder = ct_dir(settings) / "requests"
    folder.mkdir(exist_ok=True)
    path = folder / f"{time.time_ns()}-{uuid.uuid4().hex[:6]}.json"
    tmp = path.with_suffix(".tmp")  # not *.json: a tick never reads it half written
    tmp.write_text(json.dumps({"why": why, "by": operator(), "at": datetime.now(UTC).isoformat()}))
    tmp.replace(path)
    return path


def pending(settings: Settings) -> list[Request]:
    """The requests not yet acted on, oldest first."""
    paths = sorted((ct_dir(settings) / "requests").glob("*.json"))
    return [Request(p, str(json.loads(p.read_text())["why"])) for p in paths]


def done(requests: list[Request]) -> None:
    """Exactly those acted on; a newer one waits for the next tick."""
    for request in requests:
        request.path.unlink(missing_ok=True)
