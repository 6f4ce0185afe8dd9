"""The project's own failures: one base, two kinds, mapped once for the command line.

`BadInput` is the caller's to fix (a missing file, a YAML typo, an unknown version, a
promotion the registry refuses): exit 2. `CheckFailed` is a check that ran and said no
(schema skew stopping the pipeline, a failed gate): exit 1.
Every message is one line that names what is at fault; the roof prints it without a
traceback (see `cli/main.py`). The serving faces keep their own HTTP/gRPC mapping
(`serving/errors.py`), and third-party failures are translated where they are called.
"""

from __future__ import annotations


class SkewlessError(Exception):
    """A failure the project knows how to explain."""

    exit_code = 1


class BadInput(SkewlessError):
    """The caller gave something that cannot be used as given."""

    exit_code = 2


class CheckFailed(SkewlessError):
    """A check ran and said no; nothing it guards was changed."""

    exit_code = 1
