"""Does every command answer a bad argument with exit 2 and one clear line, never a
traceback? And a failed check with exit 1? Against a real Feast repository and an empty
MLflow registry of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from skewless.settings import Settings, get_settings
from tests.support.repos import copy_feature_repo


@pytest.fixture
def env(real_repo: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SKEWLESS_REPO_PATH", str(real_repo.repo_path))
    monkeypatch.setenv("SKEWLESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SKEWLESS_ONLINE_STORE", "sqlite")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _typo_config(folder: Path) -> Path:
    default = Path(__file__).resolve().parents[2] / "skewless" / "configs" / "delay_model.yaml"
    path = folder / "typo.yaml"
    path.write_text(default.read_text().replace("feature_service:", "feature_servce:", 1))
    return path


BAD_ARGUMENTS: dict[str, tuple[list[str], str]] = {
    "build-tables": (["build-tables", "--forse"], "No such option"),
    "apply": (["apply", "extra"], "unexpected extra argument"),
    "materialize": (["materialize", "--end", "yesterday-ish"], "--end: 'yesterday-ish' is not"),
    "online-features": (["online-features", "--id", "no-such-flight"], "--id: no entity row"),
    "extract": (["extract", "--start", "2013-08-01", "--end", "2013-07-01"], "is not before"),
    "train (missing file)": (["train", "--config", "/no/such.yaml"], "configuration not found"),
    "train (typo)": (["train", "--config", "{typo}"], "feature_servce: unknown key"),
    "train (unknown run)": (["train", "--resume", "nosuchrun"], "--resume: no pipeline run"),
    "serve": (["serve", "--rest-port", "70000"], "Invalid value"),
    "score": (["score", "/no/such.parquet", "--output", "out"], "does not exist"),
    "check-skew": (["check-skew", "--log", "/no/such/log"], "no prediction log at /no/such/log"),
    "quickstart": (["quickstart", "--config"], "requires an argument"),
    "gate": (["gate", "--candidate", "99"], "has no version 99"),
    "promote": (["promote", "99", "--why", "try"], "has no version 99"),
    "rollback": (["rollback", "--why", "try"], "no champion to roll back"),
    "canary": (["canary", "--share", "5"], "Invalid value"),
    "deploy": (["deploy", "--version", "99"], "has no version 99"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_a_bad_argument_exits_2_with_one_clear_line(case: str, env: Path) -> None:
    args, expected = BAD_ARGUMENTS[case]
    args = [a.replace("{typo}", str(_typo_config(env))) for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert expected in result.output, result.output
    assert "Traceback" not in result.output


def test_as_a_program_the_message_is_one_line_and_no_traceback(env: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "train", "--config", str(_typo_config(env))],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "typo.yaml: feature_service: Field required" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr


def _broken_repository(folder: Path) -> Path:
    """A repository whose yaml names an offline store that is not one: every command that
    opens it fails inside Feast, with Feast's own exception."""
    repo = copy_feature_repo(folder / "broken_repo")
    yaml_file = repo / "feature_store.yaml"
    yaml_file.write_text(
        yaml_file.read_text().replace(
            "skewless.offline.asof_store.AsofDuckDBOfflineStore", "skewless.nowhere.Store"
        )
    )
    return repo


# Each of these printed a traceback before (issue 24): a failure inside a library that no room
# translated. Now: one line naming the failure, exit 1 (or 2 for bad input).
FAILURES: dict[str, list[str]] = {
    "apply": ["apply"],
    "materialize": ["materialize", "--end", "2013-12-01"],
    "score": ["score", "{rows}", "--output", "{out}"],
    "replay": ["replay"],
    "monitor": ["monitor", "--output", "{out}"],
    "ct": ["ct", "tick"],
}


@pytest.mark.parametrize("command", sorted(FAILURES))
def test_a_failure_inside_a_command_is_one_line_and_no_traceback(command: str, env: Path) -> None:
    repo = _broken_repository(env)
    rows = env / "rows.parquet"
    rows.write_bytes(b"PAR1 not a parquet file")
    args = [
        a.replace("{rows}", str(rows)).replace("{out}", str(env / "out")) for a in FAILURES[command]
    ]
    # The prediction log is a file where a folder should be: monitor reads it.
    log = env / "prediction_log"
    log.write_text("not a folder")
    variables = {"SKEWLESS_REPO_PATH": str(repo), "SKEWLESS_PREDICTION_LOG": str(log)}
    if command == "ct":  # the controller's state folder is a file: its lock cannot be taken
        variables["SKEWLESS_STATE_DIR"] = str(log)
    done = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode in (1, 2), output
    assert "Traceback" not in output, output
    messages = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(messages) == 1, messages
    assert messages[0].startswith(("error:", "failed:")), messages
