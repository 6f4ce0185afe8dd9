"""The monitoring command of the `skewless` CLI: `monitor`. Imports are local so that
`skewless --help` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skewless.command_support import ConfigOption, console, model_config, parse_time
from skewless.settings import get_settings

from .config import WindowSize


def monitor_command(
    since: Annotated[
        str | None, typer.Option(help="First prediction time (ISO; default: the log's first).")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="The monitoring time T (ISO): predictions made and labels known by then "
            "(default: the service's clock, a replayed data set's as_of or now)."
        ),
    ] = None,
    window: Annotated[
        WindowSize | None, typer.Option(help="Window of the over-time figures (default: config).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Folder of report.html, monitor.json, history.parquet "
            "(default: <state_dir>/monitoring)."
        ),
    ] = None,
    labels_optional: Annotated[
        bool,
        typer.Option(help="Report drift even when no prediction has a label yet (else exit 2)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Drift, skew and performance of what was served, against each served version's own
    training reference, with the labels known by the monitoring time. Writes a JSON result,
    an HTML report and a history row set; exits 1 when an alert condition holds."""
    from .config import load_monitoring_config
    from .run import Period, clock, monitor

    settings = get_settings()
    cfg = model_config(config, settings)
    monitoring = load_monitoring_config(cfg)
    if window is not None:
        monitoring = monitoring.model_copy(update={"window": window})
    period = Period(
        since=parse_time(since, "--since") if since else None,
        until=parse_time(until, "--until") if until else clock(settings, cfg),
    )
    if period.since is not None and period.since >= period.until:
        from skewless.errors import BadInput

        raise BadInput(f"--since {period.since} is not before the monitoring time {period.until}")
    folder = output or settings.state_dir / "monitoring"
    outcome = monitor(settings, cfg, monitoring, period, folder, labels_optional=labels_optional)
    result = outcome.result
    for v in result.versions:
        perf = v.performance.overall
        auc = "n/a" if perf.roc_auc is None else f"{perf.roc_auc:.3f}"
        test_auc = v.reference.test_metrics.get("roc_auc") or float("nan")
        console.print(
            f"version {v.version}: {v.rows:,} predictions, "
            f"{v.labels.labelled:,} labelled ({v.labels.coverage:.0%}); "
            f"ROC AUC {auc} (test window {test_auc:.3f}); drifted: "
            f"{', '.join(v.drift.drifted) or 'none'} "
            f"({v.drift.drifted_importance:.0%} of importance)"
        )
    console.print(
        f"monitored {result.predictions:,} predictions in {outcome.seconds:.1f} s -> "
        f"{outcome.files['report']}"
    )
    if outcome.alerts:
        for a in outcome.alerts:
            console.print(f"[red]alert[/red] v{a.version} {a.condition}: {a.message}")
        raise typer.Exit(1)
    console.print("no alert condition holds")


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor_command)
