"""The release ledger (a real SQLite file) and the environments file: what a release passed,
which runs count towards promotion, and a strict file whose mistakes name their key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli.environments import FILE_VARIABLE, environment_variables, ledger_file, select
from loadtests.release.order import Environments, promotion_refusal
from skewless.errors import BadInput
from skewless.ledger import Check, Ledger
from skewless.settings import get_settings
from skewless.strict_yaml import ConfigError


def test_a_release_passes_on_its_latest_build_and_runs_count_when_successful(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.record_build("abc123def456", {"model": "m"}, [Check("e2e", False, "failed")])
    assert not ledger.release("abc1").passed  # a prefix names it
    ledger.record_build("abc123def456", {"model": "m"}, [Check("e2e", True, "ok", 1.5)])
    release = ledger.release("abc123def456")
    assert release.passed and [c.evidence for c in release.checks] == ["ok"]

    order = Environments(["staging", "prod"], {"prod"}, runs_before_promotion=2)
    for outcome in ("switched", "gate_failed", "first"):
        run = ledger.start_run(release.id, "staging")
        ledger.step(run, "apply", True, "exit 0")
        ledger.finish_run(run, outcome, version="3")
        if outcome == "switched":
            refusal = promotion_refusal(ledger, release, "prod", order)
            assert refusal == (
                "release abc123def456 has 1 successful run(s) in staging; promotion to prod needs 2"
            )
    assert promotion_refusal(ledger, release, "prod", order) is None
    assert [r.outcome for r in ledger.runs(release.id, "staging")] == [
        "switched",
        "gate_failed",
        "first",
    ]
    assert ledger.runs(release.id, "staging")[0].steps == [
        {"step": "apply", "passed": True, "detail": "exit 0"}
    ]
    assert "first environment" in str(promotion_refusal(ledger, release, "staging", order))
    with pytest.raises(BadInput, match="no such release"):
        ledger.release("ffff")


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "environments.yaml"
    path.write_text(text)
    return path


def test_an_environment_is_its_settings_with_paths_from_the_files_folder(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "ledger: shared/releases.db\n"
        "environments:\n"
        "  staging: {settings: {state_dir: env/staging, rest_port: 8101, online_store: redis}}\n",
    )
    variables = environment_variables("staging", path)
    assert variables["SKEWLESS_STATE_DIR"] == str(tmp_path / "env" / "staging")
    assert variables["SKEWLESS_RELEASE_LEDGER"] == str(tmp_path / "shared" / "releases.db")
    assert (variables["SKEWLESS_REST_PORT"], variables["SKEWLESS_ENV"]) == ("8101", "staging")
    with pytest.raises(BadInput, match="--env prod: not in .* \\(environments: staging\\)"):
        environment_variables("prod", path)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{state_dri: x}", "unknown setting\\(s\\) state_dri"),
        ("{release_ledger: x}", "release_ledger is the file's `ledger:`"),
        ("{state_dir: d, rest_port: many}", "rest_port: Input should be a valid integer"),
        ("{state_dir: d, online_store: postgres}", "online_store: Input should be 'sqlite'"),
        ("{state_dir: d, namespace: candidate}", "namespace: chosen per command"),
        ("{rest_port: 8001}", "state_dir: each environment needs its own state folder"),
        (
            "{state_dir: shared}}\n  prod: {settings: {state_dir: shared}",
            "prod and dev share state_dir",
        ),
    ],
)
def test_a_mistake_in_the_file_names_its_key(tmp_path: Path, settings: str, message: str) -> None:
    path = _file(tmp_path, f"ledger: l.db\nenvironments:\n  dev: {{settings: {settings}}}\n")
    with pytest.raises((BadInput, ConfigError), match=message):
        environment_variables("dev", path)


def test_selecting_an_environment_leaves_nothing_of_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(
        tmp_path,
        "ledger: l.db\nenvironments:\n"
        "  staging: {settings: {state_dir: s, feast_state: s/feast, rest_port: 8101}}\n"
        "  prod: {settings: {state_dir: p}}\n",
    )
    monkeypatch.setattr(os, "environ", dict(os.environ))  # select() writes it: put back after
    os.environ[FILE_VARIABLE] = str(path)
    os.environ["SKEWLESS_LEAD_TIME_MINUTES"] = "30"  # the user's own, kept
    select("staging")
    assert os.environ["SKEWLESS_FEAST_STATE"] == str(tmp_path / "s" / "feast")
    select("prod")
    assert os.environ["SKEWLESS_STATE_DIR"] == str(tmp_path / "p")
    assert "SKEWLESS_FEAST_STATE" not in os.environ and "SKEWLESS_REST_PORT" not in os.environ
    assert os.environ["SKEWLESS_LEAD_TIME_MINUTES"] == "30"
    assert ledger_file() == tmp_path / "l.db"
    get_settings.cache_clear()
