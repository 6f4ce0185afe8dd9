"""A test build of the prediction service: the real `skewless serve`, with a fault put into
model scoring, for the gate's tests. Run as `python -m tests.integration.faulty_service serve
...`; the fault comes from the environment:

- FAULT_DELAY_MS: every scoring call sleeps this long first (a slow candidate);
- FAULT_ERROR_WHEN_MISSING: scoring raises when this feature is missing in any row (a
  candidate that fails on some inputs: entities it never saw);
- FAULT_SCORE_OFFSET: added to every score (a build that serves other scores than batch
  scoring computes for the same model: skew in the service's own code).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from skewless.models import artifacts

_real_score = artifacts.LoadedModel.score
_real_single = artifacts.SingleRowPredictor.score


def _fault(values: list[Any]) -> float:
    """Sleep, raise or return the offset, as the environment says."""
    delay_ms = float(os.environ.get("FAULT_DELAY_MS", "0"))
    if delay_ms:
        time.sleep(delay_ms / 1000)
    feature = os.environ.get("FAULT_ERROR_WHEN_MISSING")
    if feature and any(v is None or v != v for v in values):
        raise ValueError(f"injected fault: {feature} is missing")
    return float(os.environ.get("FAULT_SCORE_OFFSET", "0"))


def _faulty_score(self: artifacts.LoadedModel, rows: Any) -> np.ndarray:
    feature = os.environ.get("FAULT_ERROR_WHEN_MISSING")
    return _real_score(self, rows) + _fault(list(rows[feature]) if feature else [])


def _faulty_single(self: artifacts.SingleRowPredictor, values: Any, k: int = 0) -> float:
    """The service's single-row path (one row, or each row of a small batch)."""
    feature = os.environ.get("FAULT_ERROR_WHEN_MISSING")
    return _real_single(self, values, k) + _fault([values[feature][k]] if feature else [])


artifacts.LoadedModel.score = _faulty_score  # type: ignore[method-assign]
artifacts.SingleRowPredictor.score = _faulty_single  # type: ignore[method-assign]

if __name__ == "__main__":
    from cli.main import main

    main()
