"""What a release is: the pipeline's implementation, addressed by the hash of its content.

A release is code and definitions, not a model (each environment trains its own from it): the
feature definitions with their fingerprints (what the repository's files would register), the
feature repository's files, the table builders' code, the model configuration, the project's
own code and version, and the lock file's hash. Two checkouts with the same content are the
same release; any change to one of them is another."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skewless
from skewless.definition_plan import pending_definitions
from skewless.fingerprints import definitions_fingerprint, digest, fingerprint
from skewless.hashing import sha256_file
from skewless.models.configuration import ModelConfig
from skewless.settings import Settings

# The project's own packages: the code that runs the pipeline, serves and releases.
PACKAGES = ("cli", "loadtests", "training", "serving", "monitoring", "skewless")
SOURCES = (".py", ".proto", ".yaml")


@dataclass(frozen=True)
class Manifest:
    id: str  # the first 12 hex digits of the content's hash
    content: dict[str, Any]

    @property
    def definitions(self) -> dict[str, str]:
        return dict(self.content["definitions"])


def files_digest(root: Path, files: Iterable[Path]) -> str:
    """One hash over files by their path under `root` and their content."""
    return digest({str(f.relative_to(root)): sha256_file(f) for f in sorted(files)})


def _sources(folder: Path) -> list[Path]:
    return [
        f
        for f in folder.rglob("*")
        if f.is_file() and f.suffix in SOURCES and "__pycache__" not in f.parts
    ]


def code_digest() -> str:
    """The project's own code, wherever it is installed (a checkout or a wheel)."""
    parts = {}
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)  # found, not imported: the roof stays above
        if spec is not None and spec.origin is not None:
            folder = Path(spec.origin).parent
            parts[name] = files_digest(folder, _sources(folder))
    return digest(parts)


def repository_digest(repo: Path) -> str:
    """The feature repository's own files (definitions, yaml, builders), not its data."""
    data = repo / "data"
    files = [f for f in _sources(repo) if data not in f.parents]
    return files_digest(repo, files)


def release_manifest(
    settings: Settings,
    config: ModelConfig,
    *,
    built_code: Mapping[str, str] | None,
    lock_file: Path | None,
) -> Manifest:
    definitions = pending_definitions(settings, config.feature_service, built_code)
    assert config.source is not None  # read from a file
    content = {
        "model": config.name,
        "feature_service": config.feature_service,
        "definitions": {name: fingerprint(d) for name, d in sorted(definitions.items())},
        "definitions_fingerprint": definitions_fingerprint(definitions),
        "table_builders": dict(sorted((built_code or {}).items())),
        "feature_repository": repository_digest(settings.repo_path),
        "model_configuration": sha256_file(config.source),
        "code": code_digest(),
        "version": skewless.__version__,
        "lock": sha256_file(lock_file) if lock_file is not None and lock_file.is_file() else "",
    }
    return Manifest(digest(content)[:12], content)
