"""Temporary copies of the Feast repository for tests, so that no test touches the working
copy's data, registry or online store, and Redis keys live under a project of their own."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from skewless.settings import PROJECT_ROOT, Settings

SOURCE_REPO = PROJECT_ROOT / "feature_repo"


def copy_feature_repo(target: Path, project: str | None = None) -> Path:
    """The Feast definitions and yaml files (not the data, not the table builders)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in SOURCE_REPO.iterdir():
        if path.suffix in {".py", ".yaml"} or path.name == ".feastignore":
            shutil.copy(path, target / path.name)
    project = project or f"skewless_test_{uuid.uuid4().hex[:8]}"
    for yaml_file in target.glob("feature_store*.yaml"):
        text = re.sub(r"^project: .*$", f"project: {project}", yaml_file.read_text(), flags=re.M)
        yaml_file.write_text(text)
    return target


def settings_for(repo: Path, online_store: str, redis_connection: str) -> Settings:
    return Settings(repo_path=repo, online_store=online_store, redis_connection=redis_connection)
