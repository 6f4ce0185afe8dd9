"""What every room's commands module shares: the console, `--config`, time parsing, the
registered models of one-off commands, and running another room's command as a program.
The commands themselves live in the rooms and under the roof, which wires them into one app."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer
from rich.console import Console

from skewless.errors import BadInput, SkewlessError
from skewless.models.configuration import ModelConfig, load_model_config
from skewless.settings import Settings

if TYPE_CHECKING:  # imported where used: every command's start pays only for what it runs
    from skewless.features.service import ServiceSchema
    from skewless.models.artifacts import ModelFetcher

console = Console(soft_wrap=True)  # long lines stay whole: logs and tests grep them

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Model configuration YAML (default: settings).")
]


def model_config(path: Path | None, settings: Settings) -> ModelConfig:
    return load_model_config(path or settings.model_file)


def parse_time(value: str, option: str) -> datetime:
    """An ISO time (UTC when it names no zone); anything else is bad input naming `option`."""
    try:
        moment = pd.Timestamp(value)
    except ValueError:
        raise BadInput(f"{option}: {value!r} is not an ISO time") from None
    if pd.isna(moment):
        raise BadInput(f"{option}: {value!r} is not an ISO time")
    aware = moment.tz_localize("UTC") if moment.tzinfo is None else moment
    result: datetime = aware.to_pydatetime()
    return result


def model_fetcher(
    settings: Settings, schema: ServiceSchema, *, analysis: bool = False
) -> ModelFetcher:
    """Registered models for one-off commands. Those that score (batch scoring, replay)
    refuse a model trained on other feature definitions, as the service does; an analysis of
    what was served (the skew check) reads it anyway: there, a changed definition is what it
    finds."""
    from skewless.models.artifacts import ModelFetcher
    from skewless.registry.adapter import ModelRegistry

    name = model_config(None, settings).name
    return ModelFetcher(
        ModelRegistry.of(settings),
        name,
        schema,
        settings.state_dir / "cli",
        allow_definition_skew=analysis or settings.definition_skew == "allow",
    )


def command_module() -> str:
    """The module the installed distribution's `skewless` script points to. Read from the
    package's metadata, so the kernel never names the roof."""
    scripts = entry_points(group="console_scripts", name="skewless")
    if not scripts:
        raise SkewlessError(
            "skewless is not installed, so one command cannot run another: `pip install -e .` "
            "in the checkout (scripts/quickstart does)"
        )
    return next(iter(scripts)).module


def command_program() -> list[str]:
    """The `skewless` command as a program: this interpreter running its module."""
    return [sys.executable, "-m", command_module()]


def run_command(
    *args: str, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
) -> int:
    """Run one `skewless` command in a subprocess (its output goes to ours; a crash there stays
    there), with `env` added to ours (settings such as SKEWLESS_MODEL_FILE); its exit code.
    `pass_fds`: descriptors it inherits (a lock it must hold while it runs, even should we
    die)."""
    return subprocess.run(
        [*command_program(), *args],
        env={**os.environ, **(env or {})},
        check=False,
        pass_fds=pass_fds,
    ).returncode
