"""Acting on a retrain decision, through the commands in subprocesses (`skewless train
--as-of`, `skewless deploy`): monitoring imports neither training nor the release path, and a
crashed pipeline cannot take the controller down with it. Any step that fails leaves the
champion serving, and the outcome says which step and why (read back from the verdicts the
release path recorded on the version).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from skewless.errors import SkewlessError
from skewless.models.configuration import ModelConfig
from skewless.records import GateVerdict, StepVerdict
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.registry.versions import GATE_REPORT, Version
from skewless.settings import Settings

from .config import CTConfig
from .decisions import Outcome

Runner = Callable[..., int]  # run_command's shape: (*args, env=...) -> exit status
CANARY_FOLDER = "deployment"  # where the release path keeps a step's report in the run


def retrain(
    settings: Settings,
    config: ModelConfig,
    ct: CTConfig,
    now: datetime,
    runner: Runner,
    lock_fd: int | None = None,
) -> Outcome:
    """`skewless train --as-of now`, then (blessed, and `deploy` on) `skewless deploy`."""
    registry = ModelRegistry.of(settings)
    before = {v.version for v in registry.versions(config.name)}
    # These settings, not only the environment's: the pipeline and the release path act on
    # the same repository, stores and state as this controller.
    env = {**settings.as_env(), "SKEWLESS_MODEL_FILE": str(Path(str(config.source)).resolve())}
    champion_before = _champion(registry, config)
    held = {"pass_fds": (lock_fd,)} if lock_fd is not None else {}
    train_exit = runner("train", "--as-of", now.isoformat(), env=env, **held)
    new = [v for v in registry.versions(config.name) if v.version not in before]
    version = new[-1] if new and train_exit == 0 else None
    deploy_exit, release, waiting = None, None, False
    if train_exit != 0 or version is None:
        result = f"the pipeline stopped (exit {train_exit}): the champion stays"
    elif not version.record.blessed:
        result = f"version {version.version} is not blessed: the champion stays"
    elif not ct.deploy:
        result = f"version {version.version} is the challenger (deploy is off)"
        waiting = True  # blessed: it waits for a person's deploy
    else:
        args = _deploy_args(ct, Path(str(config.source)).resolve().parent)
        deploy_exit = runner("deploy", "--version", version.version, *args, env=env, **held)
        if deploy_exit == 0:
            result = f"version {version.version} promoted through gate and canary"
        else:
            release = release_failure(registry, config.name, version.version)
            result = (
                f"deploy of version {version.version} stopped (exit {deploy_exit}): {release}; "
                "the champion stays"
            )
    champion_after = _champion(registry, config)
    return Outcome(
        result=result,
        champion_before=champion_before,
        champion_after=champion_after,
        adopted=waiting or champion_after != champion_before,
        train_exit=train_exit,
        version=None if version is None else version.version,
        deploy_exit=deploy_exit,
        release=release,
    )


def _deploy_args(ct: CTConfig, config_folder: Path) -> list[str]:
    args = ["--url", ct.deploy_url] if ct.deploy_url else []
    files = (("--gate-config", ct.gate_config), ("--canary-config", ct.canary_config))
    for option, given in files:
        if given:
            args += [option, str(config_folder / given)]  # an absolute path stays as it is
    return args


def release_failure(registry: ModelRegistry, name: str, version: str) -> str:
    """Why the release path stopped, from what it recorded on the version: the gate's failed
    checks (or why it stopped early), else the canary's; else that nothing was recorded (the
    deploy command refused before its gate: its exit status and log say why)."""
    try:
        found = registry.version(name, version)
    except SkewlessError as exc:  # the registry itself failed: say so, the tick goes on
        return f"its records could not be read ({exc})"
    gate = _verdict(registry, found, "gate")
    canary = _verdict(registry, found, "canary")
    for step, verdict in (("gate", gate), ("canary", canary)):
        failed = [] if verdict is None else verdict.failures()
        if failed:
            return f"the {step} failed ({'; '.join(failed)})"
    if gate is not None:
        return "the gate passed; the canary recorded no verdict (its log says why)"
    return "no gate or canary verdict was recorded on the version"


def _verdict(registry: ModelRegistry, version: Version, step: str) -> StepVerdict | None:
    """A release step's verdict as recorded in the version's run: the gate's report by its
    version tag, the canary's as the newest `deployment/canary-*` report; None when there is
    none or it cannot be read."""
    try:
        if step == "gate":
            artifact = version.tags.get(GATE_REPORT)
        else:
            folders = [
                f
                for f in registry.artifact_folders(version.run_id, CANARY_FOLDER)
                if f.rsplit("/", 1)[-1].startswith(step)
            ]
            artifact = f"{folders[-1]}/{step}.json" if folders else None
        if not artifact:
            return None
        raw = json.loads(registry.read_artifact(version.run_id, artifact))
    except (SkewlessError, ValueError):
        return None
    return GateVerdict.from_report(raw) if step == "gate" else StepVerdict.from_report(raw)


def _champion(registry: ModelRegistry, config: ModelConfig) -> str | None:
    found = registry.by_alias(config.name, CHAMPION)
    return None if found is None else found.version
