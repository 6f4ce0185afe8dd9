"""Copies of a Feast repository: its definitions and yaml files, not its data, registry or
online store. `skewless init` starts a project from the packaged repository this way, and
the tests and benchmarks work on copies so that none touches the checkout's state."""

from __future__ import annotations

import re
import shutil
from pathlib import Path


def copy_repository(source: Path, target: Path, project: str | None = None) -> Path:
    """The definitions (`*.py`), the yaml files and `.feastignore` of `source` into `target`;
    with `project`, every feature_store yaml names that Feast project (its own registry
    entries and online keys)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and (path.suffix in {".py", ".yaml"} or path.name == ".feastignore"):
            shutil.copy(path, target / path.name)
    if project is not None:
        for yaml_file in target.glob("feature_store*.yaml"):
            text = yaml_file.read_text()
            yaml_file.write_text(re.sub(r"^project: .*$", f"project: {project}", text, flags=re.M))
    return target
