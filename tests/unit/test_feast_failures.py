"""What a failed Feast command is reported as: the line that says what failed, wherever Feast
wrote it (a trace's last line on stderr, or a reason printed on stdout before exiting 1)."""

from __future__ import annotations

import subprocess

from skewless.features.store import feast_failure


def _done(stdout: str, stderr: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["feast", "apply"], 1, stdout, stderr)


def test_a_trace_is_reported_by_its_last_line() -> None:
    stderr = "Traceback (most recent call last):\n  File ...\nValueError: bad source path\n"
    assert feast_failure(_done("Applying changes for project p\n", stderr)) == (
        "ValueError: bad source path"
    )


def test_a_printed_reason_beats_warnings_on_stderr() -> None:
    stderr = "repo.py:29: DeprecationWarning: Entity value_type ...\n  driver = Entity(...)\n"
    stdout = "Project object name should match with the project name defined in the yaml\n"
    assert feast_failure(_done(stdout, stderr)) == stdout.strip()


def test_nothing_said_is_said_so() -> None:
    assert feast_failure(_done("", "")) == "no output"
    assert feast_failure(_done("", "Killed\n")) == "Killed"


def test_an_exception_over_several_lines_is_reported_whole() -> None:
    stderr = (
        "Traceback (most recent call last):\n"
        '  File "feast/feature_view.py", line 164, in __init__\n'
        "    def __init__(\n"
        '  File "typeguard/_checkers.py", line 460, in check_union\n'
        '    raise TypeCheckError(f"did not match any element in the union:")\n'
        'typeguard.TypeCheckError: argument "ttl" (int) did not match any element in the union:\n'
        "  datetime.timedelta: is not an instance of datetime.timedelta\n"
        "  NoneType: is not an instance of NoneType\n"
    )
    assert feast_failure(_done("", stderr)) == (
        'typeguard.TypeCheckError: argument "ttl" (int) did not match any element in the '
        "union: datetime.timedelta: is not an instance of datetime.timedelta NoneType: is not "
        "an instance of NoneType"
    )
