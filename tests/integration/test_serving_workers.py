"""Several workers behind one port: `/metrics` from whichever worker answers adds up all of
them (Prometheus multiprocess mode, a folder per service)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from serving.schemas import rest_body

from .serving_setup import ServingWorld

SERIES = re.compile(r'^skewless_requests_total\{endpoint="/v1/predict",status="(\d+)"\} (\S+)$')


def _predict_counts(text: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for line in text.splitlines() if (m := SERIES.match(line))}


def test_metrics_of_two_workers_sum_both(serving_world: ServingWorld, tmp_path: Path) -> None:
    rows = serving_world.requests(40)
    good = [rest_body(r, serving_world.schema) for _, r in rows.iterrows()]
    bad = {**good[0], "request": {**good[0]["request"], "distance": "far"}}
    log_dir = tmp_path / "log"
    with serving_world.service("workers", workers=2, prediction_log=log_dir) as service:
        # A new connection per request: SO_REUSEPORT spreads connections over the workers.
        for body in good * 3:
            assert httpx.post(service.url + "/v1/predict", json=body, timeout=10).is_success
        for _ in range(7):
            assert httpx.post(service.url + "/v1/predict", json=bad, timeout=10).status_code == 422
        scrapes = [httpx.get(service.url + "/metrics", timeout=10).text for _ in range(12)]
    # Both workers served (the log's parts are named by process), and every scrape, whichever
    # worker answered it, shows the whole service's counts: one worker alone has only its part.
    pids = {p.name.split("-")[1] for p in log_dir.glob("date=*/part-*.parquet")}
    assert len(pids) == 2, pids
    for text in scrapes:
        assert _predict_counts(text) == {"200": 120.0, "422": 7.0}
        info = [line for line in text.splitlines() if line.startswith("skewless_model_info{")]
        assert len(info) == 1 and 'role="champion"' in info[0], info  # one, not one per pid
        assert "pid=" not in info[0] and info[0].endswith(" 1.0")
        assert "feast_" not in text  # the service's own metrics only
