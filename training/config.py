"""The pipeline configuration: the `pipeline:` section of the model configuration file,
strict (extra="forbid"); nothing in training/ names a column of a data set, the
configuration does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import AwareDatetime, Field, PositiveInt

from skewless.models.configuration import ModelConfig, Outcomes, Window, Windows, load_model_config
from skewless.strict_yaml import ConfigError, StrictModel, validate_as


class DataValidation(StrictModel):
    # vs the reference null rate, per window; 0.2 leaves room for features whose nulls carry
    # meaning and vary with the weather (no gust reported on a calm week)
    max_null_increase: float = Field(0.20, ge=0, le=1)
    max_unknown_category_share: float = Field(0.01, ge=0, le=1)
    max_out_of_range_share: float = Field(0.01, ge=0, le=1)
    range_margin: float = Field(0.5, ge=0)  # allowed range: [min, max] widened by this x span
    # Features whose values may leave the reference's range without a broken pipeline behind
    # it: calendar features (a model trained on January-June meets August), say.
    range_exempt: list[str] = Field(default_factory=list)
    # Features whose null rate follows the world, not the pipeline: a gust is only reported on
    # windy hours, so a calm week leaves it null nearly everywhere.
    null_exempt: list[str] = Field(default_factory=list)
    psi_warn: float = Field(0.25, gt=0)
    psi_stop: float | None = None  # None: value skew only warns (seasonal drift is expected)


class Training(StrictModel):
    seed: int = 13
    search_budget: PositiveInt = 3  # trials of the bounded search, the first is the default
    max_rounds: PositiveInt = 2000
    early_stopping_rounds: PositiveInt = 100
    num_threads: PositiveInt = 2
    # After the search picks parameters and rounds on the validation window, train the final
    # model on train + validation with those rounds, so it has seen the most recent data.
    refit_on_validation: bool = True
    params: dict[str, float | int | str] = Field(default_factory=dict)
    search_space: dict[str, list[float | int]] = Field(default_factory=dict)


class Blessing(StrictModel):
    min_auc_gain_over_baseline: float = 0.01
    min_auc_gain_over_champion: float = -0.002  # a tie within noise still blesses
    # The champion is judged on the test rows after its own data; with fewer, it cannot be
    # judged fairly and the candidate is judged against the baseline alone.
    champion_min_rows: PositiveInt = 1000
    segment_min_rows: PositiveInt = 500
    segment_auc_tolerance: float = Field(0.02, ge=0)
    latency_budget_ms_p99: float = Field(5.0, gt=0)
    infra_sample_rows: PositiveInt = 200


# An expanding training window starts here: before any data set this project will hold.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class Rolling(StrictModel):
    """The windows of a retrain as of a moment (`skewless train --as-of`, the CT controller):
    test = the last `test_days` before it, validation the `validation_days` before that, train
    the `train_days` before that (`null`: everything before, an expanding window)."""

    train_days: PositiveInt | None = 150
    validation_days: PositiveInt = 30
    test_days: PositiveInt = 30


class PipelineSection(StrictModel):
    windows: Windows
    rolling: Rolling = Field(default_factory=Rolling)
    baseline_by: list[str]  # the baseline: historical label rate per these columns
    validation: DataValidation = Field(default_factory=DataValidation)
    training: Training = Field(default_factory=Training)
    blessing: Blessing = Field(default_factory=Blessing)


class PipelineConfig(PipelineSection):
    """The section together with the model keys it works on (from the top of the file)."""

    model_name: str
    feature_service: str
    entity_source: str
    entity_id: str
    label: str
    segments: list[str]
    outcomes: Outcomes | None = None
    # Retraining as of this moment: windows rolled forward to it, and only the labels known
    # by it (from `outcomes`), not the entity source's label column, which knows the future.
    as_of: AwareDatetime | None = None


def rolled_windows(rolling: Rolling, as_of: datetime) -> Windows:
    test = Window(start=as_of - timedelta(days=rolling.test_days), end=as_of)
    validation = Window(start=test.start - timedelta(days=rolling.validation_days), end=test.start)
    start = (
        EARLIEST
        if rolling.train_days is None
        else validation.start - timedelta(days=rolling.train_days)
    )
    train = Window(start=start, end=validation.start)
    return Windows(train=train, validation=validation, test=test)


def pipeline_config(model: ModelConfig, as_of: datetime | None = None) -> PipelineConfig:
    section = validate_as(PipelineSection, model.pipeline, str(model.source), "pipeline")
    values = dict(section)
    if as_of is not None:
        if model.outcomes is None:
            raise ConfigError(
                f"{model.source}: retraining as of a moment needs `outcomes:` (the labels as "
                "they become known)"
            )
        values["windows"] = rolled_windows(section.rolling, as_of)
    return PipelineConfig(
        model_name=model.name,
        feature_service=model.feature_service,
        entity_source=model.entity_source,
        entity_id=model.entity_id,
        label=model.label,
        segments=model.segments,
        outcomes=model.outcomes,
        as_of=as_of,
        **values,
    )


def load_pipeline_config(path: Path, as_of: datetime | None = None) -> PipelineConfig:
    return pipeline_config(load_model_config(path), as_of)
