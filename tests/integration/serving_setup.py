"""What the serving tests share: a private Redis holding the real feature service as of the
configuration's `as_of`, a state folder whose registry has a small real champion, and the
prediction service started on them as a child process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from serving.process import ServiceProcess
from skewless.features import store as feature_store
from skewless.features.service import ServiceSchema, service_schema
from skewless.models.configuration import ModelConfig, load_model_config
from skewless.settings import Settings
from tests.support.redis_server import RedisServer
from training.config import load_pipeline_config
from training.pipeline import Pipeline

# The model name is the serving configuration's (skewless/configs/delay_model.yaml); a short
# training window keeps the pipeline to seconds.
SMALL_PIPELINE = """
name: departure_delay
feature_service: delay_model_v1
entity_source: flight_requests
entity_id: flight_id
label: departed_late
segments: [origin]
as_of: "2013-12-30T23:00:00Z"
pipeline:
  windows:
    train: {start: "2013-03-01T00:00:00Z", end: "2013-03-15T00:00:00Z"}
    validation: {start: "2013-03-15T00:00:00Z", end: "2013-03-22T00:00:00Z"}
    test: {start: "2013-03-22T00:00:00Z", end: "2013-03-29T00:00:00Z"}
  baseline_by: [carrier]
  training: {search_budget: 1, max_rounds: 200, early_stopping_rounds: 20}
  blessing: {latency_budget_ms_p99: 50, infra_sample_rows: 50}
"""


@dataclass
class ServingWorld:
    settings: Settings  # redis online store, the private Redis, the state folder
    redis: RedisServer
    config: ModelConfig
    schema: ServiceSchema
    folder: Path

    def env(self, **extra: Any) -> dict[str, str]:
        values = {
            "SKEWLESS_REPO_PATH": str(self.settings.repo_path),
            "SKEWLESS_ONLINE_STORE": "redis",
            "SKEWLESS_REDIS_CONNECTION": self.settings.redis_connection,
            "SKEWLESS_STATE_DIR": str(self.settings.state_dir),
            "SKEWLESS_MODEL_POLL_SECONDS": "0.3",
            "SKEWLESS_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
            "SKEWLESS_DRAIN_SECONDS": "0.5",
            **{f"SKEWLESS_{k.upper()}": str(v) for k, v in extra.items()},
        }
        return values

    def service(self, name: str, **extra: Any) -> ServiceProcess:
        return ServiceProcess(self.env(**extra), log_path=self.folder / f"{name}.log")

    def requests(self, n: int) -> pd.DataFrame:
        """Real entity rows just before `as_of`, each with its join keys and request fields."""
        store = feature_store.open_store(self.settings)
        return feature_store.recent_entity_rows(store, self.config, self.schema, n)


def build_world(real_repo: Settings, folder: Path) -> ServingWorld:
    (folder / "redis").mkdir()
    redis = RedisServer(folder / "redis").start()
    settings = Settings(
        repo_path=real_repo.repo_path,
        online_store="redis",
        redis_connection=redis.connection,
        state_dir=folder / "state",
    )
    try:
        config = load_model_config(settings.model_file)
        feature_store.apply(settings)
        store = feature_store.open_store(settings)
        feature_store.materialize(store, config.as_of)
        pipeline_yaml = folder / "pipeline.yaml"
        pipeline_yaml.write_text(SMALL_PIPELINE)
        pipeline = Pipeline(settings, load_pipeline_config(pipeline_yaml), progress=lambda _: None)
        result = pipeline.run()
        assert result.version is not None and "champion" in result.aliases, result.verdict
        schema = service_schema(store, config.feature_service)
    except BaseException:
        redis.stop(save=False)  # no redis-server left behind by a failed setup
        raise
    return ServingWorld(settings, redis, config, schema, folder)


class Stream:
    """Sequential requests in a thread, each answer kept in order; `pause` seconds between
    them leaves the machine's cores to what the test runs beside the stream."""

    def __init__(self, service: ServiceProcess, body: dict, pause: float = 0.0) -> None:
        self.service, self.body, self.pause = service, body, pause
        self.answers: list[httpx.Response | Exception] = []
        self.times: list[float] = []  # time.monotonic() of each answer
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(base_url=self.service.url, timeout=10) as client:
            while not self.stop.is_set():
                self.sent += 1
                try:
                    self.answers.append(client.post("/v1/predict", json=self.body))
                except httpx.HTTPError as exc:
                    self.answers.append(exc)
                self.times.append(time.monotonic())
                self.stop.wait(self.pause)

    def first_seen(self, version: str) -> float:
        """When the first answer from `version` came back."""
        for answer, at in zip(self.answers, self.times, strict=True):
            if isinstance(answer, httpx.Response) and answer.json().get("model_version") == version:
                return at
        raise AssertionError(f"no answer from version {version}")

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)
