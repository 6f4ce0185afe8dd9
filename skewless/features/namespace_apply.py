"""Feast's `apply` and `plan` under a namespace's own project, run as a child process like
Feast's command line (`python -m skewless.features.namespace_apply apply|plan REPO YAML`),
without Feast's import-time type instrumentation unless `--checked` follows.

Feast refuses a repository whose `Project` object names another project than its
configuration ("Project object name should match ..."), and `feast init`'s template declares
one. A namespace (skewless/features/namespaces.py) is a Feast project of its own, so here the
repository's Project object is taken under the namespace's name, its description kept; the
rest is Feast's own apply (`apply_total_with_repo_instance`) and plan (`FeatureStore.plan`).
The live namespace under the yaml's own project goes through Feast's command line unchanged
(skewless/features/store.py `run_feast`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def run(verb: str, repo_path: Path, config_file: Path) -> None:
    from feast import FeatureStore
    from feast.project import Project
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total_with_repo_instance, cli_check_repo, parse_repo

    cli_check_repo(repo_path, config_file)  # as Feast's command: the repo's modules importable
    config = load_repo_config(repo_path, config_file)
    os.chdir(repo_path)  # as Feast's command does: relative source paths are the repo's
    sys.dont_write_bytecode = True
    repo = parse_repo(repo_path)
    declared = repo.projects[0].description if repo.projects else ""
    project = Project(name=config.project, description=declared or config.project_description or "")
    repo = repo._replace(projects=[project])  # RepoContents is a NamedTuple
    store = FeatureStore(repo_path=str(repo_path), config=config)
    if verb == "apply":
        print(f"Applying changes for project {config.project}")
        apply_total_with_repo_instance(store, config.project, store.registry, repo, False)
    elif verb == "plan":
        registry_diff, infra_diff, _ = store.plan(repo)
        print(registry_diff.to_string())  # type: ignore[no-untyped-call]
        print(infra_diff.to_string())  # type: ignore[no-untyped-call]
    else:
        raise SystemExit(f"unknown verb {verb!r}: apply or plan")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[3:] == ["--checked"]:
        arguments = arguments[:3]  # with Feast's import-time type checks (a failure's rerun)
    else:
        from skewless.startup import skip_feast_type_checks

        skip_feast_type_checks()  # before Feast is imported (skewless/features/feast_cli.py)
    if len(arguments) != 3:
        raise SystemExit(
            "usage: python -m skewless.features.namespace_apply apply|plan REPO YAML [--checked]"
        )
    run(arguments[0], Path(arguments[1]).resolve(), Path(arguments[2]).resolve())
