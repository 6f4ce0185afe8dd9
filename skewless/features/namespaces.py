"""Namespaces: each set of feature definitions in a Feast project of its own, so that a
changed definition can be applied, materialized, trained on and gated beside the one being
served, and switched to in one step (`skewless apply --candidate`, `skewless switch`).

A Feast project is its own name space everywhere Feast keeps state: its objects in the
registry, its tables in the SQLite online store (`<project>_<view>`), its keys in Redis (the
project is part of each key). A candidate is named after its definitions' fingerprint
(`<project>_<fingerprint>`), so that two candidates never share keys. The offline tables are
not namespaced: a candidate may change definitions, not the tables under them.

Which project each command uses is kept in `<state_dir>/namespaces.json`: `live` (what
commands use by default; absent: the project the yaml names), `candidate` (what
`SKEWLESS_NAMESPACE=candidate` selects) and `rollback` (the live one before the last switch).
The service follows its champion instead: each version records the project it was trained on,
and the service reads features from that project while it serves that version.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from skewless.errors import BadInput
from skewless.settings import Settings

FILE = "namespaces.json"


@dataclass(frozen=True)
class Namespaces:
    live: str | None = None
    candidate: str | None = None
    rollback: str | None = None

    def switched(self, yaml_project: str) -> Namespaces:
        """The candidate live, the live one kept for rollback."""
        if self.candidate is None:
            raise BadInput("no candidate namespace: `skewless apply --candidate` first")
        live = self.live or yaml_project
        if self.candidate == live:  # the same definitions again (a redeploy): keep the old one
            return Namespaces(live, None, self.rollback)
        return Namespaces(self.candidate, None, live)

    def rolled_back(self, yaml_project: str) -> Namespaces:
        if self.rollback is None:
            raise BadInput("no namespace to roll back to: no switch on record")
        return Namespaces(self.rollback, None, self.live or yaml_project)


def load(state_dir: Path) -> Namespaces:
    path = state_dir / FILE
    if not path.is_file():
        return Namespaces()
    try:
        return Namespaces(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise BadInput(f"{path}: not a namespaces file ({exc})") from None


def save(state_dir: Path, namespaces: Namespaces) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(namespaces), indent=2))
    tmp.replace(path)


def with_candidate(state_dir: Path, project: str) -> Namespaces:
    namespaces = replace(load(state_dir), candidate=project)
    save(state_dir, namespaces)
    return namespaces


def candidate_name(yaml_project: str, fingerprint: str) -> str:
    return f"{yaml_project}_{fingerprint[:8]}"


def project_for(settings: Settings, yaml_project: str) -> str:
    """The Feast project the settings select: the live one, or the candidate."""
    namespaces = load(settings.state_dir)
    if settings.namespace == "candidate":
        if namespaces.candidate is None:
            raise BadInput(
                "SKEWLESS_NAMESPACE=candidate: no candidate namespace; "
                "`skewless apply --candidate` first"
            )
        return namespaces.candidate
    return namespaces.live or yaml_project
