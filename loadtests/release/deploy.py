"""A release deployed in one environment: the pipeline it is, run on that environment's data.

Each step is the environment's own `skewless` command in a process of its own (a crash stays
there; forked from one that imported the libraries once, `skewless.warm_commands`),
with the environment's settings (the roof set them): apply the release's definitions to a
candidate namespace, materialize it, train there, gate the version it trained, then switch
namespace and model in one step. An environment without a champion yet gets its first from
the same steps in its live namespace, promoted once its gate passed. Nothing goes live
unless the gate passed, not even an environment's first model; every step is
recorded in the ledger against the release, and the version is tagged with the release in
the environment's MLflow registry (the lineage there)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from monitoring.ct.lock import lock_holder, pipeline_lock
from skewless.command_support import run_command
from skewless.errors import BadInput
from skewless.features import namespaces
from skewless.features.store import yaml_project
from skewless.ledger import Ledger, Release, Run
from skewless.models.configuration import ModelConfig
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.settings import Settings
from skewless.warm_commands import WarmCommands

# What the steps import, once for the whole run (skewless.warm_commands): 2-5 s of each step.
STEP_IMPORTS = ("feast", "mlflow", "lightgbm", "training.pipeline", "loadtests.gate")

RELEASE_TAG = "release"  # on a model version: the release whose pipeline trained it

Command = Callable[..., int]  # run_command's shape: (*args, env=...) -> exit code


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
        command: Command | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.settings, self.config, self.ledger = settings, config, ledger
        self.gate = ["--config", str(gate_config)] if gate_config else []
        self.release, self.environment = release, environment
        self.given_command, self.progress = command, progress
        self.command: Command = run_command
        self.env = {"SKEWLESS_MODEL_FILE": str(config.source)} if config.source else {}

    def run(self, why: str = "") -> Run:
        self.release.require_passed()
        with pipeline_lock(self.settings) as held:  # one pipeline at a time per environment
            if held is None:
                raise BadInput(
                    f"another pipeline runs in {self.environment} (a deploy or the CT "
                    f"controller: {lock_holder(self.settings)}); try again when it is done"
                )
            if self.given_command is not None:
                self.command = self.given_command
                return self._run(why)
            with WarmCommands(STEP_IMPORTS) as warm:  # each step's process without its start
                self.command = warm.run
                return self._run(why)

    def _run(self, why: str) -> Run:
        run_id = self.ledger.start_run(self.release.id, self.environment)
        self.progress(f"release {self.release.id} -> {self.environment} (ledger run {run_id})")
        try:
            outcome, version, namespace, detail = self._deploy(run_id, first=not self._champion())
            if version is not None:
                ModelRegistry.of(self.settings).tag_version(
                    self.config.name, version, {RELEASE_TAG: self.release.id}
                )
        except BaseException as exc:
            self.ledger.finish_run(run_id, "failed", detail=f"interrupted: {exc!r}"[:500])
            raise
        detail = f"{detail}; why: {why}" if why else detail
        self.ledger.finish_run(run_id, outcome, version=version, namespace=namespace, detail=detail)
        self.progress(f"release {self.release.id} in {self.environment}: {outcome} ({detail})")
        return next(r for r in self.ledger.runs(self.release.id) if r.id == run_id)

    def _champion(self) -> str | None:
        if not ModelRegistry.exists(self.settings):
            return None
        found = ModelRegistry.of(self.settings).by_alias(self.config.name, CHAMPION)
        return None if found is None else str(found.version)

    def _versions(self) -> set[str]:
        if not ModelRegistry.exists(self.settings):
            return set()
        return {str(v.version) for v in ModelRegistry.of(self.settings).versions(self.config.name)}

    def _step(self, run_id: int, name: str, *args: str, candidate: bool = False) -> int:
        """Run one step; its exit code (0 done, 1 a check said no, 2 bad input)."""
        env = {
            **self.env,
            "SKEWLESS_NAMESPACE": "candidate" if candidate else "live",
            # Even an environment's first model waits for its gate; and the steps inherit
            # the environment selected here rather than select it again.
            "SKEWLESS_FIRST_CHAMPION": "gated",
            "SKEWLESS_ENV": "",
        }
        self.progress(f"[{self.environment}] skewless {' '.join(args)}")
        started = time.perf_counter()
        code = self.command(*args, env=env)
        seconds = time.perf_counter() - started
        self.ledger.step(run_id, name, code == 0, f"exit {code} in {seconds:.1f} s")
        return code

    def _deploy(self, run_id: int, *, first: bool) -> tuple[str, str | None, str | None, str]:
        """The release's definitions in a candidate namespace (an environment without a
        champion: its live one), materialized; a model trained there; its gate; then the
        switch (the first champion: its promotion). Nothing goes live unless the gate passed."""
        candidate = not first
        if self._step(run_id, "apply", "apply", *(() if first else ("--candidate",))) != 0:
            return "failed", None, None, "apply failed"
        current = namespaces.load(self.settings.state_dir)
        namespace = (current.live or yaml_project(self.settings)) if first else current.candidate
        if self._step(run_id, "materialize", "materialize", candidate=candidate) != 0:
            return "failed", None, namespace, "materialize failed"
        before = self._versions()
        if self._step(run_id, "train", "train", candidate=candidate) != 0:
            return "failed", None, namespace, "train failed"
        trained = ModelRegistry.of(self.settings).by_alias(self.config.name, CHALLENGER)
        if trained is None or str(trained.version) in before:
            return "failed", None, namespace, "not blessed: this run registered no challenger"
        version = str(trained.version)
        if trained.record.namespace != namespace:
            return "failed", version, namespace, f"version {version} was trained elsewhere"
        gate = ("gate", "--candidate", version, *self.gate)
        gated = self._step(run_id, "gate", *gate, candidate=candidate)
        if gated == 1:  # the gate ran and said no
            return "gate_failed", version, namespace, f"version {version} failed its gate"
        if gated != 0:
            return "failed", version, namespace, f"the gate could not run (exit {gated})"
        why = f"release {self.release.id}"
        if first:
            if self._step(run_id, "promote", "promote", version, "--why", why) != 0:
                return "failed", version, namespace, "promote failed"
            return "first", version, namespace, f"version {version} is the first champion"
        if self._step(run_id, "switch", "switch", "--version", version, "--why", why) != 0:
            return "failed", version, namespace, "switch failed"
        return "switched", version, namespace, f"version {version} and {namespace} are live"
