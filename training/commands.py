"""The training commands of the `skewless` CLI: `train`. A thin shell over the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skewless.commands import console, run_command
from skewless.settings import get_settings

from .config import load_pipeline_config
from .pipeline import Pipeline
from .report import print_summary
from .validate_data import DataValidationError


def train_command(
    config: Annotated[
        Path | None, typer.Option("--config", help="Model configuration YAML (default: settings).")
    ] = None,
    promote: Annotated[
        bool,
        typer.Option(
            help="Then gate the new version (`skewless gate`) and, if it passes, promote it "
            "(`skewless promote`). Without a passed gate the champion does not move."
        ),
    ] = False,
    gate_config: Annotated[
        Path | None, typer.Option(help="Gate YAML for --promote (default: the gate's).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Resume this pipeline run id.")
    ] = None,
) -> None:
    """Run the continuous-training pipeline: extract, validate, split, train, evaluate,
    bless, register (MLflow). Exits 1 when data validation stops the run."""
    settings = get_settings()
    cfg = load_pipeline_config(config or settings.config)
    try:
        result = Pipeline(settings, cfg, progress=console.print).run(resume)
    except DataValidationError as exc:
        console.print(f"[red]{exc}[/red]\nthe registry was not changed")
        raise typer.Exit(1) from None
    print_summary(console, result)
    if promote and result.version is not None and "champion" not in result.aliases:
        if not result.blessed:
            console.print(f"version {result.version} is not blessed: the champion stays")
            raise typer.Exit(1)
        _gate_then_promote(result.version, gate_config)


def _gate_then_promote(version: str, gate_config: Path | None) -> None:
    """Through the deployment room's own commands, in subprocesses (training does not
    import the release path)."""
    console.print(f"--promote: gating version {version} before it may become champion")
    config = ["--config", str(gate_config)] if gate_config else []
    gate = ["gate", "--candidate", version, *config]
    if run_command(*gate) != 0:
        console.print(f"[red]version {version} did not pass the gate: the champion stays[/red]")
        raise typer.Exit(1)
    if run_command("promote", version, "--why", "skewless train --promote (gate passed)") != 0:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
