"""Opening the Feast repository with the online store the settings choose, and the Feast
operations skewless wraps (apply, materialize)."""

from __future__ import annotations

import hashlib
import os
import string
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml
from feast import FeatureStore
from feast.infra.offline_stores.file_source import FileSource
from feast.repo_config import RepoConfig
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from skewless.errors import BadInput, SkewlessError
from skewless.features import namespaces
from skewless.features.service import ServiceSchema
from skewless.models.configuration import ModelConfig
from skewless.settings import Settings
from skewless.strict_yaml import describe

# Static profiles are stamped long before any data set's first request; a full
# materialization must reach back to them.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FeatureRepoError(SkewlessError):
    """The Feast repository cannot be used as asked (not applied, missing tables, ...)."""


def feast_environment(settings: Settings) -> dict[str, str]:
    # feature_store.redis.yaml reads its connection string from the environment.
    return {**os.environ, "SKEWLESS_REDIS_CONNECTION": settings.redis_connection}


def yaml_project(settings: Settings) -> str:
    """The Feast project the repository's yaml names (the first namespace)."""
    return str(yaml.safe_load(settings.feature_store_yaml.read_text()).get("project"))


def repo_yaml(settings: Settings) -> Path:
    """The Feast configuration the settings name: the repository's yaml for the online store,
    or a copy under the state folder (so the `feast` CLI and the SDK read one configuration)
    with the namespace's project in place of the yaml's (skewless/features/namespaces.py),
    with `feast_state`, a registry file and SQLite database of its own, and, with
    `feast_registry_uri`, Feast's SQL registry in place of the file."""
    given = settings.feature_store_yaml
    if not given.is_file():
        raise BadInput(
            f"no Feast repository at {settings.repo_path} "
            f"({given.name} not found; see SKEWLESS_REPO_PATH)"
        )
    config = yaml.safe_load(given.read_text())  # ${...} kept: Feast expands them on load
    project = namespaces.project_for(settings, str(config.get("project")))
    own_state = settings.feast_state
    if project == config.get("project") and settings.feast_registry_uri is None and not own_state:
        return given
    config["project"] = project
    suffix = ""
    if own_state is not None:  # an environment's own registry file and SQLite database
        own_state.mkdir(parents=True, exist_ok=True)
        config["registry"] = str(own_state.resolve() / "registry.db")
        online = config.get("online_store") or {"type": "sqlite"}
        if isinstance(online, dict) and online.get("type", "sqlite") == "sqlite":
            path = str(own_state.resolve() / "online_store.db")
            config["online_store"] = {**online, "path": path}
        suffix = f".{_path_tag(own_state)}"
    if settings.feast_registry_uri is not None:
        config["registry"] = {
            "registry_type": "sql",
            "path": settings.feast_registry_uri,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        }
        suffix += ".sql-registry"
    generated = settings.state_dir / "feast" / f"{given.stem}.{project}{suffix}.yaml"
    generated.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config, sort_keys=False)
    if not generated.is_file() or generated.read_text() != text:
        tmp = generated.with_suffix(f".{os.getpid()}.tmp")  # workers may start together
        tmp.write_text(text)
        tmp.replace(generated)
    return generated


def _path_tag(folder: Path) -> str:
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]


def _repo_config(
    settings: Settings, path: Path | None = None, project: str | None = None
) -> RepoConfig:
    """The repository's Feast configuration (or the one `path` holds), its `${VARIABLES}`
    expanded as Feast expands them, with SKEWLESS_REDIS_CONNECTION taken from the settings
    (the process's environment is left as it is)."""
    path = path or repo_yaml(settings)
    environment = feast_environment(settings)
    text = string.Template(path.read_text()).safe_substitute(environment)
    raw = yaml.safe_load(os.path.expandvars(text))
    try:
        config = RepoConfig(**raw)
    except ValidationError as exc:
        raise FeatureRepoError(f"{path}: {describe(exc)}") from None
    config.repo_path = settings.repo_path
    if project is not None:
        config.project = project
    return config


def open_store(
    settings: Settings, config_file: Path | None = None, *, project: str | None = None
) -> FeatureStore:
    """The repository's feature store; `config_file`: under another Feast configuration of the
    same repository (a scratch registry `skewless plan` applies the pending definitions to);
    `project`: another namespace's (the one a served model was trained on)."""
    config = _repo_config(settings, config_file, project)
    if settings.offline_store == "duckdb":
        # Feast's stock DuckDB store, whatever the yaml names: for comparison and as the
        # fallback should the ASOF plug-in (skewless.offline.asof_store) misbehave.
        config.offline_config = {"type": "duckdb"}
        config._offline_store = None
    try:
        return FeatureStore(repo_path=str(settings.repo_path), config=config)
    except SQLAlchemyError as exc:  # Feast's SQL registry (feast_registry_uri) opens it here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FeatureRepoError(f"the Feast registry failed to open: {first}") from exc


def feast_command(settings: Settings, *args: str, config_file: Path | None = None) -> list[str]:
    # Feast's own command line, run by this interpreter: the `feast` script's module, found
    # whether or not a `feast` script sits beside it.
    return [
        sys.executable,
        "-m",
        "feast.cli.cli",
        "-c",
        str(settings.repo_path),
        "-f",
        str(config_file or repo_yaml(settings)),
        *args,
    ]


def apply(settings: Settings, config_file: Path | None = None) -> str:
    """`feast apply`, exactly as a data scientist runs it; returns its output."""
    return run_feast(settings, "apply", config_file=config_file)


def run_feast(settings: Settings, verb: str, config_file: Path | None = None) -> str:
    """One of Feast's own commands on the repository (apply, plan); its output. Under a
    namespace's own project, Feast's apply and plan with the repository's Project object
    renamed (skewless/features/namespace_apply.py): Feast's command refuses a Project object
    that names another project.

    Run without Feast's import-time type instrumentation (~3 s a command); a failure is run
    again with it, so that a wrongly typed argument in a definition is named by Feast's own
    check rather than by whatever fails deeper without it."""
    config_file = config_file or repo_yaml(settings)
    done, command = _run_feast(settings, verb, config_file, checked=False)
    if done.returncode != 0:
        done, command = _run_feast(settings, verb, config_file, checked=True)
    if done.returncode != 0:
        raise FeatureRepoError(
            f"feast {verb} failed: {feast_failure(done)} "
            f"(`{' '.join(command)}` shows Feast's whole output)"
        )
    return done.stdout


def _run_feast(
    settings: Settings, verb: str, config_file: Path, *, checked: bool
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    if _project_of(config_file) == _project_of(settings.feature_store_yaml):
        command = feast_command(settings, verb, config_file=config_file)
        if not checked:
            command[2] = "skewless.features.feast_cli"  # Feast's CLI, unchanged but for that
    else:
        checks = ["--checked"] if checked else []
        command = [
            sys.executable,
            "-m",
            "skewless.features.namespace_apply",
            verb,
            str(settings.repo_path),
            str(config_file),
            *checks,
        ]
    done = subprocess.run(
        command, env=feast_environment(settings), capture_output=True, text=True, check=False
    )
    return done, command


def _project_of(config_file: Path) -> str:
    return str(yaml.safe_load(config_file.read_text()).get("project"))


def feast_failure(done: subprocess.CompletedProcess[str]) -> str:
    """What Feast says failed: its trace's exception (with the lines it spans, as one), or,
    when it printed a reason and exited without one (a Project object naming another
    project), that reason."""
    errors = [line.rstrip() for line in done.stderr.splitlines() if line.strip()]
    said = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if errors and "Traceback" in done.stderr:
        # The exception is the last unindented line after the last frame, and what follows.
        frames = [i for i, line in enumerate(errors) if line.startswith("  File ")]
        tail = errors[frames[-1] + 1 :] if frames else errors
        starts = [i for i, line in enumerate(tail) if not line.startswith(" ")]
        return " ".join(line.strip() for line in tail[starts[0] :]) if starts else errors[-1]
    if errors and not said:
        return errors[-1].strip()
    return said[-1] if said else "no output"


def scratch_config(settings: Settings, folder: Path) -> Path:
    """The repository's Feast configuration with a registry and an online store of its own in
    `folder`: what applying the repository's files would register, without touching the
    registry and the store the service reads."""
    config = yaml.safe_load(repo_yaml(settings).read_text())  # ${...} kept for Feast
    config["registry"] = str(folder / "registry.db")
    config["online_store"] = {"type": "sqlite", "path": str(folder / "online.db")}
    path = folder / "feature_store.scratch.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def materialize(
    store: FeatureStore, end: datetime, *, start: datetime | None = None, incremental: bool = False
) -> None:
    """Load the latest feature row per entity at or before `end` into the online store.

    `incremental` loads only what came since each view's last materialization; a view never
    materialized would otherwise start at wall-clock now minus its TTL (Feast's rule), which
    misses every row of a replayed year, so a store with any such view gets a full load.
    """
    never = [
        v.name
        for v in store.list_feature_views()
        if v.online and not v.materialization_intervals  # offline-only views never are
    ]
    if incremental and not never:
        store.materialize_incremental(end_date=end)
    else:
        store.materialize(start_date=start or EPOCH, end_date=end)


def file_source_path(store: FeatureStore, source_name: str) -> Path:
    source = store.get_data_source(source_name)
    if not isinstance(source, FileSource):
        raise FeatureRepoError(f"data source {source_name!r} is not a FileSource")
    path = Path(source.path)
    if not path.is_absolute():  # as the offline store reads it: under the repository
        path = Path(store.repo_path) / path
    if not path.exists():
        raise FeatureRepoError(
            f"data source {source_name!r} reads {path}, which does not exist: "
            "run `skewless build-tables` first"
        )
    return path


def recent_entity_rows(
    store: FeatureStore, config: ModelConfig, schema: ServiceSchema, n: int
) -> pd.DataFrame:
    """The last `n` entity rows at or before `as_of` whose join keys are all known."""
    rows = pd.read_parquet(file_source_path(store, config.entity_source))
    past = rows[rows["event_timestamp"] <= pd.Timestamp(config.as_of)]
    past = past.dropna(subset=list(schema.join_keys))
    return past.sort_values("event_timestamp", kind="stable").tail(n).reset_index(drop=True)
