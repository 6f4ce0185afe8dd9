"""`skewless ct`: the continuous-training controller's commands (tick, run, status, trigger).
Imports are local so that `skewless --help` stays fast."""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from skewless.command_support import ConfigOption, console, model_config, parse_time
from skewless.settings import get_settings

if TYPE_CHECKING:
    from .decisions import Decision

app = typer.Typer(
    help="The continuous-training controller: triggers -> retrain -> gate -> canary -> promote.",
    no_args_is_help=True,
)


def _context(config: Any) -> tuple[Any, Any, Any]:
    from .config import load_ct_config

    settings = get_settings()
    cfg = model_config(config, settings)
    return settings, cfg, load_ct_config(cfg)


def _print(decision: Decision) -> None:
    console.print(f"{decision.at}: [bold]{decision.action}[/bold]: {decision.reason}")
    for v in decision.verdicts:
        mark = "[red]fired[/red]" if v.fired else "-"
        console.print(f"  {v.trigger:<12} {mark} {v.reason}")
    if decision.outcome is not None:
        console.print(f"  result: {decision.outcome.result}")


@app.command("tick")
def tick_command(
    now: Annotated[
        str | None, typer.Option(help="Evaluate as of this moment (ISO; default: the clock).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """One evaluation of every trigger, and the action it calls for; recorded. Cron-able."""
    from ..run import clock
    from .controller import tick

    settings, cfg, ct = _context(config)
    moment = parse_time(now, "--now") if now else clock(settings, cfg)
    _print(tick(settings, cfg, ct, moment))


@app.command("run")
def run_command_(
    ticks: Annotated[int | None, typer.Option(min=1, help="Stop after this many ticks.")] = None,
    config: ConfigOption = None,
) -> None:
    """Tick every `ct.tick_seconds` (wall clock) until stopped. SIGTERM stops it between
    ticks, never in the middle of one; Ctrl-C at a terminal also reaches a running pipeline
    (its process group), which then stops as it would alone."""
    from ..run import clock
    from .controller import tick

    settings, cfg, ct = _context(config)
    if settings.serve_clock == "replay":
        from skewless.errors import BadInput

        raise BadInput(
            "ct run follows the wall clock, and the settings replay a data set "
            f"(serve_clock=replay: every tick would be at {cfg.as_of}); set "
            "SKEWLESS_SERVE_CLOCK=wall, or step a replay with `skewless ct tick --now ISO`"
        )
    stopping: list[int] = []

    def stop(signum: int, _: object) -> None:
        stopping.append(signum)
        console.print("stopping after the current tick")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done = 0
    while not stopping:
        _print(tick(settings, cfg, ct, clock(settings, cfg)))
        done += 1
        if ticks is not None and done >= ticks:
            break
        deadline = time.monotonic() + ct.tick_seconds
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(1.0, deadline - time.monotonic()))
    console.print(f"controller stopped after {done} tick(s)")


@app.command("status")
def status_command(
    last: Annotated[int, typer.Option(min=1, help="How many decisions.")] = 10,
    config: ConfigOption = None,
) -> None:
    """The last decisions and why, newest last; and who holds the pipeline lock."""
    from .decisions import decisions
    from .lock import lock_holder

    settings, _, _ = _context(config)
    for d in decisions(settings)[-last:]:
        fired = ", ".join(d.fired) or "none"
        result = "" if d.outcome is None else d.outcome.result
        console.print(f"{d.at}  {d.action:<8} fired: {fired}  {d.reason}  {result}")
    holder = lock_holder(settings)  # read, never taken: a tick starting now is not refused
    console.print(
        f"pipeline lock: held by {holder} (pid, since)" if holder else "pipeline lock: free"
    )


@app.command("trigger")
def trigger_command(
    why: Annotated[str, typer.Option(help="Why a retrain is asked for (recorded).")],
    config: ConfigOption = None,
) -> None:
    """Ask for a retrain: the next tick acts on it, whatever the cooldown."""
    from .requests import request_retrain

    settings, _, _ = _context(config)
    path = request_retrain(settings, why)
    console.print(f"retrain requested ({path.name}); the next `skewless ct tick` acts on it")


@app.command("backtest")
def backtest_command(
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="static, monthly, weekly, new-data, performance, drift, combined "
            "(repeat; default: all)."
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="First day replayed (ISO; default: the end of the base model's data)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Last day replayed, included (ISO; default: the entities' last day)."),
    ] = None,
    base_version: Annotated[
        str | None, typer.Option(help="The model every policy starts from (default: champion).")
    ] = None,
    output: Annotated[
        str | None, typer.Option(help="Folder of the results (default: <state_dir>/backtest).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Replay a past period day by day once per retraining policy, with the controller's own
    triggers and `skewless train --as-of`; a table and a plot of ROC AUC per month, retrains
    and their cost per policy."""
    from datetime import timedelta
    from pathlib import Path

    from ..config import load_monitoring_config
    from .backtest import Backtest
    from .backtest_policies import POLICIES
    from .backtest_report import markdown, plot

    settings, cfg, ct = _context(config)
    folder = Path(output) if output else settings.state_dir / "backtest"
    backtest = Backtest(
        settings,
        cfg,
        load_monitoring_config(cfg),
        ct,
        parse_time(start, "--start") if start else None,
        parse_time(end, "--end") + timedelta(days=1) if end else None,
        folder,
        base_version=base_version,
        progress=console.print,
    )
    result = backtest.run(list(policy or POLICIES))
    table = markdown(result)
    (folder / "backtest.md").write_text(table + "\n")
    plot(result, folder / "backtest.svg")
    console.print(table)
    console.print(f"{result['seconds']:.0f} s; {folder / 'backtest.md'}, {folder / 'backtest.svg'}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ct")
