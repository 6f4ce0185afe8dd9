"""The predictor core: the one code path from entity keys and request fields to a prediction.

REST, gRPC, and through `score_rows` batch scoring, all come here: features are read through
the model's FeatureService (`skewless.features.service`), turned into the model input by the same
encoder training used, and scored by LightGBM.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from skewless.features.service import OnlineRead, ServiceSchema
from skewless.models.artifacts import ServedModel
from skewless.quality.prediction_log import LogRecord

from .breaker import CircuitBreaker
from .errors import ModelFailed, NotReady, OnlineStoreUnavailable
from .log_writer import PredictionLog
from .metrics import Metrics
from .models import FeatureNamespace, ModelSlots

log = logging.getLogger("skewless.serving")
# RedisClusterException: a cluster with no node answering, or a slot no master serves; not a
# RedisError in redis-py, and as much the store's failure as any.
STORE_ERRORS = (RedisError, RedisClusterException, sqlite3.Error, OSError)
# Up to this many rows a model scores row by row through LightGBM's single-row C API (~10 µs
# a row here); beyond, one matrix through `Booster.predict` (~50 µs, then ~1 µs a row).
SINGLE_ROWS = 8
# The metrics role of the champion's scores on the rows a canary routed to the challenger.
PAIRED = "champion_paired"


@dataclass(frozen=True)
class Instance:
    request_id: str | None
    entities: dict[str, Any]
    request: dict[str, Any]


@dataclass(frozen=True)
class Prediction:
    request_id: str
    probability: float
    decision: bool
    threshold: float
    model_name: str
    model_version: str
    served_by: str
    missing_features: tuple[str, ...]
    features: dict[str, Any] | None
    definitions: str  # the fingerprint of the feature definitions the features were read with


# Reads the feature service online for rows of join keys and request fields, as of a time.
OnlineReader = Callable[[list[dict[str, Any]], datetime], OnlineRead]


class PredictorCore:
    def __init__(
        self,
        reader: OnlineReader,
        schema: ServiceSchema,
        slots: ModelSlots,
        metrics: Metrics,
        clock: Callable[[], datetime],
        prediction_log: PredictionLog | None = None,
        challenger_share: float = 0.0,
        challenger_shadow: bool = False,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """`reader` and `schema`: the namespace the service starts on; a switch replaces
        `slots` whole, with its champion and its namespace (serving/models.py)."""
        self.breaker = breaker
        if slots.namespace is None:
            slots.namespace = FeatureNamespace.of("", schema, reader)
        self.slots = slots
        self.metrics = metrics
        self.clock = clock
        self.prediction_log = prediction_log
        self.challenger_share = challenger_share
        self.challenger_shadow = challenger_shadow

    def predict(
        self, instances: list[Instance], *, endpoint: str, return_features: bool = False
    ) -> list[Prediction]:
        started = time.perf_counter()
        slots = self.slots  # one reference for the whole request (hot swap, switch)
        champion, challenger, namespace = slots.champion, slots.challenger, slots.namespace
        if champion is None or namespace is None:
            raise NotReady("no model is loaded yet")
        now = self.clock()
        rows = [{**i.entities, **i.request} for i in instances]
        read = self._read(namespace.reader, rows, now)
        t_read = time.perf_counter()
        self.metrics.child(self.metrics.latency, endpoint, "features").observe(t_read - started)

        routes = [self._route(i, challenger, namespace.schema) for i in instances]
        models = [challenger if r == "challenger" and challenger else champion for r in routes]
        roles = ["challenger" if m is challenger else "champion" for m in models]
        scores = self._score(read, models, roles)
        t_score = time.perf_counter()
        self.metrics.child(self.metrics.latency, endpoint, "score").observe(t_score - t_read)

        request_ids = [i.request_id or uuid.uuid4().hex for i in instances]
        predictions = []
        for k, (model, probability) in enumerate(zip(models, scores, strict=True)):
            threshold = model.model.contract.threshold
            predictions.append(
                Prediction(
                    request_ids[k],
                    probability,
                    probability >= threshold,
                    threshold,
                    model.name,
                    model.version,
                    roles[k],
                    read.missing[k],
                    {n: read.values[n][k] for n in namespace.schema.features}
                    if return_features
                    else None,
                    namespace.fingerprint,
                )
            )
            self.metrics.child(
                self.metrics.predictions, predictions[-1].served_by, model.version
            ).inc()
            self.metrics.child(self.metrics.scores, predictions[-1].served_by).observe(probability)
            for name in read.missing[k]:
                self.metrics.child(self.metrics.missing_features, name).inc()
        if self.challenger_shadow and challenger is not None:
            self._shadow(challenger, read, rows, request_ids, now, endpoint)
        seconds = time.perf_counter() - started
        for prediction in predictions:  # after the loop above: the request's whole time
            self.metrics.child(self.metrics.role_latency, prediction.served_by).observe(seconds)
        self._log(rows, read, predictions, now, endpoint, seconds)
        if challenger is not None and not self.challenger_shadow and "challenger" in roles:
            # After the latency was taken: the canary compares the roles' latencies, and the
            # champion's extra scoring of the challenger's rows is not the challenger's cost.
            self._pair(champion, read, rows, request_ids, roles, now, endpoint)
        return predictions

    def _read(self, reader: OnlineReader, rows: list[dict[str, Any]], now: datetime) -> OnlineRead:
        breaker = self.breaker
        if breaker is not None and breaker.open:
            self.metrics.store_refused.inc()
            raise OnlineStoreUnavailable(
                "the online store is not answering (circuit open for "
                f"{breaker.open_seconds():.1f} s); retry later"
            )
        try:
            read = reader(rows, now)
        except STORE_ERRORS as exc:
            self.metrics.store_errors.inc()
            log.warning("online store read failed: %s", exc)
            if breaker is not None and breaker.failed():
                self.metrics.breaker_open.set(1)
                log.error("online store circuit open: answering 503 until a probe succeeds")
            raise OnlineStoreUnavailable(
                f"the online store did not answer ({type(exc).__name__}); retry later"
            ) from None
        if breaker is not None:
            breaker.succeeded()
        return read

    def _route(
        self, instance: Instance, challenger: ServedModel | None, schema: ServiceSchema
    ) -> str:
        """Sticky by entity: the same keys always go the same way at a given share."""
        if challenger is None or self.challenger_share <= 0 or self.challenger_shadow:
            return "champion"
        key = "\x1f".join(str(instance.entities.get(k)) for k in schema.join_keys)
        return (
            "challenger" if zlib.crc32(key.encode()) / 2**32 < self.challenger_share else "champion"
        )

    def _score(self, read: OnlineRead, models: list[ServedModel], roles: list[str]) -> list[float]:
        scores = [0.0] * len(models)
        for model in {id(m): m for m in models}.values():
            index = [k for k, m in enumerate(models) if m is model]
            try:
                if len(index) <= SINGLE_ROWS:  # the C API's single-row path, row by row
                    scored = [model.model.single.score(read.values, k) for k in index]
                else:
                    columns = (
                        read.values
                        if len(index) == len(models)
                        else {n: [v[k] for k in index] for n, v in read.values.items()}
                    )
                    scored = model.model.score(columns).tolist()
            except Exception as exc:  # counted per role: a canary compares error rates
                self.metrics.model_errors.labels(roles[index[0]]).inc(len(index))
                log.exception("version %s failed to score", model.version)
                raise ModelFailed(
                    f"model version {model.version} failed to score ({type(exc).__name__})"
                ) from None
            for k, score in zip(index, scored, strict=True):
                scores[k] = float(score)
        return scores

    def _shadow(self, challenger, read, rows, request_ids, now, endpoint) -> None:  # type: ignore[no-untyped-def]
        scores = [float(s) for s in challenger.model.score(read.values)]
        self._log_shadow(challenger, request_ids, rows, read.values, scores, now, endpoint)

    def _pair(
        self,
        champion: ServedModel,
        read: OnlineRead,
        rows: list[dict[str, Any]],
        request_ids: list[str],
        roles: list[str],
        now: datetime,
        endpoint: str,
    ) -> None:
        """During a canary, the champion also scores the requests routed to the challenger
        (not returned): the canary then compares the two on the same rows, and monitoring
        on the same outcomes, instead of on two sticky halves that see different entities."""
        index = [k for k, role in enumerate(roles) if role == "challenger"]
        columns = {n: [v[k] for k in index] for n, v in read.values.items()}
        try:
            scores = [float(s) for s in champion.model.score(columns)]
        except Exception:  # never fails the request: it was answered by the challenger
            self.metrics.model_errors.labels(PAIRED).inc(len(index))
            log.exception("the champion failed to score the challenger's rows")
            return
        for score in scores:
            self.metrics.child(self.metrics.scores, PAIRED).observe(score)
        ids, inputs = [request_ids[k] for k in index], [rows[k] for k in index]
        self._log_shadow(champion, ids, inputs, columns, scores, now, endpoint)

    def _log_shadow(
        self,
        model: ServedModel,
        request_ids: list[str],
        rows: list[dict[str, Any]],
        values: dict[str, list[Any]],
        scores: list[float],
        now: datetime,
        endpoint: str,
    ) -> None:
        """Scores a model made but nobody was answered with (shadow mode, a canary's pairing)."""
        if self.prediction_log is None:
            return
        n, threshold = len(scores), model.model.contract.threshold
        self.prediction_log.append(
            LogRecord(
                datetime.now(UTC),
                now,
                endpoint,
                request_ids,
                rows,
                values,
                ["shadow"] * n,
                [model.name] * n,
                [model.version] * n,
                scores,
                [s >= threshold for s in scores],
                0.0,
            )
        )

    def _log(self, rows, read, predictions, now, endpoint, seconds) -> None:  # type: ignore[no-untyped-def]
        if self.prediction_log is None:
            return
        self.prediction_log.append(
            LogRecord(
                served_at=datetime.now(UTC),
                feature_time=now,
                endpoint=endpoint,
                request_ids=[p.request_id for p in predictions],
                inputs=rows,
                features=read.values,
                served_by=[p.served_by for p in predictions],
                model_names=[p.model_name for p in predictions],
                model_versions=[p.model_version for p in predictions],
                probabilities=[p.probability for p in predictions],
                decisions=[p.decision for p in predictions],
                latency_ms=seconds * 1000,
            )
        )
