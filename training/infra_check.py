"""Run in a fresh process by the bless step: does the serving code's loader and scorer load
the artifact, reproduce the training scores, and meet the single-row latency budget?

    python -m training.infra_check MODEL CONTRACT SHA256 ROWS.parquet EXPECTED.npy
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skewless.models.artifacts import load_model


def main(argv: list[str]) -> int:
    model_path, contract_path, sha, rows_path, expected_path = argv
    model = load_model(Path(model_path), Path(contract_path), sha)
    rows = pd.read_parquet(rows_path)
    expected = np.load(expected_path)
    batch = model.score(rows)
    # Row by row as the service scores: feature columns, the single-row path, one encoder.
    columns = {name: rows[name].tolist() for name in model.contract.feature_names}
    latencies = []
    single = []
    for i in range(len(rows)):
        started = time.perf_counter()
        single.append(model.single.score(columns, i))
        latencies.append((time.perf_counter() - started) * 1000)
    result = {
        "max_abs_diff_batch": float(np.max(np.abs(batch - expected))),
        "max_abs_diff_single": float(np.max(np.abs(np.asarray(single) - expected))),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "rows": len(rows),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
