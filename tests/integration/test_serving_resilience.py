"""The service under failure and change: Redis frozen or stopped, a hot swap during traffic,
refused models, and a graceful shutdown that loses no logged prediction."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pandas as pd
import pytest

from serving.grpc_face import grpc_instance
from serving.process import ServiceProcess
from serving.protos import prediction_pb2 as pb
from serving.protos import prediction_pb2_grpc as pb_grpc
from serving.schemas import rest_body
from skewless.hashing import sha256_file
from skewless.models.artifacts import CONTRACT_FILE, MODEL_FILE
from skewless.quality.prediction_log import FEATURE, read_prediction_log
from skewless.records import VersionTags
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.registry.versions import MODEL_DIR

from .serving_setup import ServingWorld, Stream


@pytest.fixture(scope="module")
def service(serving_world: ServingWorld) -> Iterator[ServiceProcess]:
    with serving_world.service("resilience") as running:
        yield running


@pytest.fixture(scope="module")
def row(serving_world: ServingWorld) -> pd.Series:
    return serving_world.requests(1).iloc[0]


@pytest.fixture(scope="module")
def body(serving_world: ServingWorld, row: pd.Series) -> dict:
    return rest_body(row, serving_world.schema)


def _predict(service: ServiceProcess, body: dict) -> httpx.Response:
    return httpx.post(service.url + "/v1/predict", json=body, timeout=10)


def _wait_for(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_frozen_or_stopped_redis_gives_fast_503_then_recovery(
    service: ServiceProcess, serving_world: ServingWorld, body: dict, row: pd.Series
) -> None:
    redis = serving_world.redis
    assert _predict(service, body).status_code == 200
    redis.freeze()
    try:
        started = time.monotonic()
        frozen = _predict(service, body)
        assert time.monotonic() - started < 1.0  # one 100 ms timeout, no retries
        assert frozen.status_code == 503
        assert frozen.json()["code"] == "online_store_unavailable"
        assert httpx.get(service.url + "/readyz", timeout=10).status_code == 503
        with grpc.insecure_channel(service.grpc_target) as channel:
            stub = pb_grpc.PredictionStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(
                    pb.PredictRequest(instance=grpc_instance(row, serving_world.schema)), timeout=10
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "online store" in caught.value.details()
    finally:
        redis.thaw()
    _wait_for(lambda: _predict(service, body).status_code == 200)

    redis.stop(save=True)
    try:
        stopped = _predict(service, body)
        assert stopped.status_code == 503 and "online store" in stopped.json()["message"]
        assert httpx.get(service.url + "/readyz", timeout=10).json()["ready"] is False
    finally:
        redis.start()
    _wait_for(lambda: httpx.get(service.url + "/readyz", timeout=10).status_code == 200)
    recovered = _predict(service, {**body, "return_features": True})
    assert recovered.status_code == 200 and not recovered.json()["missing_features"]
    metrics = httpx.get(service.url + "/metrics", timeout=10).text
    errors = next(
        line
        for line in metrics.splitlines()
        if line.startswith("skewless_online_store_errors_total")
    )
    assert float(errors.split()[-1]) >= 2


def test_a_frozen_redis_under_a_stream_costs_one_timeout_then_fast_503s_and_recovers(
    service: ServiceProcess, serving_world: ServingWorld, body: dict
) -> None:
    """The circuit breaker: the first read after the freeze waits its 100 ms timeout; every
    request after it is refused at once (not one more timeout); the probe lets traffic back
    within a second of the store answering again."""
    timings: list[tuple[float, float, int]] = []  # (sent, seconds, status)
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=service.url, timeout=10) as client:
            while not stop.is_set():
                sent = time.monotonic()
                status = client.post("/v1/predict", json=body).status_code
                timings.append((sent, time.monotonic() - sent, status))
                time.sleep(0.005)

    _wait_for(lambda: _predict(service, body).status_code == 200)
    before = _metric(service, "skewless_online_store_refused_total")
    thread = threading.Thread(target=stream)
    thread.start()
    try:
        time.sleep(0.5)
        frozen_at = time.monotonic()
        serving_world.redis.freeze()
        time.sleep(1.5)
        thawed_at = time.monotonic()
        serving_world.redis.thaw()
        time.sleep(1.5)
    finally:
        serving_world.redis.thaw()
        stop.set()
        thread.join(30)
    # From just before the freeze (a request in flight as the signal lands is the one that
    # waits) to the thaw.
    during = [t for t in timings if frozen_at - 0.05 <= t[0] < thawed_at]
    assert len(during) > 20, len(during)  # a real stream, not a handful
    first = next(i for i, (_, _, status) in enumerate(during) if status != 200)
    assert during[first][0] < frozen_at + 0.1  # the freeze was felt at once
    after = during[first + 1 :]
    assert all(status == 503 for _, _, status in after)
    waited = [seconds for _, seconds, _ in during[first:] if seconds >= 0.09]
    assert len(waited) == 1, waited  # one 100 ms timeout, then the circuit is open
    fast = sorted(seconds for _, seconds, _ in after)
    assert fast[int(0.95 * len(fast))] < 0.02 and fast[-1] < 0.09  # refused at once
    back = next(sent for sent, _, status in timings if sent >= thawed_at and status == 200)
    assert back - thawed_at < 1.0  # recovered by itself
    assert all(status == 200 for sent, _, status in timings if sent >= back)
    refused = _metric(service, "skewless_online_store_refused_total") - before
    assert refused >= len(after)  # every fast 503 counted
    assert _metric(service, "skewless_online_store_circuit_open") == 0


def _metric(service: ServiceProcess, name: str, absent: float | None = None) -> float:
    """The value of a series; `absent` where the service has none yet (a labelled counter
    appears at its first increment)."""
    text = httpx.get(service.url + "/metrics", timeout=10).text
    found = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    if not found and absent is not None:
        return absent
    return float(found[0])


# The service's event loop on one core and the load generator on the other, as in the serving
# benchmark: otherwise the two fight for both cores and a refusal's latency measures the fight.
SERVICE_CORE, LOAD_CORE = 0, 1
PINNED = {SERVICE_CORE, LOAD_CORE} <= os.sched_getaffinity(0)


def _h2load(url: str, body: Path, log: Path | None, *args: str) -> str:
    """h2load (nghttp2-client) over HTTP/1.1: C, so on 2 cores it can offer far more than one
    service worker answers, which no Python client here can."""
    command = ["h2load", "--h1", "-d", str(body), "-H", "content-type: application/json", *args]
    if PINNED:
        command = ["taskset", "-c", str(LOAD_CORE), *command]
    if log is not None:
        command.append(f"--log-file={log}")
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_an_open_loop_burst_at_three_times_capacity_is_shed_fast_and_counted(
    serving_world: ServingWorld, tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    row = serving_world.requests(1).iloc[0]
    body.write_text(json.dumps(rest_body(row, serving_world.schema)))
    # What an admitted request may take, queue included, on a shared 2-core box: 50 ms held
    # until the host ran at a third of its speed (the code before issue 23 took 73 ms there);
    # without shedding, admitted requests wait for seconds.
    budget_ms = 100.0
    with serving_world.service("overload", max_in_flight=8) as service:
        assert service.process is not None
        if PINNED:  # the event loop's thread (the process's first), not its helpers
            os.sched_setaffinity(service.process.pid, {SERVICE_CORE})
        url = service.url + "/v1/predict"
        # Clients that send headers and never their body hold no place among the 8.
        stalled = []
        for _ in range(12):
            sock = socket.create_connection(("127.0.0.1", service.rest_port))
            head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"
            sock.sendall(head)
            stalled.append(sock)
        time.sleep(0.2)
        answer = httpx.post(
            url, content=body.read_bytes(), timeout=10, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 200, answer.text
        for sock in stalled:
            sock.close()
        _h2load(url, body, None, "-c", "4", "-D", "1")  # warm: models, connections, caches
        closed = _h2load(url, body, None, "-c", "8", "-D", "2")
        capacity = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", closed).group(1))
        ok_before = _metric(service, 'skewless_requests_total{endpoint="/v1/predict",status="200"}')
        shed_before = _metric(
            service, 'skewless_requests_shed_total{endpoint="/v1/predict"}', absent=0.0
        )
        # Each client sends on its own schedule, one request at a time (HTTP/1.1): 32 of them
        # hold the rate when answers are slow, and no more wait in the same turn of the loop.
        clients = 32
        offered = 3 * capacity
        log = tmp_path / "burst.tsv"
        burst = _h2load(
            url, body, log, "-c", str(clients), "--rps", str(round(offered / clients)), "-D", "3"
        )
        progress = re.search(r"\d+ total, (\d+) started, (\d+) done", burst)
        assert progress, burst
        unlogged = int(progress.group(1)) - int(progress.group(2))  # still out when it stopped
        answers = [line.split("\t") for line in log.read_text().splitlines()]
        ok = [int(a[2]) / 1000 for a in answers if a[1] == "200"]
        shed = [int(a[2]) / 1000 for a in answers if a[1] == "503"]
        ok_after = _metric(service, 'skewless_requests_total{endpoint="/v1/predict",status="200"}')
        shed_after = _metric(service, 'skewless_requests_shed_total{endpoint="/v1/predict"}')
        waited = _metric(service, 'skewless_queue_wait_seconds_count{endpoint="/v1/predict"}')
        # Every place freed: 8 at once are all admitted (a request counted in flight and never
        # uncounted would refuse some of them, for ever), once the burst's last are answered.
        time.sleep(0.5)
        after = _h2load(url, body, None, "-c", "8", "-n", "64")
        assert re.search(r"status codes: 64 2xx, 0 3xx, 0 4xx, 0 5xx", after), after
    assert len(ok) + len(shed) == len(answers)  # only answers and fast refusals
    assert len(answers) > 2 * capacity * 3  # the burst was well beyond capacity
    assert shed and ok, (len(ok), len(shed))
    assert max(ok) <= budget_ms, sorted(ok)[-10:]  # nobody admitted waited for seconds
    assert sorted(shed)[len(shed) // 2] < 5.0  # refused in milliseconds (median)
    assert max(shed) <= budget_ms
    # Counted one for one (h2load logs no answer for the requests still out when it stops).
    assert len(shed) <= shed_after - shed_before <= len(shed) + unlogged
    assert len(ok) <= ok_after - ok_before <= len(ok) + unlogged
    assert waited >= ok_after  # every admitted request's wait observed


def _register_copy(
    world: ServingWorld, tags: dict[str, str] | None = None, run_id: str | None = None
) -> str:
    registry = ModelRegistry(world.settings.state_dir)
    champion = registry.by_alias(world.config.name, CHAMPION)
    assert champion is not None
    record = VersionTags.from_tags({**champion.tags, **(tags or {})})
    version = registry.register(world.config.name, run_id or champion.run_id, record)
    return str(version.version)


def _champion(world: ServingWorld) -> str:
    found = ModelRegistry(world.settings.state_dir).by_alias(world.config.name, CHAMPION)
    assert found is not None
    return str(found.version)


def _set_champion(world: ServingWorld, version: str) -> None:
    ModelRegistry(world.settings.state_dir).set_alias(world.config.name, CHAMPION, version)


def test_hot_swap_during_a_stream_loses_no_request(
    service: ServiceProcess, serving_world: ServingWorld, body: dict
) -> None:
    old = _choose_served(service, body)
    new = _register_copy(serving_world)
    with Stream(service, body) as stream:
        time.sleep(0.5)
        _set_champion(serving_world, new)
        _wait_for(
            lambda: any(
                isinstance(a, httpx.Response) and a.json().get("model_version") == new
                for a in stream.answers[-5:]
            )
        )
        time.sleep(0.5)
    answers = stream.answers
    assert len(answers) == stream.sent and len(answers) > 50
    assert all(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers)
    versions = [a.json()["model_version"] for a in answers]  # type: ignore[union-attr]
    assert set(versions) == {old, new}
    first_new = versions.index(new)
    assert versions[:first_new] == [old] * first_new and set(versions[first_new:]) == {new}


def _choose_served(service: ServiceProcess, body: dict) -> str:
    return str(_predict(service, body).json()["model_version"])


def _corrupt_artifact(world: ServingWorld, tmp_path: Path) -> str:
    registry = ModelRegistry(world.settings.state_dir)
    champion = registry.fetch(registry.by_alias(world.config.name, CHAMPION), tmp_path / "good")
    bad = tmp_path / "bad"
    shutil.copytree(champion.artifacts, bad)
    (bad / MODEL_FILE).write_text("tree\nthis is not a LightGBM model\n")
    run_id = _run_with(registry, bad)
    return _register_copy(world, {"sha256": sha256_file(bad / MODEL_FILE)}, run_id)


def _wrong_feature_service(world: ServingWorld, tmp_path: Path) -> str:
    registry = ModelRegistry(world.settings.state_dir)
    champion = registry.fetch(registry.by_alias(world.config.name, CHAMPION), tmp_path / "good")
    other = tmp_path / "other"
    shutil.copytree(champion.artifacts, other)
    contract = (other / CONTRACT_FILE).read_text()
    (other / CONTRACT_FILE).write_text(contract.replace('"delay_model_v1"', '"delay_model_v9"'))
    return _register_copy(world, None, _run_with(registry, other))


def _run_with(registry: ModelRegistry, model_folder: Path) -> str:
    """A run of its own holding these model files."""
    run_id = registry.start_run(registry.experiment_id("corrupt-models"))
    for path in model_folder.iterdir():
        registry.log_artifact(run_id, path, MODEL_DIR)
    return run_id


@pytest.mark.parametrize("kind", ["sha256 mismatch", "not a model", "other feature service"])
def test_a_bad_model_is_refused_while_the_old_one_serves(
    service: ServiceProcess, serving_world: ServingWorld, body: dict, tmp_path: Path, kind: str
) -> None:
    serving = _choose_served(service, body)
    before = _refusals(service)
    if kind == "sha256 mismatch":
        bad = _register_copy(serving_world, {"sha256": "0" * 64})
    elif kind == "not a model":
        bad = _corrupt_artifact(serving_world, tmp_path)
    else:
        bad = _wrong_feature_service(serving_world, tmp_path)
    _set_champion(serving_world, bad)
    try:
        _wait_for(lambda: _refusals(service) > before)
        answer = _predict(service, body)
        assert answer.status_code == 200 and answer.json()["model_version"] == serving
        assert httpx.get(service.url + "/readyz", timeout=10).status_code == 200
    finally:
        _set_champion(serving_world, serving)


def _refusals(service: ServiceProcess) -> float:
    for line in httpx.get(service.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith('skewless_model_loads_total{result="refused"}'):
            return float(line.split()[-1])
    return 0.0


def test_graceful_shutdown_drains_and_logs_every_served_prediction(
    serving_world: ServingWorld, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    service = serving_world.service("shutdown", prediction_log=log_dir, drain_seconds=1.0)
    service.start()
    try:
        rows = serving_world.requests(30)
        served: list[str] = []
        for i, row in rows.iterrows():
            answer = httpx.post(
                service.url + "/v1/predict",
                json=rest_body(row, serving_world.schema, request_id=f"single-{i}"),
                timeout=10,
            )
            assert answer.status_code == 200
            served.append(answer.json()["request_id"])
        batch = httpx.post(
            service.url + "/v1/predict/batch",
            json={"instances": [rest_body(r, serving_world.schema) for _, r in rows.iterrows()]},
            timeout=10,
        ).json()
        served += [p["request_id"] for p in batch["predictions"]]
        body = rest_body(rows.iloc[0], serving_world.schema)
        with Stream(service, body) as stream:
            time.sleep(0.3)
            assert service.process is not None
            signalled = len(stream.answers)
            service.process.send_signal(signal.SIGTERM)
            # Not ready at once, while requests are still answered during the drain period.
            _wait_for(lambda: httpx.get(service.url + "/readyz", timeout=10).status_code == 503, 5)
            during = len(stream.answers)
            time.sleep(0.3)
            assert len(stream.answers) > during
            assert service.process.wait(60) == 0
    finally:
        service.stop()
    ok = [a for a in stream.answers if isinstance(a, httpx.Response) and a.status_code == 200]
    # Every request is answered 200 until the signal; after it, answered or never taken in:
    # refused or reset at the transport once the service stops listening (a connection the
    # kernel had queued is reset when the listener closes). Never an error answer; and the
    # log check below proves that nothing the service did take in went unanswered.
    failed = [
        a if isinstance(a, httpx.HTTPError) else (a.status_code, a.text)
        for k, a in enumerate(stream.answers)
        if not (isinstance(a, httpx.Response) and a.status_code == 200)
        and not (k >= signalled and isinstance(a, httpx.TransportError))
    ]
    assert ok and not failed, failed
    served += [a.json()["request_id"] for a in ok]
    logged = read_prediction_log(log_dir)
    assert sorted(logged["request_id"]) == sorted(served)
    assert logged[FEATURE + "weather_temp"].notna().mean() > 0.5

    # The skew check over this log: nothing differs; a tampered copy fails, naming the feature.
    env = {**os.environ, **serving_world.env()}
    skewless = str(Path(sys.executable).with_name("skewless"))
    clean = subprocess.run(
        [skewless, "check-skew", "--log", str(log_dir), "--sample", "200"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    n = len(serving_world.schema.features)
    assert f"{n} of {n} features identical" in clean.stdout
    tampered_dir = tmp_path / "tampered" / "date=2013-12-30"
    tampered_dir.mkdir(parents=True)
    tampered = logged.copy()
    tampered[FEATURE + "carrier_7d_late_rate"] = tampered[FEATURE + "carrier_7d_late_rate"] + 0.01
    tampered.to_parquet(tampered_dir / "part-0.parquet")
    skewed = subprocess.run(
        [skewless, "check-skew", "--log", str(tmp_path / "tampered"), "--sample", "200"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert skewed.returncode == 1, skewed.stdout + skewed.stderr
    assert "carrier_7d_late_rate" in skewed.stdout


def test_batch_scoring_cli_is_chunked_and_resumable(
    serving_world: ServingWorld, tmp_path: Path
) -> None:
    rows = serving_world.requests(500).assign(event_timestamp=lambda f: f["requested_at"])
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)
    out = tmp_path / "scores"
    env = {**os.environ, **serving_world.env()}
    command = [
        str(Path(sys.executable).with_name("skewless")),
        "score",
        str(source),
        "--output",
        str(out),
        "--chunk-rows",
        "150",
    ]
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == 4
    scores = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert len(scores) == 500 and scores["probability"].between(0, 1).all()
    parts[2].unlink()  # as if the job died before its third chunk
    again = subprocess.run(command, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "3 of 4 chunks were already written" in again.stdout
    rescored = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet"))])
    assert rescored["probability"].tolist() == scores["probability"].tolist()
    other = subprocess.run([*command[:-1], "100"], env=env, capture_output=True, text=True)
    assert other.returncode != 0 and "another job" in (other.stdout + other.stderr)
    bad = tmp_path / "bad.csv"
    rows.drop(columns=["distance"]).to_csv(bad, index=False)
    refused = subprocess.run(
        [*command[:2], str(bad), "--output", str(tmp_path / "x")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "distance" in refused.stdout + refused.stderr
