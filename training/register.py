"""Step 7 of the pipeline, register: the run's artifacts as an MLflow model version with its
lineage, `challenger` when blessed, and `champion` only for the first blessed model of a
registry that never had one (recorded as ungated; not even that one with
`SKEWLESS_FIRST_CHAMPION=gated`, as a release's deploy runs it). Every later champion goes
through the gate (`skewless gate`, `skewless promote`; `skewless train --promote` chains them).

It only reads finished artifacts, so nothing half-made is ever registered, and a run resumed
after registering finds its version instead of registering a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skewless.fingerprints import definitions_fingerprint
from skewless.hashing import git_commit, sha256_file
from skewless.models.contract import ModelContract
from skewless.quality.reference import REFERENCE_FILE
from skewless.records import VersionTags
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.registry.versions import MODEL_DIR, operator

from .artifacts import read_json, write_json
from .context import RunFolder, StepContext, StepOutput
from .model_steps import Blessed, Evaluated

REGISTERED_ARTIFACTS = (
    "model.txt",
    "contract.json",
    "schema.json",
    "evaluation.json",
    "verdict.json",
    "training.json",
    "validation.json",
    REFERENCE_FILE,  # with schema.json: the reference monitoring compares served traffic with
)


@dataclass(frozen=True)
class Registered(StepOutput):
    version: str
    aliases: list[str]

    @classmethod
    def load(cls, run: RunFolder, files: dict[str, str]) -> Registered:
        registration = read_json(run.path / "registration.json")
        return cls(files, registration["version"], registration["aliases"])


def _feast_registry_file(context: StepContext, repo_path: Path) -> Path:
    path = Path(str(context.store.config.registry.path))
    return path if path.is_absolute() else repo_path / path


def register_step(
    context: StepContext,
    evaluated: Evaluated,
    blessed: Blessed,
    repo_path: Path,
    *,
    first_is_champion: bool = True,
) -> Registered:
    registry, config = context.registry, context.config
    name = config.model_name
    version = registry.version_of_run(name, context.run_id)  # resumed after registering
    if version is None:
        for artifact in REGISTERED_ARTIFACTS:
            registry.log_artifact(context.run_id, context.path(artifact), MODEL_DIR)
        record = VersionTags(
            sha256=sha256_file(context.path("model.txt")),
            blessed=blessed.blessed,
            feature_service=config.feature_service,
            windows=config.windows,
            git_commit=git_commit(Path(__file__).parent),
            feast_registry_sha256=sha256_file(_feast_registry_file(context, repo_path)),
            test_roc_auc=evaluated.evaluation["candidate"]["overall"]["roc_auc"],
            # The moment its labels were taken at: new data is what became known after it.
            data_until=config.as_of or config.windows.test.end,
            definitions=definitions_fingerprint(
                ModelContract.load(context.path("contract.json")).definitions
            ),
            namespace=context.store.project,
        )
        version = registry.register(name, context.run_id, record)
        context.hook("register:registered")
    aliases = []
    if blessed.blessed:
        current = registry.by_alias(name, CHAMPION)
        registry.set_alias(name, CHALLENGER, version.version)
        aliases.append(CHALLENGER)
        if current is not None and str(current.version) == str(version.version):
            aliases.append(CHAMPION)  # a resumed run that had got this far already
        elif current is None and first_is_champion and not registry.champion_history(name):
            registry.move_champion(
                name,
                version.version,
                action="pipeline",
                by=operator(),
                why="the first blessed model",
            )
            aliases.append(CHAMPION)
    art = write_json(
        {"version": version.version, "aliases": aliases}, context.path("registration.json")
    )
    return Registered({"registration.json": art.sha256}, str(version.version), aliases)
