"""Temporary copies of the Feast repository for tests, so that no test touches the working
copy's data, registry or online store, and Redis keys live under a project of their own."""

from __future__ import annotations

import uuid
from pathlib import Path

from skewless.features.repository import copy_repository
from skewless.settings import Settings

CHECKOUT = Path(__file__).resolve().parents[2]
SOURCE_REPO = CHECKOUT / "feature_repo"


def copy_feature_repo(target: Path, project: str | None = None) -> Path:
    """The Feast definitions and yaml files (not the data, not the table builders)."""
    return copy_repository(SOURCE_REPO, target, project or f"skewless_test_{uuid.uuid4().hex[:8]}")


def settings_for(repo: Path, online_store: str, redis_connection: str) -> Settings:
    return Settings(repo_path=repo, online_store=online_store, redis_connection=redis_connection)
