"""Environments: one strict YAML file names each environment (test, staging, prod, ...) by the
settings it runs with — its state folder (MLflow registry, namespaces), its own Feast state
(registry file and SQLite store), its online store (a Redis database), its service address —
and the one thing they share, the release ledger.

The roof resolves `--env` / `SKEWLESS_ENV` once, before any command reads its settings, by
setting that environment's `SKEWLESS_*` variables: every room reads `Settings` as before and
never learns the word "environment", and every child process (a service the gate starts, a
pipeline run) inherits the same environment. Without `--env`, nothing changes: the one local
environment of the quickstart."""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

from pydantic import Field, PositiveInt, ValidationError, model_validator

from serving.settings import ServingSettings, get_serving_settings
from skewless.errors import BadInput
from skewless.settings import get_settings, home
from skewless.strict_yaml import StrictModel, describe, load_strict

FILE_VARIABLE = "SKEWLESS_ENVIRONMENTS"
ENV_VARIABLE = "SKEWLESS_ENV"
Value = str | int | float | bool
# Settings a command chooses for itself (which namespace it reads, how a first model is
# promoted), which an environment must not pin.
PER_COMMAND = {"namespace", "first_champion"}


class Environment(StrictModel):
    # Settings by their field names (SKEWLESS_<NAME> lowercased): state_dir, feast_state,
    # online_store, redis_connection, registry_uri, rest_port, ...
    settings: dict[str, Value] = Field(default_factory=dict)
    by_hand: bool = False  # reached only by `skewless release promote` (production)
    gate: Path | None = None  # the gate's configuration in this environment

    @model_validator(mode="after")
    def _known_settings(self) -> Environment:
        unknown = sorted(set(self.settings) - set(ServingSettings.model_fields))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
        if "release_ledger" in self.settings:
            raise ValueError("release_ledger is the file's `ledger:`, shared by every environment")
        chosen_per_command = sorted(PER_COMMAND & set(self.settings))
        if chosen_per_command:
            raise ValueError(
                f"{', '.join(chosen_per_command)}: chosen per command (a deploy sets them for "
                "its steps), not per environment"
            )
        if "state_dir" not in self.settings:
            raise ValueError("state_dir: each environment needs its own state folder")
        return self


class ReleaseSection(StrictModel):
    feature_tests: list[str] | None = None  # the user's feature tests, as a command (argv)
    runs_before_promotion: PositiveInt = 3  # successful runs in the environment before
    sample_days: PositiveInt = 14  # the build's end-to-end run: training days
    max_rounds: PositiveInt = 300  # and boosting rounds at most


class EnvironmentsFile(StrictModel):
    ledger: Path
    release: ReleaseSection = Field(default_factory=ReleaseSection)
    environments: dict[str, Environment]  # in the order a release goes through them

    @model_validator(mode="after")
    def _some(self) -> EnvironmentsFile:
        if not self.environments:
            raise ValueError("environments: name at least one")
        for key in ("state_dir", "feast_state"):  # each environment's own, never shared
            seen: dict[str, str] = {}
            for name, environment in self.environments.items():
                value = environment.settings.get(key)
                if value is None:
                    continue
                if str(value) in seen:
                    raise ValueError(f"{name} and {seen[str(value)]} share {key} {value}")
                seen[str(value)] = name
        return self


def environments_file() -> Path:
    given = os.environ.get(FILE_VARIABLE)
    return Path(given) if given else home() / "environments.yaml"


def load_environments(path: Path | None = None) -> EnvironmentsFile:
    path = path or environments_file()
    if not path.is_file():
        raise BadInput(
            f"no environments file at {path} (set {FILE_VARIABLE}, or write one: docs/releases.md)"
        )
    return load_strict(path, EnvironmentsFile)


def _path_fields() -> set[str]:
    """Settings whose values are paths: relative ones are read from the file's folder."""
    hints = typing.get_type_hints(ServingSettings)
    return {name for name in ServingSettings.model_fields if "Path" in str(hints.get(name))}


def environment_variables(name: str, path: Path | None = None) -> dict[str, str]:
    """The `SKEWLESS_*` variables of environment `name`, paths made absolute."""
    path = path or environments_file()
    loaded = load_environments(path)
    if name not in loaded.environments:
        known = ", ".join(loaded.environments)
        raise BadInput(f"--env {name}: not in {path} (environments: {known})")
    folder, paths = path.resolve().parent, _path_fields()

    def value(key: str, raw: Value | Path) -> str:
        if key in paths or isinstance(raw, Path):
            return str(folder / Path(str(raw)))
        return str(raw).lower() if isinstance(raw, bool) else str(raw)

    variables = {
        f"SKEWLESS_{key.upper()}": value(key, raw)
        for key, raw in loaded.environments[name].settings.items()
    }
    variables["SKEWLESS_RELEASE_LEDGER"] = value("release_ledger", loaded.ledger)
    variables[ENV_VARIABLE] = name
    try:  # every value checked now, against the settings' own types, naming the key
        ServingSettings(**_as_settings(variables))
    except ValidationError as exc:
        raise BadInput(f"{path}: environments.{name}.settings: {describe(exc)}") from None
    return variables


def _as_settings(variables: dict[str, str]) -> dict[str, Any]:
    prefix = "SKEWLESS_"
    return {
        k[len(prefix) :].lower(): v
        for k, v in variables.items()
        if k.startswith(prefix) and k != ENV_VARIABLE
    }


def select(name: str) -> None:
    """Make environment `name` this process's (and its children's) settings: what another
    environment of the file set (a `SKEWLESS_ENV` exported for one, then `--env` another) is
    removed first, so nothing of it leaks into this one."""
    path = environments_file()
    chosen = environment_variables(name, path)
    for other in load_environments(path).environments.values():
        for key in other.settings:
            variable = f"SKEWLESS_{key.upper()}"
            if variable not in chosen:
                os.environ.pop(variable, None)
    os.environ.update(chosen)
    get_settings.cache_clear()
    get_serving_settings.cache_clear()


def ledger_file() -> Path | None:
    """The environments file's ledger, whichever environment is selected (or none)."""
    path = environments_file()
    if not path.is_file():
        return None
    return path.resolve().parent / load_environments(path).ledger


def gate_file(name: str) -> Path | None:
    path = environments_file()
    gate = load_environments(path).environments[name].gate
    return None if gate is None else path.resolve().parent / gate
