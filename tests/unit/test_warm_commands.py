"""Commands forked from a preloaded process behave as fresh `skewless` processes: their exit
codes, their output on our descriptors, the environment each is given (settings read anew,
not cached from the one before), and a preloaded process that died is a failed command, not
a hang. Real `skewless` commands, no fakes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from skewless.command_support import run_command
from skewless.warm_commands import WarmCommands


def test_exit_codes_and_output_are_the_commands_own(capfd: pytest.CaptureFixture[str]) -> None:
    with WarmCommands() as warm:
        assert warm.run("--help") == 0
        assert "Usage: python -m cli.main" in capfd.readouterr().out
        assert warm.run("no-such-command") == 2
        assert "No such command 'no-such-command'" in capfd.readouterr().err


def test_each_command_reads_the_environment_it_is_given(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    with WarmCommands() as warm:
        for file in (first, second):
            env = {"SKEWLESS_ENVIRONMENTS": str(file), "SKEWLESS_ENV": "staging"}
            assert warm.run("release", "id", env=env) == 2
            assert f"no environments file at {file}" in capfd.readouterr().err
        assert "SKEWLESS_ENVIRONMENTS" not in os.environ  # ours is left as it was
    # The same as a fresh process says it.
    env = {"SKEWLESS_ENVIRONMENTS": str(first), "SKEWLESS_ENV": "staging"}
    assert run_command("release", "id", env=env) == 2
    assert f"no environments file at {first}" in capfd.readouterr().err


def test_a_preloaded_process_that_died_fails_the_command_it_was_sent() -> None:
    with WarmCommands() as warm:
        assert warm.process is not None
        os.kill(warm.process.pid, signal.SIGKILL)
        warm.process.wait()
        assert warm.run("--help") == 1


def test_leaving_on_an_exception_ends_the_preloaded_process() -> None:
    with pytest.raises(RuntimeError), WarmCommands() as warm:
        assert warm.run("--help") == 0
        raise RuntimeError("the caller was interrupted")
    assert warm.process is not None and warm.process.returncode is not None
