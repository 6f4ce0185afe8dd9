"""The serving commands of the `skewless` CLI: `serve` and `score`. Imports are local so that
`skewless --help` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skewless.command_support import ConfigOption, console, model_config, model_fetcher, parse_time
from skewless.errors import BadInput
from skewless.settings import get_settings


def serve_command(
    host: Annotated[str | None, typer.Option(help="Listen address (default: settings).")] = None,
    rest_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="REST port (0: any free).")
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="gRPC port (0: any free).")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Server processes.")] = None,
) -> None:
    """Serve the champion model over REST (FastAPI) and gRPC, reading features online."""
    from .server import serve
    from .settings import get_serving_settings

    settings = get_serving_settings()
    given = {"serve_host": host, "rest_port": rest_port, "grpc_port": grpc_port, "workers": workers}
    settings = settings.model_copy(update={k: v for k, v in given.items() if v is not None})
    raise typer.Exit(serve(settings))


def score_command(
    input_path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Entity rows: .parquet or .csv.")
    ],
    output: Annotated[Path, typer.Option(help="Output folder of prediction parts.")],
    version: Annotated[
        str | None, typer.Option(help="Model version (default: the champion).")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = 50_000,
) -> None:
    """Batch scoring: point-in-time features offline, the same scorer as the online service.

    The input needs `event_timestamp` (the moment features are taken as of), the feature
    service's join keys and request fields; other columns are carried through. Rerunning
    with the same arguments resumes after the last chunk written."""
    from skewless.features import store as feature_store
    from skewless.features.service import service_schema

    from .batch import score_file

    settings = get_settings()
    store = feature_store.open_store(settings)
    schema = service_schema(store, model_config(None, settings).feature_service)
    loader = model_fetcher(settings, schema)
    try:
        model = loader.load(version)
        result = score_file(
            store,
            schema,
            model,
            input_path,
            output,
            chunk_rows=chunk_rows,
            progress=console.print,
            settings=settings,
        )
    finally:
        loader.close()
    console.print(
        f"scored {result.rows:,} rows with {model.name} v{model.version} in "
        f"{result.seconds:.1f} s ({result.rows / result.seconds:,.0f} rows/s); "
        f"{result.skipped} of {result.chunks} chunks were already written -> {result.output}"
    )


def replay_command(
    since: Annotated[
        str | None, typer.Option(help="First request time (ISO; default: --until minus 30 days).")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="End of the period, exclusive (ISO; default: the model config's as_of)."),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Model version (default: the champion).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Replay a past period's real requests into the prediction log, each served as of its
    own time (features read offline, point in time; the same scorer): traffic history for
    `skewless monitor` on a replayed data set."""
    import datetime as dt

    from skewless.features import store as feature_store
    from skewless.features.service import service_schema

    from .replay import replay

    settings = get_settings()
    cfg = model_config(config, settings)
    end = parse_time(until, "--until") if until else cfg.as_of
    start = parse_time(since, "--since") if since else end - dt.timedelta(days=30)
    if start >= end:
        raise BadInput(f"--since {start} is not before --until {end}")
    store = feature_store.open_store(settings)
    schema = service_schema(store, cfg.feature_service)
    loader = model_fetcher(settings, schema)
    try:
        model = loader.load(version)
        result = replay(
            store,
            schema,
            model,
            cfg,
            start,
            end,
            settings.prediction_log_dir,
            progress=console.print,
        )
    finally:
        loader.close()
    console.print(
        f"{result.rows:,} predictions of {model.name} v{model.version} logged in "
        f"{result.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("score")(score_command)
    app.command("replay")(replay_command)
