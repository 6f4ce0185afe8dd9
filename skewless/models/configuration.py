"""The model configuration: one strict YAML file per model, read by the pipeline, the
service, the gate and monitoring alike (`load_model_config`).

The top level is what every room needs (the model, its feature service, its label and
segments); each room's own settings are a section (`pipeline:`, ...) that the room validates
strictly with its own model, so the service never needs to know the training knobs and a
typo in a section still fails loudly where it is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, Field, model_validator

from skewless.strict_yaml import StrictModel, load_strict


class Window(StrictModel):
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start >= self.end:
            raise ValueError(f"window start {self.start} is not before its end {self.end}")
        return self


class Windows(StrictModel):
    """A model's training windows: train, then validation, then test, in time order."""

    train: Window
    validation: Window
    test: Window

    @model_validator(mode="after")
    def _in_time_order(self) -> Windows:
        if not (self.train.end <= self.validation.start and self.validation.end <= self.test.start):
            raise ValueError("windows must not overlap: train, then validation, then test")
        return self


class RequestExample(StrictModel):
    """A request shown in the OpenAPI schema and tried by its tests: join keys and request
    fields, as a client sends them. From configuration, so that the service starts from the
    online store and the registry alone."""

    entities: dict[str, str | int | float | bool]
    request: dict[str, str | int | float | bool]


class Outcomes(StrictModel):
    """Where a model's labels are, as they become known: a Feast feature view keyed by the
    entity id (the `request_id` a client sends), stamped with the moment each label became
    known. Monitoring joins them to served predictions; retraining as of a moment keeps only
    the labels known by then."""

    feature_view: str
    label: str  # the 0/1 column
    known_at: str  # the moment the label became known, as a feature (for the label delay)


class ModelConfig(StrictModel):
    """What a model is made of; nothing else in the code names a column of a data set."""

    name: str
    feature_service: str
    entity_source: str  # a Feast FileSource: entity keys, request fields, timestamps, label
    entity_id: str  # the column that identifies one entity row (one prediction request)
    label: str
    outcomes: Outcomes | None = None  # the labels as they become known (monitoring, CT)
    segments: list[str] = Field(default_factory=list)  # evaluated and monitored one by one
    as_of: AwareDatetime  # "now" for the embedded replay: materialize the online store up to it
    extract: Window | None = None  # the point-in-time extract the quickstart summarizes
    example: RequestExample | None = None
    # Room sections, validated by their rooms (training/config.py, monitoring/config.py).
    pipeline: dict[str, Any] = Field(default_factory=dict)
    monitoring: dict[str, Any] = Field(default_factory=dict)
    ct: dict[str, Any] = Field(default_factory=dict)  # the CT controller (monitoring/ct/config.py)
    source: Path | None = Field(default=None, exclude=True)  # the file it was read from


def load_model_config(path: Path) -> ModelConfig:
    config = load_strict(path, ModelConfig)
    return config.model_copy(update={"source": path})
