"""The continuous-training controller: evaluate the triggers, and when one fires (and the
cooldown allows), retrain as of now and send the new version through the release path.

One evaluation is a `tick`: idempotent, cron-able, and recorded whatever it decides, with
its evidence, in `<state_dir>/ct/decisions.jsonl` (what `skewless ct status` reads) and as a
run of the MLflow experiment `<model>-ct`. Acting goes through the commands in subprocesses
(`skewless train --as-of`, `skewless deploy`): monitoring imports neither training nor the
release path, and a crashed pipeline cannot take the controller down with it. Any step that
fails leaves the champion serving, and the record says which step and why.

One pipeline at a time: a tick holds an exclusive `flock` on `<state_dir>/ct/pipeline.lock`
while it evaluates and acts. The kernel drops the lock when its holder dies, so a killed
controller never leaves it held; a second controller meanwhile records `locked` and acts not.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np

from skewless import feature_store as fs
from skewless.aliases import CHAMPION
from skewless.commands import run_command
from skewless.config import ModelConfig
from skewless.errors import BadInput, SkewlessError
from skewless.outcomes import LABEL, known_times, outcome_source
from skewless.quality import metrics
from skewless.registry import GATE_REPORT, STORE_ERRORS, ModelRegistry, operator
from skewless.settings import Settings

from .analysis import TIME, VersionAnalysis
from .config import load_monitoring_config
from .ct_config import CTConfig
from .run import Period, monitor
from .triggers import Evidence, Verdict, evaluate, ready_at

Runner = Callable[..., int]  # run_command's shape: (*args, env=...) -> exit status
# Reading a step's report back: the registry, the file, its JSON.
REPORT_ERRORS: tuple[type[Exception], ...] = (*STORE_ERRORS, ValueError)


@dataclass
class Decision:
    at: str  # the moment evaluated ("now": the clock, or --now)
    evaluated_at: str  # wall clock
    action: str  # none | cooldown | locked | retrain
    reason: str
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ct_dir(settings: Settings) -> Path:
    folder = settings.state_dir / "ct"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def pipeline_lock(settings: Settings) -> Iterator[int | None]:
    """The lock's descriptor while this process holds it (children given it keep holding it
    while they run: a pipeline outlives a killed controller and still keeps others out); None
    at once when another holds it."""
    path = ct_dir(settings) / "pipeline.lock"
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {datetime.now(UTC).isoformat()}\n")
        handle.flush()
        try:
            yield handle.fileno()
        finally:
            handle.seek(0)
            handle.truncate()  # no holder named once it is free
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def lock_holder(settings: Settings) -> str:
    """Who holds the pipeline lock ("pid since"), read without taking it; "" when free."""
    path = ct_dir(settings) / "pipeline.lock"
    text = path.read_text().strip() if path.exists() else ""
    if not text:
        return ""
    try:
        os.kill(int(text.split()[0]), 0)
    except (ValueError, ProcessLookupError):
        return ""  # its holder died: the kernel dropped the lock with it
    except PermissionError:
        pass  # alive, another user's
    return text


# --- records ---------------------------------------------------------------------------------


def decisions(settings: Settings) -> list[dict[str, Any]]:
    path = ct_dir(settings) / "decisions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record(settings: Settings, config: ModelConfig, decision: Decision) -> None:
    line = json.dumps(decision.as_dict(), default=str)
    with (ct_dir(settings) / "decisions.jsonl").open("a") as out:
        out.write(line + "\n")  # one write of one line: a reader never sees half a record
    registry = ModelRegistry.of(settings)
    client = registry.client
    experiment = registry.experiment_id(f"{config.name}-ct")
    run = registry.call("recording a CT decision", lambda: client.create_run(experiment))
    run_id = run.info.run_id
    tags = {"action": decision.action, "reason": decision.reason[:4000], "at": decision.at,
            "fired": ",".join(v["trigger"] for v in decision.verdicts if v["fired"])}  # fmt: skip
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for v in decision.verdicts:
        for name, value in v["figures"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                client.log_metric(run_id, f"{v['trigger']}.{name}", float(value))
    client.log_dict(run_id, decision.as_dict(), "decision.json")
    client.set_terminated(run_id)


def request_retrain(settings: Settings, why: str) -> Path:
    """An on-demand trigger, acted on (and removed) by the next tick."""
    folder = ct_dir(settings) / "requests"
    folder.mkdir(exist_ok=True)
    path = folder / f"{time.time_ns()}-{uuid.uuid4().hex[:6]}.json"
    tmp = path.with_suffix(".tmp")  # not *.json: a tick never reads it half written
    tmp.write_text(json.dumps({"why": why, "by": operator(), "at": datetime.now(UTC).isoformat()}))
    tmp.replace(path)
    return path


def _requests(settings: Settings) -> list[Path]:
    return sorted((ct_dir(settings) / "requests").glob("*.json"))


# --- evidence --------------------------------------------------------------------------------


def _data_until(tags: dict[str, str]) -> datetime | None:
    """The moment the version's labels were taken at (`data_until`, registered with it); for
    versions registered before that tag, the end of its windows."""
    import ast

    try:
        if tags.get("data_until"):
            return datetime.fromisoformat(tags["data_until"])
        windows = ast.literal_eval(tags.get("windows", ""))
        return datetime.fromisoformat(str(windows["test"]["end"]).replace("Z", "+00:00"))
    except (ValueError, SyntaxError, KeyError, TypeError):
        return None


def gather(
    settings: Settings, config: ModelConfig, ct: CTConfig, now: datetime
) -> tuple[Evidence, dict[str, Any]]:
    """The evidence of one tick, and notes on what could not be measured."""
    notes: dict[str, Any] = {}
    evaluated = [datetime.fromisoformat(d["at"]) for d in decisions(settings)
                 if d["action"] != "locked"]  # fmt: skip
    last_tick = max(evaluated) if evaluated else None
    paths = _requests(settings)
    requests = [json.loads(p.read_text())["why"] for p in paths]
    notes["requests"] = [str(p) for p in paths]
    registry = ModelRegistry.of(settings)
    champion = registry.by_alias(config.name, CHAMPION)
    version, test_auc, labelled = None, None, None
    if champion is not None:
        version = str(champion.version)
        auc_tag = champion.tags.get("test_roc_auc")
        test_auc = float(auc_tag) if auc_tag else None
        trained_until = _data_until(champion.tags)
        if trained_until is not None:
            source = outcome_source(fs.open_store(settings), config)
            labelled = known_times(source).between(trained_until, now)
    recent_auc, recent_labelled, drifted_importance, drifted = None, 0, None, []
    try:
        mcfg = load_monitoring_config(config)
        period = Period(now - timedelta(days=ct.lookback_days), now)
        result = monitor(settings, config, mcfg, period, settings.state_dir / "monitoring",
                         labels_optional=True)  # fmt: skip
        mine = [v for v in result.result["versions"] if v["version"] == version]
        if mine:
            rows = result.rows[result.rows["model_version"].astype(str) == version]
            against = ct.drift.against if ct.drift else "training"
            if against == "training":  # monitoring's own figure
                drifted_importance = mine[0]["drift"]["drifted_importance"]
                drifted = mine[0]["drift"]["drifted"]
            else:
                reference = result.references[str(version)].against(against)
                analysis = VersionAnalysis(reference, mcfg)
                drifted_importance, drifted = analysis.drift_summary(rows)
            notes["drift_against"] = against
            labelled_rows = rows[rows[LABEL].notna()].sort_values(TIME)
            last = ct.performance.last_labelled if ct.performance else len(labelled_rows)
            tail = labelled_rows.tail(last)
            recent_labelled = len(tail)
            if recent_labelled:
                recent_auc = metrics(
                    tail[LABEL].to_numpy(dtype="float64"),
                    tail["probability"].to_numpy(dtype="float64"),
                )["roc_auc"]
        notes["monitoring"] = str(result.files["report"])
    except BadInput as exc:  # no log yet, no predictions in the lookback: no evidence
        notes["monitoring"] = f"no evidence: {exc}"
    evidence = Evidence(
        now=now, last_tick=last_tick, requests=requests, champion=version,
        champion_test_auc=test_auc, labelled_since_training=labelled,
        recent_auc=None if recent_auc is None or np.isnan(recent_auc) else recent_auc,
        recent_labelled=recent_labelled, drifted_importance=drifted_importance, drifted=drifted,
    )  # fmt: skip
    return evidence, notes


# --- acting ----------------------------------------------------------------------------------


def retrain(
    settings: Settings,
    config: ModelConfig,
    ct: CTConfig,
    now: datetime,
    runner: Runner,
    lock_fd: int | None = None,
) -> dict[str, Any]:
    """`skewless train --as-of now`, then (blessed, and `deploy` on) `skewless deploy`."""
    registry = ModelRegistry.of(settings)
    before = {str(v.version) for v in registry.versions(config.name)}
    # These settings, not only the environment's: the pipeline and the release path act on
    # the same repository, stores and state as this controller.
    env = {**settings.as_env(), "SKEWLESS_CONFIG": str(Path(str(config.source)).resolve())}
    outcome: dict[str, Any] = {"champion_before": _champion(registry, config)}
    held = {"pass_fds": (lock_fd,)} if lock_fd is not None else {}
    status = runner("train", "--as-of", now.isoformat(), env=env, **held)
    outcome["train_exit"] = status
    new = sorted(
        (v for v in registry.versions(config.name) if str(v.version) not in before),
        key=lambda v: int(v.version),
    )
    if status != 0 or not new:
        outcome["result"] = f"the pipeline stopped (exit {status}): the champion stays"
    else:
        version = new[-1]
        outcome["version"] = str(version.version)
        if version.tags.get("blessed") != "true":
            outcome["result"] = f"version {version.version} is not blessed: the champion stays"
        elif not ct.deploy:
            outcome["result"] = f"version {version.version} is the challenger (deploy is off)"
            outcome["adopted"] = True  # blessed: it waits for a person's deploy
        else:
            args = _deploy_args(ct, Path(str(config.source)).resolve().parent)
            status = runner("deploy", "--version", str(version.version), *args, env=env, **held)
            outcome["deploy_exit"] = status
            if status == 0:
                outcome["result"] = f"version {version.version} promoted through gate and canary"
            else:
                why = release_failure(registry, config.name, str(version.version))
                outcome["release"] = why
                outcome["result"] = (
                    f"deploy of version {version.version} stopped (exit {status}): {why}; "
                    "the champion stays"
                )
    outcome["champion_after"] = _champion(registry, config)
    # Adopted: it serves now, or (deploy off) it waits as a blessed challenger.
    outcome["adopted"] = outcome.get("adopted", False) or (
        outcome["champion_after"] != outcome["champion_before"]
    )
    return outcome


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
    gate_passed = False
    for step, tag in (("gate", GATE_REPORT), ("canary", None)):
        report = _step_report(registry, found, step, tag)
        if report is None:
            continue
        failed = [f"{c.get('name')}: {c.get('detail')}" for c in report.get("checks", [])
                  if not c.get("passed")]  # fmt: skip
        if not failed and report.get("stopped"):  # ended early, before any check failed
            failed = [f"stopped: {report['stopped']}"]
        if failed:
            return f"the {step} failed ({'; '.join(failed)})"
        gate_passed = gate_passed or step == "gate"
    if gate_passed:
        return "the gate passed; the canary recorded no verdict (its log says why)"
    return "no gate or canary verdict was recorded on the version"


def _step_report(
    registry: ModelRegistry, version: Any, step: str, tag: str | None
) -> dict[str, Any] | None:
    """A release step's report as recorded in the version's run: the gate's by its version
    tag, the canary's as the newest `deployment/canary-*` artifact."""
    client = registry.client
    run_id = version.run_id
    try:
        if tag is not None:
            artifact = version.tags.get(tag)
        else:
            listed = client.list_artifacts(run_id, "deployment")
            folders = sorted(
                f.path for f in listed if f.is_dir and f.path.rsplit("/", 1)[-1].startswith(step)
            )
            artifact = f"{folders[-1]}/{step}.json" if folders else None
        if not artifact:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, artifact, tmp)
            report: dict[str, Any] = json.loads(Path(local).read_text())
            return report
    except REPORT_ERRORS:
        return None


def _champion(registry: ModelRegistry, config: ModelConfig) -> str | None:
    found = registry.by_alias(config.name, CHAMPION)
    return None if found is None else str(found.version)


def _adopted(outcome: dict[str, Any]) -> bool:
    if "adopted" in outcome:
        return bool(outcome["adopted"])
    # Recorded before `adopted` was: the champion moved, or it did not.
    return bool(outcome.get("champion_after") != outcome.get("champion_before"))


def _cooling(settings: Settings, ct: CTConfig, now: datetime) -> str | None:
    retrains = [(datetime.fromisoformat(d["at"]), _adopted(d["outcome"]))
                for d in decisions(settings) if d["action"] == "retrain"]  # fmt: skip
    ready = ready_at(retrains, ct.cooldown_hours)
    if ready is None or now >= ready:
        return None
    last, adopted = retrains[-1]
    refused = "" if adopted else " (longer after refused retrains)"
    return (
        f"the last retrain was at {last.isoformat()}; cooldown until {ready.isoformat()}{refused}"
    )


def tick(
    settings: Settings,
    config: ModelConfig,
    ct: CTConfig,
    now: datetime,
    *,
    runner: Runner = run_command,
) -> Decision:
    started = time.perf_counter()
    wall = datetime.now(UTC).isoformat()
    with pipeline_lock(settings) as held:
        if held is None:
            holder = lock_holder(settings)
            why = f"another controller holds the pipeline lock (pid, since: {holder})"
            decision = Decision(now.isoformat(), wall, "locked", why)
        else:
            decision = _decide(settings, config, ct, now, runner, wall, held)
        decision.seconds = round(time.perf_counter() - started, 3)
        _record(settings, config, decision)
    return decision


def _decide(
    settings: Settings, config: ModelConfig, ct: CTConfig, now: datetime, runner: Runner,
    wall: str, lock_fd: int,
) -> Decision:  # fmt: skip
    evidence, notes = gather(settings, config, ct, now)
    verdicts: list[Verdict] = evaluate(evidence, ct)
    records = [v.as_dict() for v in verdicts]
    fired = [v for v in verdicts if v.fired]
    if not fired:
        return Decision(now.isoformat(), wall, "none", "no trigger fired", records, notes)
    why = "; ".join(f"{v.trigger}: {v.reason}" for v in fired)
    asked = any(v.trigger == "on_demand" for v in fired)
    cooling = _cooling(settings, ct, now)
    if cooling and not asked:  # a person's explicit request is not held back by the cooldown
        return Decision(
            now.isoformat(), wall, "cooldown", f"{why} (held: {cooling})", records, notes
        )
    outcome = {**notes, **retrain(settings, config, ct, now, runner, lock_fd)}
    for path in notes["requests"]:  # exactly those acted on; a newer one waits for the next
        Path(path).unlink(missing_ok=True)
    return Decision(now.isoformat(), wall, "retrain", why, records, outcome)
