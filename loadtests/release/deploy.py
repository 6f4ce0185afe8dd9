"""A release deployed in one environment: the pipeline it is, run on that environment's data.

Each step is the environment's own `skewless` command in a subprocess (a crash stays there),
with the environment's settings (the roof set them): apply the release's definitions to a
candidate namespace, materialize it, train there, gate the version it trained, then switch
namespace and model in one step. An environment without a champion yet gets its first from
the same steps in its live namespace. Nothing switches unless the gate passed; every step is
recorded in the ledger against the release, and the version is tagged with the release in
the environment's MLflow registry (the lineage there)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skewless.command_support import run_command
from skewless.errors import BadInput
from skewless.features import namespaces
from skewless.features.store import yaml_project
from skewless.ledger import Ledger, Release, Run
from skewless.models.configuration import ModelConfig
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.settings import Settings

RELEASE_TAG = "release"  # on a model version: the release whose pipeline trained it

Command = Callable[..., int]  # run_command's shape: (*args, env=...) -> exit code


@dataclass(frozen=True)
class Environments:
    """What deploy and promote need of the environments file (the roof reads it)."""

    order: list[str]  # in the order a release goes through them
    by_hand: set[str]  # reached only by `release promote`
    runs_before_promotion: int

    def before(self, environment: str) -> str | None:
        at = self.order.index(environment)
        return self.order[at - 1] if at > 0 else None


class Deploy:
    def __init__(
        self,
        settings: Settings,
        config: ModelConfig,
        ledger: Ledger,
        release: Release,
        environment: str,
        *,
        gate_config: Path | None = None,
        command: Command = run_command,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.settings, self.config, self.ledger = settings, config, ledger
        self.gate = ["--config", str(gate_config)] if gate_config else []
        self.release, self.environment = release, environment
        self.command, self.progress = command, progress
        self.env = {"SKEWLESS_MODEL_FILE": str(config.source)} if config.source else {}

    def run(self, why: str = "") -> Run:
        if not self.release.passed:
            failed = [c.name for c in self.release.checks if not c.passed] or ["never built"]
            raise BadInput(
                f"release {self.release.id} did not pass its checks ({', '.join(failed)}): "
                "`skewless release build` again once they pass"
            )
        run_id = self.ledger.start_run(self.release.id, self.environment)
        self.progress(f"release {self.release.id} -> {self.environment} (ledger run {run_id})")
        try:
            if self._champion() is None:
                outcome, version, namespace, detail = self._first(run_id)
            else:
                outcome, version, namespace, detail = self._through_candidate(run_id)
        except BaseException as exc:
            self.ledger.finish_run(run_id, "failed", detail=f"interrupted: {exc!r}"[:500])
            raise
        if version is not None:
            ModelRegistry.of(self.settings).tag_version(
                self.config.name, version, {RELEASE_TAG: self.release.id}
            )
        detail = f"{detail}; why: {why}" if why else detail
        self.ledger.finish_run(run_id, outcome, version=version, namespace=namespace, detail=detail)
        self.progress(f"release {self.release.id} in {self.environment}: {outcome} ({detail})")
        return next(r for r in self.ledger.runs(self.release.id) if r.id == run_id)

    def _champion(self) -> str | None:
        if not ModelRegistry.exists(self.settings):
            return None
        found = ModelRegistry.of(self.settings).by_alias(self.config.name, CHAMPION)
        return None if found is None else str(found.version)

    def _step(self, run_id: int, name: str, *args: str, candidate: bool = False) -> bool:
        env = {**self.env, "SKEWLESS_NAMESPACE": "candidate" if candidate else "live"}
        self.progress(f"[{self.environment}] skewless {' '.join(args)}")
        code = self.command(*args, env=env)
        self.ledger.step(run_id, name, code == 0, f"exit {code}")
        return code == 0

    def _first(self, run_id: int) -> tuple[str, str | None, str | None, str]:
        """No champion yet: the environment's live namespace gets the release's definitions
        and its first champion from the same pipeline."""
        for name, args in (("apply", ("apply",)), ("materialize", ("materialize",))):
            if not self._step(run_id, name, *args):
                return "failed", None, None, f"{name} failed"
        if not self._step(run_id, "train", "train"):
            return "failed", None, None, "train failed"
        champion = self._champion()
        live = namespaces.load(self.settings.state_dir).live or yaml_project(self.settings)
        if champion is None:
            return "failed", None, live, "the first version was not blessed: no champion"
        return "first", champion, live, f"version {champion} is the environment's first champion"

    def _through_candidate(self, run_id: int) -> tuple[str, str | None, str | None, str]:
        if not self._step(run_id, "apply", "apply", "--candidate"):
            return "failed", None, None, "apply --candidate failed"
        candidate = namespaces.load(self.settings.state_dir).candidate
        if not self._step(run_id, "materialize", "materialize", candidate=True):
            return "failed", None, candidate, "materialize failed"
        if not self._step(run_id, "train", "train", candidate=True):
            return "failed", None, candidate, "train failed"
        trained = ModelRegistry.of(self.settings).by_alias(self.config.name, CHALLENGER)
        if trained is None or trained.record.namespace != candidate:
            return "failed", None, candidate, "not blessed: no challenger in the candidate"
        version = str(trained.version)
        gated = self._step(
            run_id, "gate", "gate", "--candidate", version, *self.gate, candidate=True
        )
        if not gated:
            return "gate_failed", version, candidate, f"version {version} failed its gate"
        why = f"release {self.release.id}"
        if not self._step(run_id, "switch", "switch", "--version", version, "--why", why):
            return "failed", version, candidate, "switch failed"
        return "switched", version, candidate, f"version {version} and {candidate} are live"


def promotion_refusal(
    ledger: Ledger, release: Release, target: str, environments: Environments
) -> str | None:
    """Why `release` may not be promoted to `target`, or None when it may: it needs at least
    `runs_before_promotion` successful runs in the environment before it."""
    before = environments.before(target)
    if before is None:
        return f"{target} is the first environment: `skewless release deploy` reaches it"
    done = [r for r in ledger.runs(release.id, before) if r.successful]
    needed = environments.runs_before_promotion
    if len(done) < needed:
        return (
            f"release {release.id} has {len(done)} successful run(s) in {before}; promotion to "
            f"{target} needs {needed}"
        )
    return None
