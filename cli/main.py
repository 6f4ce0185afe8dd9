"""The `skewless` app: every room's commands, and one mapping of the project's failures to
exit codes and one-line messages (`SkewlessError.exit_code`: 2 for bad input, 1 for a failed
check), never a traceback."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

import loadtests.commands
import monitoring.commands
import monitoring.ct.commands
import serving.commands
import streaming.commands
import training.commands
from cli import definition_commands, environments, feature_commands, release_commands
from skewless.command_support import ConfigOption, console
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
        except (ClickException, typer.Exit, typer.Abort):  # click's own: it prints them
            raise
        except Exception as exc:
            # A failure no room translated (a library's error on a broken repository, a file
            # where a folder should be): still one line and exit 1. The trace is there for who
            # asks for it; a user gets what failed and where to look.
            if os.environ.get("SKEWLESS_DEBUG"):
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            errors.print(
                f"[red]failed:[/red] {type(exc).__name__}: {escape(first)} "
                "(SKEWLESS_DEBUG=1 shows where)",
                highlight=False,
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Commands,
    help="skewless: one Feast feature contract for point-in-time training and online serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _environment(
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            envvar=environments.ENV_VARIABLE,
            help="Run in this environment of environments.yaml (its state, registries, "
            "stores and address); default: the one local environment.",
        ),
    ] = None,
) -> None:
    """Resolved once, here, before any command reads its settings (cli/environments.py);
    an empty SKEWLESS_ENV (a deploy's steps: they inherit the selection made) selects none."""
    if env:
        environments.select(env)


feature_commands.register(app)
release_commands.register(app)
definition_commands.register(app)
training.commands.register(app)
serving.commands.register(app)
monitoring.commands.register(app)
monitoring.ct.commands.register(app)
streaming.commands.register(app)


@app.command("quickstart")
def quickstart_command(config: ConfigOption = None) -> None:
    """The main job on the embedded default: build, apply, materialize, read online, extract,
    train (and register a champion), serve a few real predictions over REST and gRPC, replay
    a month of requests into the prediction log and monitor it (an HTML report)."""
    from serving.demo import serve_examples

    feature_commands.build_tables_command(force=False)
    definition_commands.apply_command(allow_definition_skew=False, config=config)
    feature_commands.materialize_command(end=None, incremental=False, config=config)
    feature_commands.online_features_command(entity_id=None, config=config)
    feature_commands.extract_command(start=None, end=None, config=config)
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
