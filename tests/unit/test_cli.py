"""Does every command explain itself?"""

import pytest
from typer.testing import CliRunner

from cli.main import app

COMMANDS = [
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
