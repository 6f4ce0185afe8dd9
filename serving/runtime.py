"""Everything one server process holds, built from the settings: the feature store, the
feature service's schema, the model slots and their loader, the predictor core, the
prediction log and the metrics. Both faces (REST and gRPC) share one Runtime."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime
from functools import partial
from typing import Any

from feast import FeatureStore
from feast.errors import FeatureServiceNotFoundException
from redis.cluster import RedisCluster

from skewless.clock import now as clock_now
from skewless.errors import SkewlessError
from skewless.features import store as feature_store
from skewless.features.service import ServiceSchema, read_online, service_schema
from skewless.models.artifacts import ModelRefused
from skewless.models.configuration import ModelConfig, load_model_config
from skewless.online.readers import UnsupportedService
from skewless.online.redis_readers import RedisClusterFeatureReader, RedisFeatureReader
from skewless.online.sqlite_reader import SqliteFeatureReader
from skewless.registry.adapter import ModelRegistry

from .breaker import CircuitBreaker
from .coalescer import Coalescer
from .core import OnlineReader, PredictorCore
from .log_writer import PredictionLog
from .metrics import Metrics
from .models import FeatureNamespace, ModelLoader, ModelSlots
from .schemas import WireModels
from .settings import ServingSettings
from .store_client import (
    RedisClient,
    StoreProbe,
    request_path_redis,
    request_path_settings,
)

log = logging.getLogger("skewless.serving")


class Runtime:
    def __init__(self, settings: ServingSettings) -> None:
        self.settings = request_path_settings(settings)
        self.config: ModelConfig = load_model_config(settings.model_file)
        self.store: FeatureStore = feature_store.open_store(self.settings)
        self.schema: ServiceSchema = service_schema(self.store, self.config.feature_service)
        self.metrics = Metrics(settings.metrics_dir)
        self.loader = ModelLoader(
            ModelRegistry.of(settings),
            self.config.name,
            self.schema,
            self.metrics,
            settings.state_dir / "serving-cache",
            self.namespace,
            pinned_version=settings.serve_version,
            allow_definition_skew=settings.definition_skew == "allow",
        )
        client = request_path_redis(settings) if settings.redis_online else None
        self.client = client
        reader = self._reader(self.store, self.schema, client)
        slots = ModelSlots(namespace=FeatureNamespace.of(self.store.project, self.schema, reader))
        self.prediction_log = PredictionLog(
            settings.prediction_log_dir,
            self.metrics,
            queue_size=settings.prediction_log_queue,
            flush_rows=settings.prediction_log_flush_rows,
            flush_seconds=settings.prediction_log_flush_seconds,
            join_keys=self.schema.join_keys,
            request_fields=self.schema.request_fields,
            in_process=None
            if settings.prediction_log_sink == "auto"
            else settings.prediction_log_sink == "thread",
        )
        self.core = PredictorCore(
            reader,
            self.schema,
            slots,
            self.metrics,
            self.clock,
            self.prediction_log,
            settings.challenger_share,
            settings.challenger_shadow,
            # A remote store can freeze; the embedded SQLite file cannot time out that way.
            CircuitBreaker(settings.breaker_failures) if client is not None else None,
        )
        self.coalescer = Coalescer(self.core)
        self.wire = WireModels(self.schema, self.example(), settings.max_batch_size)
        self.probe = StoreProbe(client)
        self.draining = False
        self._poll_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None

    @property
    def slots(self) -> ModelSlots:
        return self.core.slots

    def namespace(self, project: str) -> FeatureNamespace:
        """Another namespace's features, read as this one's are (a champion trained there)."""
        store = feature_store.open_store(self.settings, project=project)
        try:
            schema = service_schema(store, self.config.feature_service)
        except FeatureServiceNotFoundException:
            raise ModelRefused(
                f"namespace {project} has no feature service {self.config.feature_service!r}"
            ) from None
        return FeatureNamespace.of(project, schema, self._reader(store, schema, self.client))

    def _reader(
        self, store: FeatureStore, schema: ServiceSchema, client: RedisClient | None
    ) -> OnlineReader:
        """The direct reader of the online store where it applies (proved equal to the SDK
        by the parity tests), else the Feast SDK."""
        if self.settings.direct_online_reader:
            try:
                if isinstance(client, RedisCluster):
                    return RedisClusterFeatureReader(store, schema, client).read
                if client is not None:
                    return RedisFeatureReader(store, schema, client).read
                return SqliteFeatureReader(store, schema).read
            except UnsupportedService as exc:
                log.warning("reading features through the Feast SDK: %s", exc)
        service = store.get_feature_service(schema.name)
        return partial(read_online, store, schema, service=service)

    def clock(self) -> datetime:
        return clock_now(self.settings, self.config.as_of)

    def example(self) -> dict[str, Any]:
        """The request the OpenAPI schema shows: the model configuration's `example`, else a
        placeholder of the right type per field. Never read from the offline tables: a
        serving host has the online store and the registry, not the parquet files."""
        given = self.config.example
        fallback = {"string": "example", "float": 0.0, "int": 0, "bool": False}
        as_of = self.config.as_of.isoformat().replace("+00:00", "Z")

        entities: dict[str, Any] = given.entities if given else {}
        request: dict[str, Any] = given.request if given else {}

        def value(name: str, values: dict[str, Any]) -> Any:
            if name in values:
                return values[name]
            kind = self.schema.kinds[name]
            return as_of if kind == "timestamp" else fallback[kind]

        return {
            "request_id": "example-1",
            "entities": {k: value(k, entities) for k in self.schema.join_keys},
            "request": {k: value(k, request) for k in self.schema.request_fields},
            "return_features": False,
        }

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "shutting down"
        champion = self.slots.champion
        if champion is None:
            refused = list(self.loader.refused.values())
            return False, "no model loaded" + (f": {refused[-1]}" if refused else "")
        if not self.probe.ok():
            return False, "online store does not answer"
        self._close_circuit()  # it answers: requests may read it again at once
        allowed = self.loader.overridden.get(champion.version)
        # The override is never silent: ready, and saying what it lets through.
        return True, "ready" + (
            f" (allowed by SKEWLESS_DEFINITION_SKEW: {allowed})" if allowed else ""
        )

    def _close_circuit(self) -> None:
        breaker = self.core.breaker
        if breaker is not None and breaker.open:
            breaker.succeeded()
            self.metrics.breaker_open.set(0)
            log.warning("online store answers again: circuit closed")

    def refresh_models(self) -> None:
        share = self.settings.challenger_share
        if self.settings.serve_version is None:  # a pinned service serves one model only
            try:
                canary = self.loader.registry.canary_share(self.config.name)
            except SkewlessError as exc:  # a locked registry: keep the share being served
                log.error("cannot read the canary share: %s", exc)
                canary = self.core.challenger_share
            share = canary if canary is not None else share
        self.core.challenger_share = share
        self.core.slots = self.loader.refresh(
            self.core.slots,
            challenger=self.settings.serve_version is None
            and (share > 0 or self.settings.challenger_shadow),
        )

    async def start(self) -> None:
        self.prediction_log.start()
        await asyncio.to_thread(self.refresh_models)
        if self.slots.champion is None:
            log.error("no champion model in the registry yet: /readyz stays false until one is")
        self._poll_task = asyncio.create_task(self._poll())
        if self.core.breaker is not None:
            self._probe_task = asyncio.create_task(self._probe(self.core.breaker))

    async def _probe(self, breaker: CircuitBreaker) -> None:
        """While the circuit is open, PING the store; its first answer closes the circuit."""
        while True:
            await asyncio.sleep(self.settings.breaker_probe_seconds)
            try:
                if breaker.open and await asyncio.to_thread(self.probe.ok):
                    self._close_circuit()
            except Exception:  # the probe must outlive anything, or the circuit stays open
                log.exception("online store probe failed; probing again")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.model_poll_seconds)
            try:
                await asyncio.to_thread(self.refresh_models)
            except Exception:  # the registry being briefly unreadable must not stop polling
                log.exception("model poll failed; keeping the models being served")

    async def stop(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            await asyncio.gather(self._probe_task, return_exceptions=True)
        if self._poll_task is not None:
            self._poll_task.cancel()
            # A refresh running in its thread finishes before the loader's folder goes.
            await asyncio.gather(self._poll_task, return_exceptions=True)
        await asyncio.to_thread(self.prediction_log.close)
        self.loader.close()
        log.warning("prediction log flushed; pid %d stopped", os.getpid())
