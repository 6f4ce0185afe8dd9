"""The one strict YAML loader: every configuration file of the project is read here.

Models are pydantic with `extra="forbid"`, so a typo in a key fails loudly; the failure is a
`ConfigError` (bad input, exit 2) naming the file and the key, never pydantic's raw dump.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from skewless.errors import BadInput


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(BadInput):
    """A configuration file that is missing, not YAML, or not what its model allows."""


M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    """The parsed document; a missing file or bad YAML is a `ConfigError`."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({exc})".replace("\n", " ")) from None


def validate_as(model: type[M], raw: Any, source: str, section: str = "") -> M:
    """`raw` as `model`; an error names `source` and every key at fault (under `section`,
    for a part of a file), on one line."""
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe(exc, section)}") from None


def load_strict(path: Path, model: type[M]) -> M:
    return validate_as(model, read_yaml(path), str(path))


def describe(exc: ValidationError, section: str = "") -> str:
    """pydantic's errors as `key.path: message; ...` on one line."""
    parts = []
    for error in exc.errors():
        key = ".".join(str(p) for p in (*([section] if section else []), *error["loc"]))
        key = key or "(top level)"
        message = "unknown key (a typo?)" if error["type"] == "extra_forbidden" else error["msg"]
        parts.append(f"{key}: {message}")
    return "; ".join(parts)
