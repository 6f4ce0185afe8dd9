"""The payload file between the gate and locust: one JSON object a line.

Kept apart from `payloads.py` (which builds payloads from Feast and the model) because the
locust process reads it: importing Feast and LightGBM there cost 5-7 s of every gate's start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_payloads(items: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(item) for item in items) + "\n")
    return path


def read_payloads(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]
