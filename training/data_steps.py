"""Steps 1-3 of the pipeline: extract, validate data, split. The dataset is extracted once
and split once (by validation, which judges each window on its own); the split step writes
the parts the later steps take in memory. The logic lives in `extract.py`,
`validate_data.py` and `split.py`."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from skewless.features.service import service_schema
from skewless.quality.reference import derive_schema

from .artifacts import read_json, write_frame, write_json
from .context import RunFolder, StepContext, StepOutput
from .split import Split, split
from .validate_data import DataValidationError, validate

DATASET = "dataset.parquet"
PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class Extracted(StepOutput):
    dataset: pd.DataFrame

    @classmethod
    def load(cls, run: RunFolder, files: dict[str, str]) -> Extracted:
        return cls(files, run.frame(DATASET))


@dataclass(frozen=True)
class Validated(StepOutput):
    parts: Split  # the dataset by window, split once

    @classmethod
    def load(cls, run: RunFolder, files: dict[str, str]) -> Validated:
        return cls(files, split(run.frame(DATASET), run.config.windows))


@dataclass(frozen=True)
class Splits(StepOutput):
    parts: Split

    @classmethod
    def load(cls, run: RunFolder, files: dict[str, str]) -> Splits:
        return cls(files, Split(*(run.frame(f"{name}.parquet") for name in PARTS)))


def extract_step(context: StepContext) -> Extracted:
    dataset = context.extract_fn(context.store, context.config)
    art = write_frame(dataset, context.path(DATASET))
    context.log_metric("rows", len(dataset))
    return Extracted({DATASET: art.sha256}, dataset)


def validate_step(context: StepContext, extracted: Extracted) -> Validated:
    """Schema skew stops the run (`DataValidationError`) before anything is trained; value
    skew is measured and logged. The reference is the champion's schema, or this run's own
    train window when there is no champion yet."""
    config = context.config
    dataset = extracted.dataset
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
    for window in PARTS:
        part = validate(getattr(parts, window), features, reference, config.validation)
        report.problems.extend(
            f"{window} window: {p}" for p in part.problems if p not in report.problems
        )
        report.warnings.extend(f"{window} window: {w}" for w in part.warnings)
    validation = write_json(
        {
            "reference": source,
            "problems": report.problems,
            "warnings": report.warnings,
            "skew": report.skew,
        },
        context.path("validation.json"),
    )
    context.registry.record_run(
        context.child_run_id,
        metrics={
            f"{stat}.{name}": value
            for name, stats in report.skew.items()
            for stat, value in stats.items()
        },
    )
    for warning in report.warnings:
        context.progress(f"  value skew warning: {warning}")
    if not report.passed:
        context.progress(
            "  schema skew, stopping before training:\n    " + "\n    ".join(report.problems)
        )
        raise DataValidationError(report)
    # This run's own reference statistics, registered with the model for monitoring.
    schema = write_json(derive_schema(parts.train, features), context.path("schema.json"))
    files = {"schema.json": schema.sha256, "validation.json": validation.sha256}
    return Validated(files, parts)


def split_step(context: StepContext, validated: Validated) -> Splits:
    files = {}
    for name in PARTS:
        frame = getattr(validated.parts, name)
        files[f"{name}.parquet"] = write_frame(frame, context.path(f"{name}.parquet")).sha256
        context.log_metric(f"{name}_rows", len(frame))
    return Splits(files, validated.parts)
