"""A repository's relative file paths resolved against the repository, from any folder.

Feast's DuckDB offline store reads a `FileSource`'s relative path against the current folder
(its `file` store reads it against the repository), so a command run outside a repository
whose sources say `data/table.parquet` would read another folder's file, or none. The ASOF
store hands Feast sources whose paths are absolute."""

from __future__ import annotations

import copy
from pathlib import Path

from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.file_source import FileSource


def absolute_source(source: DataSource, repo_path: Path | str | None) -> DataSource:
    """`source` itself, or for a local FileSource with a relative path a copy whose path is
    that path under `repo_path`."""
    if not isinstance(source, FileSource) or repo_path is None:
        return source
    path = source.path
    if "://" in path or Path(path).is_absolute():
        return source
    resolved = copy.deepcopy(source)
    resolved.file_options.uri = str(Path(repo_path) / path)
    return resolved


def with_absolute_source(view: FeatureView, repo_path: Path | str | None) -> FeatureView:
    """`view` itself, or a copy reading its batch source by an absolute path."""
    source = view.batch_source
    resolved = absolute_source(source, repo_path) if source is not None else None
    if resolved is source:
        return view
    copied = copy.copy(view)
    copied.batch_source = resolved
    return copied
