"""File hashing: the sha256 that ties a model artifact, a pipeline step's output and a gate
report to the exact bytes they describe; and the git commit a folder is checked out at."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit(folder: Path, *, mark_changes: bool = False) -> str:
    """The commit `folder` is checked out at ("unknown" outside git); with `mark_changes`,
    "+changes" when files under it differ from that commit."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=folder, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "unknown"
    return (
        f"{commit}+changes" if mark_changes and git("status", "--porcelain", "--", ".") else commit
    )
