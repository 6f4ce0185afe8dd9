"""Step artifacts: files with a content hash, in one folder per pipeline run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from skewless.hashing import sha256_file


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str


def write_frame(frame: pd.DataFrame, path: Path) -> Artifact:
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)  # never a half-written artifact under the final name
    return Artifact(path, sha256_file(path))


def write_text(text: str, path: Path) -> Artifact:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return Artifact(path, sha256_file(path))


def write_json(data: Any, path: Path) -> Artifact:
    return write_text(json.dumps(data, indent=2, sort_keys=True, default=str), path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
