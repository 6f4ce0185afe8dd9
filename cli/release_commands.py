"""`skewless release`: build a release of the pipeline (its content hash and CI checks, in the
ledger), deploy it to an environment, promote it by hand to the next one, and show its lineage.
The environment a command acts in is resolved here, at the roof (cli/environments.py); the
release path below it reads `Settings` like every room."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import environments
from cli.definition_commands import built_code
from cli.environments import EnvironmentsFile
from loadtests.release.order import Environments, promotion_refusal
from skewless.command_support import ConfigOption, console, model_config
from skewless.errors import BadInput, CheckFailed
from skewless.hashing import git_commit
from skewless.ledger import Ledger, Release, Run
from skewless.settings import Settings, get_settings, home

if TYPE_CHECKING:  # imported where used: `release status` starts without Feast or LightGBM
    from loadtests.release.manifest import Manifest

app = typer.Typer(help="Pipeline releases through environments (docs/releases.md).")

Env = Annotated[str, typer.Option("--env", help="The environment (environments.yaml).")]
Why = Annotated[str, typer.Option("--why", help="Why (recorded in the ledger).")]


def _say(line: str) -> None:
    # Plain text: these lines hold brackets of their own ("[staging] skewless apply", a run's
    # steps), which rich would take for markup and drop.
    console.print(line, markup=False, highlight=False)


def _file() -> EnvironmentsFile | None:
    path = environments.environments_file()
    return environments.load_environments(path) if path.is_file() else None


def _ledger(settings: Settings) -> Ledger:
    """The environments file's ledger whenever there is a file (with or without `--env`),
    else the local environment's."""
    return Ledger(environments.ledger_file() or settings.ledger_file)


def _manifest(settings: Settings, config: ConfigOption) -> Manifest:
    from loadtests.release.manifest import release_manifest

    return release_manifest(
        settings,
        model_config(config, settings),
        built_code=built_code(settings),
        lock_file=home() / "requirements.lock",
    )


def _order() -> Environments:
    loaded = _file()
    if loaded is None:
        return Environments(["local"], set(), 3)
    return Environments(
        list(loaded.environments),
        {name for name, e in loaded.environments.items() if e.by_hand},
        loaded.release.runs_before_promotion,
    )


@app.command("build")
def build_command(config: ConfigOption = None) -> None:
    """The release this checkout is (the hash of its definitions, table builders, model
    configuration, code and lock), after the CI checks, each recorded in the ledger with its
    evidence. Exits 1 when a check fails."""
    from loadtests.release.checks import CheckConfig, run_checks
    from training.config import pipeline_config

    settings = get_settings()
    loaded = _file()
    section = loaded.release if loaded is not None else None
    manifest = _manifest(settings, config)
    _say(f"release {manifest.id}: definitions {manifest.content['definitions_fingerprint']}")
    checks = CheckConfig(
        feature_tests=section.feature_tests if section else None,
        workdir=environments.environments_file().resolve().parent,
        sample_days=section.sample_days if section else 14,
        max_rounds=section.max_rounds if section else 300,
    )
    model = model_config(config, settings)
    results = run_checks(settings, pipeline_config(model), checks, progress=_say)
    ledger = _ledger(settings)
    ledger.record_build(
        manifest.id, manifest.content, results, git_commit(settings.repo_path, mark_changes=True)
    )
    failed = [c.name for c in results if not c.passed]
    if failed:
        raise CheckFailed(f"release {manifest.id} failed {', '.join(failed)} (in {ledger.path})")
    _say(f"release {manifest.id} passed {len(results)} checks (in {ledger.path})")


@app.command("id")
def id_command(config: ConfigOption = None) -> None:
    """Print the id of the release this checkout is (nothing built, nothing recorded): what
    a CI job passes to `release deploy` and `release promote`."""
    print(_manifest(get_settings(), config).id)


def _deploy(name: str, release_id: str, config: ConfigOption, why: str = "") -> Run:
    environments.select(name)
    settings = get_settings()
    ledger = _ledger(settings)
    release = ledger.release(release_id)
    release.require_passed()  # before anything is computed or touched
    here = _manifest(settings, config)
    if here.id != release.id:
        raise BadInput(
            f"this checkout is release {here.id}, not {release.id}: a release is code, so check "
            "out the commit it was built from (`skewless release status` lists it)"
        )
    gate = environments.gate_file(name) if _file() is not None else None
    model = model_config(config, settings)
    from loadtests.release.deploy import Deploy

    run = Deploy(settings, model, ledger, release, name, gate_config=gate, progress=_say)
    return run.run(why)


def _check_outcome(run: Run) -> None:
    if not run.successful:
        raise CheckFailed(
            f"release {run.release} in {run.environment}: {run.outcome}: {run.detail}"
        )


@app.command("deploy")
def deploy_command(
    release_id: Annotated[str, typer.Argument(metavar="RELEASE", help="Its id (or a prefix).")],
    env: Env,
    config: ConfigOption = None,
) -> None:
    """Deploy RELEASE to an environment that takes releases automatically: apply to a
    candidate namespace, materialize, train, gate, switch; each step recorded in the ledger."""
    if env in _order().by_hand:
        raise BadInput(f"{env} is reached by hand: `skewless release promote RELEASE --to {env}`")
    _check_outcome(_deploy(env, release_id, config))


@app.command("promote")
def promote_command(
    release_id: Annotated[str, typer.Argument(metavar="RELEASE", help="Its id (or a prefix).")],
    to: Annotated[str, typer.Option("--to", help="The environment to promote it to.")],
    why: Why,
    config: ConfigOption = None,
) -> None:
    """Promote RELEASE by hand to an environment: refused unless it has enough successful runs
    in the environment before; then the same deploy runs there, on its own data, and nothing
    switches unless its own model passes its own gate."""
    order = _order()
    if to not in order.order:
        raise BadInput(f"--to {to}: not an environment (environments: {', '.join(order.order)})")
    environments.select(to)
    release = _ledger(get_settings()).release(release_id)
    refusal = promotion_refusal(_ledger(get_settings()), release, to, order)
    if refusal:
        raise CheckFailed(f"refused: {refusal}")
    _check_outcome(_deploy(to, release.id, config, why))


@app.command("status")
def status_command(
    release_id: Annotated[str | None, typer.Argument(metavar="[RELEASE]")] = None,
) -> None:
    """Lineage: each release, its checks, and the runs, versions and namespaces it has in
    each environment (the versions are tagged `release` in each environment's MLflow)."""
    settings = get_settings()
    ledger = _ledger(settings)
    releases = [ledger.release(release_id)] if release_id else ledger.releases()
    if not releases:
        _say(f"no release in {ledger.path}: `skewless release build`")
    order = _order().order
    for release in releases:
        _print_release(ledger, release, order)


def _print_release(ledger: Ledger, release: Release, order: list[str]) -> None:
    content = release.manifest
    state = "passed" if release.passed else "FAILED"
    _say(
        f"release {release.id}  built {release.built_at} from {release.source or 'unknown'}  "
        f"checks {state}  model {content['model']}  definitions "
        f"{content['definitions_fingerprint']}"
    )
    for check in release.checks:
        _say(f"  {'pass' if check.passed else 'FAIL'}  {check.name}: {check.evidence}")
    runs = ledger.runs(release.id)
    for name in [*order, *sorted({r.environment for r in runs} - set(order))]:
        for run in (r for r in runs if r.environment == name):
            version = f"version {run.version}" if run.version else "no version"
            steps = " ".join(f"{s['step']}{'' if s['passed'] else '!'}" for s in run.steps)
            _say(
                f"  {name:<8} run {run.id}  {run.started_at}  {run.outcome:<11} {version}  "
                f"namespace {run.namespace or '-'}  [{steps}]  {run.detail}"
            )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="release")
