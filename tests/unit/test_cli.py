"""Does every command explain itself?"""

import pytest
from typer.testing import CliRunner

from cli.main import app

COMMANDS = [
    "init",
    "build-tables",
    "apply",
    "materialize",
    "online-features",
    "extract",
    "train",
    "quickstart",
]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_every_command_is_listed() -> None:
    result = CliRunner().invoke(app, ["--help"])
    for command in COMMANDS:
        assert command in result.output


def test_init_copies_the_packaged_repository_and_refuses_to_overwrite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = CliRunner().invoke(app, ["init", str(tmp_path)])
    assert first.exit_code == 0, first.output
    copied = tmp_path / "feature_repo"
    assert (copied / "feature_store.yaml").is_file() and (copied / "feature_views.py").is_file()
    assert not (copied / "data").exists()  # definitions only: no tables, registry or store
    again = CliRunner().invoke(app, ["init", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
