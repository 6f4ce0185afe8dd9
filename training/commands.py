"""The training commands of the `skewless` CLI: `train`. A thin shell over the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skewless.command_support import console, parse_time, run_command
from skewless.settings import get_settings

from .config import load_pipeline_config


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
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Retrain as of this moment (ISO): the windows of `pipeline.rolling` end at it, "
            "and only the labels known by it (the configuration's `outcomes`) are learned from.",
        ),
    ] = None,
) -> None:
    """Run the continuous-training pipeline: extract, validate, split, train, evaluate,
    bless, register (MLflow). Exits 1 when data validation stops the run."""
    settings = get_settings()
    model_config = config or settings.model_file
    moment = parse_time(as_of, "--as-of") if as_of else None
    cfg = load_pipeline_config(model_config, moment)
    if moment is not None:
        w = cfg.windows
        console.print(
            f"as of {moment.isoformat()}: train {w.train.start:%Y-%m-%d}..{w.train.end:%Y-%m-%d}, "
            f"validation ..{w.validation.end:%Y-%m-%d}, test ..{w.test.end:%Y-%m-%d %H:%M}"
        )
    # Data validation stopping the run is a CheckFailed: the roof says so, exit 1.
    from .pipeline import Pipeline  # here: a command's start pays for what it runs
    from .report import print_summary

    result = Pipeline(settings, cfg, progress=console.print).run(resume)
    print_summary(console, result)
    if promote and result.version is not None and "champion" not in result.aliases:
        if not result.blessed:
            console.print(f"version {result.version} is not blessed: the champion stays")
            raise typer.Exit(1)
        _gate_then_promote(result.version, model_config, gate_config)


def _gate_then_promote(version: str, model_config: Path, gate_config: Path | None) -> None:
    """Through the deployment room's own commands, in subprocesses (training does not
    import the release path), for the same model configuration."""
    console.print(f"--promote: gating version {version} before it may become champion")
    env = {"SKEWLESS_MODEL_FILE": str(model_config.resolve())}
    config = ["--config", str(gate_config)] if gate_config else []
    if run_command("gate", "--candidate", version, *config, env=env) != 0:
        console.print(f"[red]version {version} did not pass the gate: the champion stays[/red]")
        raise typer.Exit(1)
    why = "skewless train --promote (gate passed)"
    if run_command("promote", version, "--why", why, env=env) != 0:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
