"""The command-line tools a benchmark drives (wrk, h2load, taskset): checked before any work,
so that a missing one is one line and exit 2, not a traceback minutes into a run."""

from __future__ import annotations

import shutil
import sys

PACKAGES = {"wrk": "wrk", "h2load": "nghttp2-client", "taskset": "util-linux"}


def require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        install = " ".join(PACKAGES.get(tool, tool) for tool in missing)
        print(
            f"error: {sys.argv[0]} needs {', '.join(missing)} on PATH (apt-get install {install})",
            file=sys.stderr,
        )
        raise SystemExit(2)
