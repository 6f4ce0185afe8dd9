"""Steps 1-3 of the pipeline: extract, validate data, split. Each reads the run folder's
artifacts and writes its own (see `context.py`); the logic lives in `extract.py`,
`validate_data.py` and `split.py`."""

from __future__ import annotations

import pandas as pd

from skewless.features import service_schema
from skewless.hashing import sha256_file
from skewless.reference import derive_schema

from .artifacts import read_json, write_frame, write_json
from .context import StepContext, StepOutput
from .split import split
from .validate_data import DataValidationError, validate


def extract_step(context: StepContext) -> StepOutput:
    dataset = context.extract_fn(context.store, context.config)
    art = write_frame(dataset, context.path("dataset.parquet"))
    context.log_metric("rows", len(dataset))
    return StepOutput({"dataset.parquet": art.sha256})


def validate_step(context: StepContext, extracted: StepOutput) -> StepOutput:
    """Schema skew stops the run (`DataValidationError`) before anything is trained; value
    skew is measured and logged. The reference is the champion's schema, or this run's own
    train window when there is no champion yet."""
    config = context.config
    dataset = pd.read_parquet(context.path("dataset.parquet"))
    features = list(service_schema(context.store, config.feature_service).features)
    parts = split(dataset, config.windows)
    champion = context.champion()
    if champion is not None:
        reference = read_json(champion.artifacts / "schema.json")
        source = f"champion v{champion.version}"
    else:
        reference = derive_schema(parts.train, features)
        source = "derived from this run's train window (no champion yet)"
    # Each window on its own: skew confined to the newest month must not drown in the rest.
    report = validate(dataset, features, reference, config.validation)
    for window in ("train", "validation", "test"):
        part = validate(getattr(parts, window), features, reference, config.validation)
        report.problems.extend(
            f"{window} window: {p}" for p in part.problems if p not in report.problems
        )
        report.warnings.extend(f"{window} window: {w}" for w in part.warnings)
    write_json(
        {
            "reference": source,
            "problems": report.problems,
            "warnings": report.warnings,
            "skew": report.skew,
        },
        context.path("validation.json"),
    )
    for name, stats in report.skew.items():
        for stat, value in stats.items():
            context.log_metric(f"{stat}.{name}", value)
    for warning in report.warnings:
        context.progress(f"  value skew warning: {warning}")
    if not report.passed:
        context.progress(
            "  schema skew, stopping before training:\n    " + "\n    ".join(report.problems)
        )
        raise DataValidationError(report)
    # This run's own reference statistics, registered with the model for monitoring.
    schema = write_json(derive_schema(parts.train, features), context.path("schema.json"))
    return StepOutput(
        {
            "schema.json": schema.sha256,
            "validation.json": sha256_file(context.path("validation.json")),
        }
    )


def split_step(context: StepContext, validated: StepOutput) -> StepOutput:
    parts = split(pd.read_parquet(context.path("dataset.parquet")), context.config.windows)
    files = {}
    for name in ("train", "validation", "test"):
        frame = getattr(parts, name)
        files[f"{name}.parquet"] = write_frame(frame, context.path(f"{name}.parquet")).sha256
        context.log_metric(f"{name}_rows", len(frame))
    return StepOutput(files)
