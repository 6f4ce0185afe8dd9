"""The deployment commands of the `skewless` CLI: gate, promote, rollback, canary, deploy.
Thin shells over typed functions; imports are local so that `skewless --help` stays fast."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from skewless.command_support import ConfigOption, console, model_config, parse_time
from skewless.errors import BadInput, CheckFailed
from skewless.settings import get_settings

By = Annotated[str | None, typer.Option("--by", help="Who acts (default: user@host).")]
Why = Annotated[str, typer.Option("--why", help="Why, for the record.")]
GateConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Gate YAML (default: loadtests/configs/gate.yaml).")
]


@contextmanager
def _refusals() -> Iterator[None]:
    """A service that never came up becomes a failed check (the roof's one mapping: exit 1,
    one line); an interrupt exits 130. Everything started is stopped either way."""
    try:
        yield
    except (TimeoutError, RuntimeError, OSError) as exc:  # a service that never came up, ...
        raise CheckFailed(f"{type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]: everything started is stopped")
        raise typer.Exit(130) from None


def _sigterm_interrupts() -> None:
    """SIGTERM ends a gate like Ctrl-C does: through the clean-up."""

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _who(by: str | None) -> str:
    from skewless.registry.versions import operator

    return by or operator()


def gate_command(
    candidate: Annotated[str | None, typer.Option(help="Model version to gate.")] = None,
    model_alias: Annotated[
        str | None, typer.Option(help="Gate the version with this alias (e.g. challenger).")
    ] = None,
    config: GateConfigOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: .skewless/gates/).")
    ] = None,
) -> None:
    """Serve a candidate with the real service, check its contract against batch scoring,
    load it with locust, check skew on its own requests; write report.json and report.html.
    Exits 1 when any check fails."""
    from loadtests.config import load_gate_config
    from loadtests.deploy import resolve_version, run_gate
    from skewless.settings import get_settings

    if (candidate is None) == (model_alias is None):
        raise typer.BadParameter("give exactly one of --candidate and --model-alias")
    settings = get_settings()
    with _refusals():
        gate_config = load_gate_config(config)
        version = resolve_version(settings, candidate, model_alias)
    _sigterm_interrupts()
    try:
        outcome = run_gate(settings, version, gate_config, out_dir=out, progress=console.print)
    except KeyboardInterrupt:
        console.print("[red]gate interrupted[/red]: everything it started is stopped")
        raise typer.Exit(130) from None
    _print_gate(outcome)
    if not outcome.report.passed:
        raise typer.Exit(1)


def _print_gate(outcome: Any) -> None:
    report = outcome.report
    verdict = "[green]PASSED[/green]" if report.passed else "[red]FAILED[/red]"
    console.print(f"gate {verdict}: {report.model_name} version {report.version}")
    if report.stopped:
        console.print(f"stopped: {report.stopped}")
    if report.server:
        q = report.server["latency_ms"]
        console.print(
            f"server p50/p95/p99 {q['p50']:.2f}/{q['p95']:.2f}/{q['p99']:.2f} ms over "
            f"{report.server['requests']:g} requests"
        )
        for protocol, stats in report.client.items():
            p = stats["percentiles_ms"]
            console.print(
                f"locust {protocol} p50/p95/p99 {p.get('50%')}/{p.get('95%')}/{p.get('99%')} ms, "
                f"{stats['rate']:.1f} requests/s, {stats['failures']} failures"
            )
    console.print(f"report: {outcome.html_path} (and {outcome.json_path.name})")


def promote_command(
    version: Annotated[str, typer.Argument(help="The model version to make champion.")],
    why: Why = "promoted by hand",
    by: By = None,
) -> None:
    """Make VERSION the champion: only if it is blessed and holds a passed gate report for
    its exact artifact hash. A running service swaps it in at its next poll."""
    from loadtests.promotion import promote
    from skewless.settings import get_settings

    with _refusals():
        move = promote(get_settings(), version, by=_who(by), why=why)
    console.print(f"champion: version {move.previous} -> {move.version} ({move.by}, {move.at})")


def rollback_command(why: Why, by: By = None) -> None:
    """Move champion back to the champion before it, recorded with who, when and why."""
    from loadtests.promotion import rollback
    from skewless.settings import get_settings

    with _refusals():
        move = rollback(get_settings(), by=_who(by), why=why)
    console.print(f"champion rolled back: version {move.previous} -> {move.version}")


def switch_command(
    version: Annotated[
        str | None, typer.Option(help="The version trained there (default: the challenger).")
    ] = None,
    back: Annotated[
        bool, typer.Option("--rollback", help="Back to the namespace and champion before.")
    ] = False,
    why: Why = "switched to the candidate namespace",
    by: By = None,
) -> None:
    """Make the candidate namespace (`skewless apply --candidate`) and the model trained and
    gated there live in one step; the namespace before is kept for `switch --rollback`."""
    from loadtests.promotion import switch, switch_back
    from skewless.settings import get_settings

    settings = get_settings()
    with _refusals():
        if back:
            move, now = switch_back(settings, by=_who(by), why=why)
        else:
            move, now = switch(settings, version, by=_who(by), why=why)
    console.print(
        f"live namespace: {now.live}, champion version {move.previous} -> {move.version}; "
        f"rollback: {now.rollback}"
    )


def canary_command(
    share: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Share to the challenger.")
    ] = None,
    duration: Annotated[float | None, typer.Option(min=1.0, help="Seconds to watch.")] = None,
    url: Annotated[
        str | None,
        typer.Option(help="A running service to watch (default: start one and replay traffic)."),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Canary YAML.")] = None,
    by: By = None,
) -> None:
    """Route a sticky share of traffic to the challenger, compare it with the champion, then
    promote it or roll it back. Exits 1 when it is rolled back."""
    from loadtests.canary import run_canary
    from loadtests.config import load_canary_config
    from loadtests.deploy import gate_dir
    from skewless.settings import get_settings

    settings = get_settings()
    _sigterm_interrupts()
    with _refusals():
        canary_config = _canary_overrides(load_canary_config(config), share, duration)
        report = run_canary(
            settings,
            canary_config,
            gate_dir(settings, "canary"),
            url=url,
            by=_who(by),
            progress=console.print,
        )
    if report.action != "promoted":
        raise typer.Exit(1)


def _canary_overrides(config: Any, share: float | None, duration: float | None) -> Any:
    given = {"share": share, "seconds": duration}
    return config.model_copy(update={k: v for k, v in given.items() if v is not None})


def deploy_command(
    version: Annotated[str | None, typer.Option(help="Version (default: the challenger).")] = None,
    gate_config: Annotated[Path | None, typer.Option(help="Gate YAML.")] = None,
    canary_config: Annotated[Path | None, typer.Option(help="Canary YAML.")] = None,
    share: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Canary share.")] = None,
    duration: Annotated[float | None, typer.Option(min=1.0, help="Canary seconds.")] = None,
    url: Annotated[str | None, typer.Option(help="A running service for the canary.")] = None,
    by: By = None,
) -> None:
    """The challenger through gate, canary and promotion; every verdict in its MLflow run.
    Exits 1 when it stops before promotion."""
    from loadtests.config import load_canary_config, load_gate_config
    from loadtests.deploy import deploy
    from skewless.settings import get_settings

    settings = get_settings()
    _sigterm_interrupts()
    with _refusals():
        gates = load_gate_config(gate_config)
        canary = _canary_overrides(load_canary_config(canary_config), share, duration)
        outcome, canary_report = deploy(
            settings,
            gates,
            canary,
            version=version,
            url=url,
            by=_who(by),
            progress=console.print,
        )
    _print_gate(outcome)
    if canary_report is None or canary_report.action != "promoted":
        console.print("[red]not promoted[/red]")
        raise typer.Exit(1)
    console.print(f"[green]version {canary_report.challenger} is champion[/green]")


def live_command(
    since: Annotated[str, typer.Option("--from", help="Where the replay starts (ISO, a zone).")],
    until: Annotated[
        str | None, typer.Option(help="Where it stops (ISO; default: a day after --from).")
    ] = None,
    speed: Annotated[float, typer.Option(min=1.0, help="Replay seconds per wall second.")] = 600.0,
    tick_hours: Annotated[
        float, typer.Option(min=0.01, help="A CT tick every this many replay hours.")
    ] = 24.0,
    out: Annotated[
        Path | None, typer.Option(help="Logs and live.json (default: <state>/live/<time>).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """The level-2 loop on live data: events published as a moving clock passes them, the
    stream processor and the service running on that clock, each real request sent at its
    moment, outcomes arriving, the CT controller ticking. Needs a champion and Redis (the
    online store and the event log): docs/live-features.md."""
    import time
    from datetime import timedelta

    from .live import run_live

    settings = get_settings()
    cfg = model_config(config, settings)
    start = parse_time(since, "--from")
    stop = parse_time(until, "--until") if until else start + timedelta(days=1)
    if stop <= start:
        raise BadInput("--until: must be after --from")
    if settings.online_store != "redis":
        raise BadInput("live features need the Redis online store: set SKEWLESS_ONLINE_STORE=redis")
    folder = out or settings.state_dir / "live" / time.strftime("%Y%m%dT%H%M%S")
    _sigterm_interrupts()
    with _refusals():
        report = run_live(
            settings,
            cfg,
            start=start,
            until=stop,
            speed=speed,
            tick_every=timedelta(hours=tick_hours),
            out_dir=folder,
            say=console.print,
        )
    console.print(
        f"replayed {start:%Y-%m-%d %H:%M} .. {stop:%Y-%m-%d %H:%M} at {speed:g}x: "
        f"{report.events:,} events (after {report.history_events:,} of history), "
        f"{report.answered:,}/{report.requests:,} requests answered, {report.failed:,} failed, "
        f"{report.stale_streamed:,} with a streamed feature missing; ticks: "
        f"{'; '.join(report.ticks) or 'none'}; at worst {report.behind_seconds:.1f} s behind; "
        f"{folder / 'live.json'}"
    )
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("live")(live_command)
    app.command("gate")(gate_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
    app.command("switch")(switch_command)
    app.command("canary")(canary_command)
    app.command("deploy")(deploy_command)
