"""Resumable run state: which steps finished, from which inputs, with which outputs.

A step is reused on resume only when its input key (configuration plus the hashes of the
artifacts it reads) is unchanged and every output file still has its recorded sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skewless.hashing import sha256_file


def input_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class RunState:
    path: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RunState:
        steps = json.loads(path.read_text())["steps"] if path.exists() else {}
        return cls(path, steps)

    def reusable(self, step: str, key: str) -> bool:
        record = self.steps.get(step)
        if record is None or record["key"] != key:
            return False
        folder = self.path.parent
        return all(
            (folder / name).exists() and sha256_file(folder / name) == sha
            for name, sha in record["outputs"].items()
        )

    def outputs(self, step: str) -> dict[str, str]:
        return dict(self.steps[step]["outputs"])

    def record(self, step: str, key: str, outputs: dict[str, str], seconds: float) -> None:
        self.steps[step] = {
            "key": key,
            "outputs": outputs,
            "seconds": seconds,
            "finished": datetime.now(UTC).isoformat(),
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"steps": self.steps}, indent=2, sort_keys=True))
        tmp.replace(self.path)
