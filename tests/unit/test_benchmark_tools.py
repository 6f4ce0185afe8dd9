"""Does a benchmark missing its load generator say so in one line, before any work?"""

import pytest

from benchmarks.tools import require


def test_a_missing_tool_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemExit) as stopped:
        require("wrk", "h2load")
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "needs wrk, h2load" in line and "apt-get install wrk nghttp2-client" in line


def test_present_tools_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    require("sh")  # on every PATH
