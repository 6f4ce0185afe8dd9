"""A test build of `skewless train`: the real command, whose pipeline dies (exit 137, as a
kill would) at the moment named by SKEWLESS_TEST_KILL_AT: after a step ("train") or inside
one ("register:registered"). The production pipeline only has a no-op hook there. Run as
`python -m tests.integration.faulty_train train ...`."""

from __future__ import annotations

import os
from typing import Any

import training.pipeline
from training.pipeline import Pipeline

FAULT_ENV = "SKEWLESS_TEST_KILL_AT"


def _kill_at(moment: str) -> None:
    if os.environ.get(FAULT_ENV) == moment:
        os._exit(137)


class _DyingPipeline(Pipeline):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "hook": _kill_at})


# `skewless train` imports the pipeline when it runs: it finds this one.
training.pipeline.Pipeline = _DyingPipeline  # type: ignore[misc]

if __name__ == "__main__":
    from cli.main import main

    main()
