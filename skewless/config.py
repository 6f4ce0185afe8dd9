"""Strict YAML model configuration: a typo in a key fails loudly (extra="forbid")."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, model_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(StrictModel):
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start >= self.end:
            raise ValueError(f"window start {self.start} is not before its end {self.end}")
        return self


class ModelConfig(StrictModel):
    """What a model is made of; nothing else in the code names a column of a data set."""

    name: str
    feature_service: str
    entity_source: str  # a Feast FileSource: entity keys, request fields, timestamps, label
    entity_id: str  # the column that identifies one entity row (one prediction request)
    label: str
    as_of: AwareDatetime  # "now" for the embedded replay: materialize the online store up to it
    extract: Window  # the point-in-time training extract shown by the quickstart


def load_model_config(path: Path) -> ModelConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"model configuration not found: {path}") from None
    return ModelConfig.model_validate(raw)
