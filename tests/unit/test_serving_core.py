"""The serving pieces on their own, with a fake feature reader and a tiny real LightGBM model:
request validation, error bodies, routing, the TTL rule, the prediction log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from serving.breaker import CircuitBreaker
from serving.coalescer import MAX_BATCH, Coalescer
from serving.core import Instance, Prediction, PredictorCore
from serving.errors import InvalidInput, NotReady, OnlineStoreUnavailable
from serving.log_writer import CHUNK, PredictionLog
from serving.metrics import Metrics
from serving.models import ModelSlots
from serving.schemas import WireModels
from serving.settings import ServingSettings
from serving.store_client import request_path_settings
from skewless.features.service import OnlineRead, ServiceSchema, apply_ttl
from skewless.models.artifacts import LoadedModel, ModelRefused, ServedModel, check_fits
from skewless.models.contract import FeatureSpec, ModelContract
from skewless.quality.prediction_log import FEATURE, REQUEST, LogRecord, read_prediction_log

NOW = datetime(2013, 6, 1, 12, tzinfo=UTC)
SCHEMA = ServiceSchema(
    name="svc",
    join_keys=("shop", "item"),
    request_fields=("asked_at", "price"),
    features=("stock", "price_ratio"),
    ttl={"stock": timedelta(hours=1)},
    kinds={"shop": "string", "item": "string", "asked_at": "timestamp", "price": "float"},
)
EXAMPLE = {
    "entities": {"shop": "s1", "item": "i1"},
    "request": {"asked_at": "2013-06-01T12:00:00Z", "price": 3.5},
}


def _model(version: str, shift: float = 0.0) -> ServedModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] + shift > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4}, lgb.Dataset(x, y), 10
    )
    contract = ModelContract(
        "m",
        "svc",
        "1",
        "y",
        (FeatureSpec("stock", "numeric"), FeatureSpec("price_ratio", "numeric")),
    )
    return ServedModel("m", version, "sha", LoadedModel(booster, contract, "sha"))


class FakeReader:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def __call__(self, rows: list[dict[str, Any]], now: datetime) -> OnlineRead:
        if self.fail:
            raise self.fail
        values = {
            "stock": [float(len(r["item"])) for r in rows],
            "price_ratio": [r["price"] for r in rows],
        }
        return OnlineRead(values, [() for _ in rows])


def _core(slots: ModelSlots, **kwargs: Any) -> PredictorCore:
    return PredictorCore(
        FakeReader(kwargs.pop("fail", None)), SCHEMA, slots, Metrics(), lambda: NOW, **kwargs
    )


def _instances(n: int) -> list[Instance]:
    return [
        Instance(None, {"shop": "s", "item": f"item-{i}"}, {"asked_at": NOW, "price": 1.0})
        for i in range(n)
    ]


def test_request_models_accept_the_example_and_name_the_field_at_fault() -> None:
    wire = WireModels(SCHEMA, EXAMPLE, max_batch_size=4)
    parsed = wire.parse_instance(EXAMPLE, "instance")
    assert parsed.request.asked_at == NOW  # type: ignore[attr-defined]
    cases = [
        ({"request": {**EXAMPLE["request"], "price": "3.5"}}, "instance.request.price"),
        ({"request": {**EXAMPLE["request"], "price": float("nan")}}, "instance.request.price"),
        (
            {"request": {**EXAMPLE["request"], "asked_at": "2013-06-01T12:00:00"}},
            "instance.request.asked_at",
        ),
        (
            {"request": {**EXAMPLE["request"], "asked_at": "1900-01-01T00:00:00Z"}},
            "instance.request.asked_at",
        ),
        ({"entities": {"shop": "s1"}}, "instance.entities.item"),
        ({"entities": {"shop": "s1", "item": 3}}, "instance.entities.item"),
        ({"colour": "red"}, "instance.colour"),
    ]
    for change, field in cases:
        with pytest.raises(InvalidInput) as caught:
            wire.parse_instance({**EXAMPLE, **change}, "instance")
        assert caught.value.field == field
        assert caught.value.message.startswith(field)
    assert wire.parse_instance({**EXAMPLE, "entities": {"shop": "s1", "item": None}}, "i")


def test_each_error_carries_its_http_and_grpc_status() -> None:
    assert (InvalidInput("x", "f").http_status, InvalidInput("x").grpc_status) == (
        422,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert OnlineStoreUnavailable("x").http_status == 503
    assert NotReady("x").grpc_status == grpc.StatusCode.UNAVAILABLE
    assert InvalidInput("bad", "request.price").body() == {
        "code": "invalid_input",
        "message": "bad",
        "field": "request.price",
    }


def test_no_model_means_not_ready_and_a_store_failure_means_unavailable() -> None:
    with pytest.raises(NotReady):
        _core(ModelSlots()).predict(_instances(1), endpoint="t")
    core = _core(ModelSlots(champion=_model("1")), fail=ConnectionError("refused"))
    # Counters live in Feast's multiprocess folder, shared by every Metrics() of this process.
    before = core.metrics.store_errors._value.get()
    with pytest.raises(OnlineStoreUnavailable):
        core.predict(_instances(1), endpoint="t")
    assert core.metrics.store_errors._value.get() == before + 1


def test_the_circuit_opens_after_consecutive_failures_and_refuses_without_reading() -> None:
    reader = FakeReader(fail=TimeoutError("frozen"))
    breaker = CircuitBreaker(failures=2)
    core = PredictorCore(
        reader, SCHEMA, ModelSlots(champion=_model("1")), Metrics(), lambda: NOW, breaker=breaker
    )
    for _ in range(2):  # two reads fail: the second opens the circuit
        with pytest.raises(OnlineStoreUnavailable, match="did not answer"):
            core.predict(_instances(1), endpoint="t")
    assert breaker.open and core.metrics.breaker_open._value.get() == 1
    reader.fail = None  # the store is back, but nobody asks it until the probe says so
    errors, refused = (
        core.metrics.store_errors._value.get(),
        core.metrics.store_refused._value.get(),
    )
    with pytest.raises(OnlineStoreUnavailable, match="circuit open"):
        core.predict(_instances(1), endpoint="t")
    assert core.metrics.store_errors._value.get() == errors  # not read, so no new error
    assert core.metrics.store_refused._value.get() == refused + 1
    breaker.succeeded()  # what the probe does when the store answers
    assert len(core.predict(_instances(1), endpoint="t")) == 1
    reader.fail = TimeoutError("again")
    with pytest.raises(OnlineStoreUnavailable, match="did not answer"):
        core.predict(_instances(1), endpoint="t")
    assert not breaker.open  # a success in between: the count starts again


def _started_log(folder: Path, metrics: Metrics) -> PredictionLog:
    log = PredictionLog(
        folder,
        metrics,
        queue_size=10_000,
        flush_rows=10_000,
        flush_seconds=60,
        join_keys=SCHEMA.join_keys,
        request_fields=SCHEMA.request_fields,
    )
    log.start()
    return log


def test_challenger_share_is_sticky_by_entity_and_close_to_the_share() -> None:
    slots = ModelSlots(champion=_model("1"), challenger=_model("2", shift=1.0))
    core = _core(slots, challenger_share=0.3)
    first = core.predict(_instances(2000), endpoint="t")
    again = core.predict(_instances(2000), endpoint="t")
    assert [p.served_by for p in first] == [p.served_by for p in again]
    share = np.mean([p.served_by == "challenger" for p in first])
    assert 0.25 < share < 0.35
    assert {p.model_version for p in first if p.served_by == "challenger"} == {"2"}


def test_shadow_scores_the_challenger_without_returning_it(tmp_path: Path) -> None:
    metrics = Metrics()
    log = _started_log(tmp_path, metrics)
    slots = ModelSlots(champion=_model("1"), challenger=_model("2", shift=1.0))
    core = PredictorCore(FakeReader(), SCHEMA, slots, metrics, lambda: NOW, log, 0.0, True)
    answers = core.predict(_instances(5), endpoint="t", return_features=True)
    log.close()
    assert {a.served_by for a in answers} == {"champion"}
    assert answers[0].features == {"stock": 6.0, "price_ratio": 1.0}
    logged = read_prediction_log(tmp_path)
    assert sorted(logged["served_by"].unique()) == ["champion", "shadow"]
    assert (logged[FEATURE + "stock"] == 6.0).all() and len(logged) == 10


def test_a_full_log_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    metrics = Metrics()
    log = PredictionLog(
        tmp_path,
        metrics,
        queue_size=2,
        flush_rows=10,
        flush_seconds=60,
        join_keys=("k",),
        request_fields=(),
    )
    record = LogRecord(
        NOW,
        NOW,
        "t",
        ["a"],
        [{"k": "x"}],
        {"f": [1.0]},
        ["champion"],
        ["m"],
        ["1"],
        [0.5],
        [True],
        1.0,
    )
    before = metrics.log_dropped._value.get()  # the metrics may be shared between tests
    for _ in range(5):  # the writer is not started: the queue only fills
        log.append(record)
    assert metrics.log_dropped._value.get() - before == 3
    log.start()
    log.close()
    assert len(read_prediction_log(tmp_path)) == 2


def test_ttl_rule_nulls_never_written_stale_and_future_rows() -> None:
    hour = 3600.0
    now_s = NOW.timestamp()
    values = {"stock": [1.0, 2.0, 3.0, 4.0], "price_ratio": [1.0] * 4}
    stamps = {"stock": [now_s - hour / 2, 0.0, now_s - 2 * hour, now_s + 60]}
    read = apply_ttl(SCHEMA, values, stamps, NOW)
    assert read.values["stock"] == [1.0, None, None, None]
    assert read.missing == [(), ("stock",), ("stock",), ("stock",)]


def test_a_model_for_another_feature_service_is_refused() -> None:
    model = _model("1")
    check_fits(model.model, SCHEMA)
    other = ServiceSchema("other", (), (), ("stock", "price_ratio"), {}, {})
    with pytest.raises(ModelRefused, match="other"):
        check_fits(model.model, other)
    fewer = ServiceSchema("svc", (), (), ("stock",), {}, {})
    with pytest.raises(ModelRefused, match="price_ratio"):
        check_fits(model.model, fewer)


def test_request_path_redis_options_are_added_without_overriding_given_ones() -> None:
    settings = ServingSettings(online_store="redis", redis_connection="r:6380,socket_timeout=2")
    connection = request_path_settings(settings).redis_connection
    assert connection.startswith("r:6380,socket_timeout=2,")
    assert "socket_connect_timeout=0.1" in connection and "retry=null" in connection
    assert connection.count("socket_timeout") == 1
    sqlite = ServingSettings(online_store="sqlite", redis_connection="r:6380")
    assert request_path_settings(sqlite).redis_connection == "r:6380"  # untouched


def test_during_a_canary_the_champion_also_scores_the_challengers_rows(tmp_path: Path) -> None:
    metrics = Metrics()
    log = _started_log(tmp_path, metrics)
    champion, challenger = _model("1"), _model("2", shift=1.0)
    core = PredictorCore(
        FakeReader(),
        SCHEMA,
        ModelSlots(champion=champion, challenger=challenger),
        metrics,
        lambda: NOW,
        log,
        0.3,
        False,
    )
    observed = metrics.scores.labels("champion_paired")._sum
    before = observed.get()  # the metrics may be shared between tests: count the difference
    answers = core.predict(_instances(200), endpoint="t")
    log.close()
    routed = [a for a in answers if a.served_by == "challenger"]
    assert 0 < len(routed) < 200
    logged = read_prediction_log(tmp_path)
    paired = logged[logged["served_by"] == "shadow"]
    assert (logged["served_by"] != "shadow").sum() == 200  # every answer logged, none dropped
    assert sorted(paired["request_id"]) == sorted(a.request_id for a in routed)
    assert set(paired["model_version"]) == {"1"}  # the champion's scores, same rows
    expected = champion.model.score(
        {"stock": [6.0] * len(routed), "price_ratio": [1.0] * len(routed)}
    )
    assert np.allclose(sorted(paired["probability"]), sorted(expected))
    assert observed.get() - before == pytest.approx(sum(expected))  # once per routed row


def test_the_single_row_predictor_scores_as_the_batch_path_does() -> None:
    """The C API's single-row path against `Booster.predict` on a matrix, row by row: numbers,
    nulls, unparseable values, known, unseen and non-string categories."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 2))
    x[:, 1] = rng.integers(0, 3, size=600)
    y = (x[:, 0] + (x[:, 1] == 2) > 0.3).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 8},
        lgb.Dataset(x, y, categorical_feature=[1]),
        20,
    )
    contract = ModelContract(
        "m",
        "svc",
        "1",
        "y",
        (FeatureSpec("stock", "numeric"), FeatureSpec("shop", "categorical", ("a", "b", "c"))),
    )
    model = LoadedModel(booster, contract, "sha")
    rows = {
        "stock": [0.4, -1.2, None, "0.7", "far", True, float("nan"), 3],
        "shop": ["c", "a", "b", "zz", None, "c", 7, "b"],
    }
    batch = model.score(rows)
    single = [model.single.score(rows, k) for k in range(len(batch))]
    assert single == batch.tolist()
    assert len(set(single)) > 3  # the rows differ: the comparison means something


class CountingReader(FakeReader):
    def __init__(self, fail: Exception | None = None) -> None:
        super().__init__(fail)
        self.calls: list[int] = []

    def __call__(self, rows: list[dict[str, Any]], now: datetime) -> OnlineRead:
        self.calls.append(len(rows))
        return super().__call__(rows, now)


def test_singles_arriving_together_share_one_read_and_each_gets_its_own_answer() -> None:
    reader = CountingReader()
    core = PredictorCore(reader, SCHEMA, ModelSlots(champion=_model("1")), Metrics(), lambda: NOW)
    coalescer = Coalescer(core)
    instances = [
        Instance(f"r{i}", {"shop": "s", "item": "x" * i}, {"asked_at": NOW, "price": 1.0})
        for i in range(1, 6)
    ]

    async def together() -> list[Prediction]:
        calls = [coalescer.one(i, endpoint="t", return_features=True) for i in instances]
        return [prediction for prediction, _ in await asyncio.gather(*calls)]

    answers = asyncio.run(together())
    assert reader.calls == [5]  # one read for the five
    assert [a.request_id for a in answers] == ["r1", "r2", "r3", "r4", "r5"]
    assert [a.features["stock"] for a in answers if a.features] == [1.0, 2.0, 3.0, 4.0, 5.0]
    alone, _ = asyncio.run(coalescer.one(instances[0], endpoint="t", return_features=False))
    assert reader.calls == [5, 1] and alone.features is None
    assert alone.probability == answers[0].probability

    async def burst() -> list[Any]:  # more than a batch holds: batches of MAX_BATCH
        many = [
            coalescer.one(instances[k % 5], endpoint="t", return_features=False)
            for k in range(2 * MAX_BATCH + 3)
        ]
        return list(await asyncio.gather(*many))

    assert len(asyncio.run(burst())) == 2 * MAX_BATCH + 3
    assert reader.calls[2:] == [MAX_BATCH, MAX_BATCH, 3]


def test_a_failed_shared_read_answers_every_caller_with_its_error() -> None:
    core = _core(ModelSlots(champion=_model("1")), fail=TimeoutError("frozen"))
    coalescer = Coalescer(core)

    async def together() -> list[Any]:
        calls = [coalescer.one(i, endpoint="t", return_features=False) for i in _instances(3)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    answers = asyncio.run(together())
    assert len(answers) == 3
    assert all(isinstance(a, OnlineStoreUnavailable) for a in answers)


class OneBadRow(FakeReader):
    def __call__(self, rows: list[dict[str, Any]], now: datetime) -> OnlineRead:
        if any(r["item"] == "bad" for r in rows):
            raise ValueError("a key the store cannot encode")
        return super().__call__(rows, now)


def test_one_bad_instance_fails_alone_not_the_batch_it_arrived_with() -> None:
    core = PredictorCore(
        OneBadRow(), SCHEMA, ModelSlots(champion=_model("1")), Metrics(), lambda: NOW
    )
    coalescer = Coalescer(core)
    items = ["ok1", "bad", "ok2"]
    instances = [
        Instance(i, {"shop": "s", "item": i}, {"asked_at": NOW, "price": 1.0}) for i in items
    ]

    async def together() -> list[Any]:
        calls = [coalescer.one(i, endpoint="t", return_features=False) for i in instances]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    ok1, bad, ok2 = asyncio.run(together())
    assert isinstance(bad, ValueError)
    assert ok1[0].request_id == "ok1" and ok2[0].request_id == "ok2"


def test_times_sent_with_other_offsets_are_logged_as_the_same_instants(tmp_path: Path) -> None:
    """Chunks of the log convert separately; a chunk whose times carry another offset must
    still join the part (they did not: the whole flush was dropped)."""
    metrics = Metrics()
    log = _started_log(tmp_path, metrics)
    new_york = timezone(timedelta(hours=-5))
    n = 2 * CHUNK + 5
    for k in range(n):
        asked = (NOW + timedelta(minutes=k)).astimezone(new_york if k >= CHUNK else UTC)
        log.append(
            LogRecord(
                NOW,
                NOW,
                "t",
                [f"r{k}"],
                [{"shop": "s", "item": "i", "asked_at": asked, "price": 1.0}],
                {"stock": [float(k)]},
                ["champion"],
                ["m"],
                ["1"],
                [0.5],
                [True],
                1.0,
            )
        )
    log.close()
    logged = read_prediction_log(tmp_path).sort_values(
        "request_id", key=lambda c: c.str[1:].astype(int)
    )
    assert len(logged) == n
    expected = [pd.Timestamp(NOW + timedelta(minutes=k)) for k in range(n)]
    assert list(logged[REQUEST + "asked_at"]) == expected
