"""The deployment gate: a candidate model version, served by the exact service code that will
serve it, called through its real API, checked for skew and loaded until it shows the latency
and rate it promises. Stages, each stopping the gate when it fails:

1. preflight: the version loads with the serving code (sha256 verified) and its contract
   fits the feature service; nothing is started otherwise;
2. start: `skewless serve` pinned to the version, on free loopback ports, until /readyz;
3. contract: golden requests over REST and gRPC get well-formed answers from that version,
   whose scores match batch scoring of the same rows;
4. load: locust at the configured rate; latency judged from the service's own histograms
   (/metrics before and after) and from locust's view, error ratio, achieved rate;
5. skew: the gate's own requests, from the service's prediction log, recomputed offline.

Whatever happens, including Ctrl-C, everything started is stopped before `run` returns.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import pandas as pd

from serving.batch import TIMESTAMP, score_rows
from serving.grpc_face import grpc_instance
from serving.process import ServiceProcess
from serving.protos import prediction_pb2 as pb
from serving.protos import prediction_pb2_grpc as pb_grpc
from serving.schemas import rest_body
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.artifacts import ModelArtifactError, ModelFetcher, ModelRefused, ServedModel
from skewless.models.configuration import load_model_config
from skewless.quality.prediction_log import read_prediction_log
from skewless.quality.skew import check_skew
from skewless.records import CheckResult, GateVerdict
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings

from . import server_metrics
from .config import GateConfig
from .locust_run import ClientStats, LoadPlan, LocustRun, signals_held
from .payloads import replay_payloads, write_payloads

log = logging.getLogger("skewless.gate")
LATENCY = "skewless_request_duration_seconds"
PREDICT_ENDPOINTS = {"rest": "/v1/predict", "grpc": "grpc/Predict"}
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


@dataclass
class GateReport:
    model_name: str
    version: str
    sha256: str
    blessed: bool
    config: dict[str, Any]
    out_dir: str
    started_at: str
    finished_at: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    stopped: str | None = None  # why the gate ended early, if it did
    server: dict[str, Any] = field(default_factory=dict)  # latency and errors, service view
    client: dict[str, Any] = field(default_factory=dict)  # per protocol, locust's view
    skew: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> GateVerdict:
        """What the registry and the controller read back from report.json."""
        return GateVerdict(
            tuple(self.checks),
            self.stopped,
            self.model_name,
            self.version,
            self.sha256,
            self.finished_at,
        )

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), **self.verdict.to_report()}


class GateStopped(Exception):
    """A stage failed: the rest does not run."""


class Gate:
    def __init__(
        self,
        settings: Settings,
        version: str,
        config: GateConfig,
        out_dir: Path,
        *,
        program: list[str] | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.config = config
        self.out_dir = out_dir
        self.program = program
        self.progress = progress
        self.model_config = load_model_config(settings.model_file)
        self.registry = ModelRegistry.of(settings)
        found = self.registry.version(self.model_config.name, version)
        self.report = GateReport(
            model_name=self.model_config.name,
            version=str(found.version),
            sha256=found.record.sha256,
            blessed=found.record.blessed,
            config=config.model_dump(mode="json"),
            out_dir=str(out_dir),
            started_at=_now(),
        )
        self.service: ServiceProcess | None = None
        self.locusts: list[LocustRun] = []

    # --- the stages ----------------------------------------------------------------------
    def run(self) -> GateReport:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        store = feature_store.open_store(self.settings)
        schema = service_schema(store, self.model_config.feature_service)
        loader = ModelFetcher(
            self.registry, self.model_config.name, schema, self.out_dir / "models"
        )
        try:
            candidate = self._preflight(loader)
            self._start()
            self._contract(store, schema, candidate)
            self._load(store, schema)
            self._stop_service()
            self._skew(store, schema, loader)
        except GateStopped as stop:
            self.report.stopped = str(stop)
        except KeyboardInterrupt:
            self.report.stopped = "interrupted"
            raise
        except Exception as exc:  # a candidate that hangs up, a locust that dies: a verdict
            log.exception("the gate stopped on an error")
            self.report.stopped = f"error: {type(exc).__name__}: {exc}"
        finally:
            with signals_held():
                self.close()
                loader.close()
            self.report.finished_at = _now()
        return self.report

    def _check(self, stage: str, name: str, passed: bool, detail: str) -> bool:
        self.report.checks.append(CheckResult(name, passed, detail, stage))
        self.progress(f"  {'pass' if passed else 'FAIL'}  {name}: {detail}")
        return passed

    def _stage_passed(self, stage: str) -> None:
        failed = [c.name for c in self.report.checks if c.stage == stage and not c.passed]
        if failed:
            raise GateStopped(f"{stage} failed: {', '.join(failed)}")

    def _preflight(self, loader: ModelFetcher) -> ServedModel:
        self.progress(f"preflight: version {self.report.version}")
        try:
            candidate = loader.load(self.report.version)
        except (ModelRefused, ModelArtifactError) as exc:
            self._check("preflight", "loads and fits the feature service", False, str(exc))
            raise GateStopped(f"preflight failed: {exc}") from None
        self._check(
            "preflight",
            "loads and fits the feature service",
            True,
            f"sha256 {candidate.sha256[:12]}, {len(candidate.model.contract.feature_names)} "
            f"features of {candidate.model.contract.feature_service}",
        )
        return candidate

    def _start(self) -> None:
        self.progress("start: the prediction service, pinned to the candidate")
        env = {
            **self.settings.as_env(),
            "SKEWLESS_SERVE_VERSION": self.report.version,
            "SKEWLESS_CHALLENGER_SHARE": "0",
            "SKEWLESS_CHALLENGER_SHADOW": "false",
            "SKEWLESS_WORKERS": "1",  # /metrics is per process: one, to read the server's view
            "SKEWLESS_PREDICTION_LOG": str(self.out_dir / "prediction_log"),
        }
        self.service = ServiceProcess(env, self.out_dir / "service.log", self.program)
        try:
            self.service.start(timeout=self.config.service.ready_timeout_seconds)
        except (RuntimeError, TimeoutError) as exc:
            self._check("start", "service ready", False, str(exc))
            raise GateStopped(f"start failed: {exc}") from None
        served = server_metrics.loaded_models(server_metrics.scrape(self.service.url), "champion")
        self._check(
            "start",
            "serves exactly the candidate",
            served == {self.report.version: self.report.sha256},
            f"REST {self.service.url}, gRPC {self.service.grpc_target}; loaded {served}",
        )
        self._stage_passed("start")

    def _contract(self, store: Any, schema: Any, candidate: ServedModel) -> None:
        assert self.service is not None
        n = self.config.golden.requests
        self.progress(f"contract: {n} golden requests over REST and gRPC, then batch scoring")
        rows = feature_store.recent_entity_rows(store, self.model_config, schema, n)
        feature_time = self._feature_time()
        rest, rest_errors = _golden_rest(self.service.url, rows, schema, self.report.version)
        grpc_scores, grpc_errors = _golden_grpc(self.service.grpc_target, rows, schema)
        errors = rest_errors + grpc_errors
        self._check(
            "contract",
            "golden responses well-formed",
            not errors,
            f"{2 * len(rows)} requests; " + ("; ".join(errors[:3]) or "all valid"),
        )
        self._stage_passed("contract")
        batch = score_rows(store, schema, candidate, rows.assign(**{TIMESTAMP: feature_time}))
        expected = batch["probability"].to_numpy()
        worst = max(
            float(abs(expected - pd.Series(rest).to_numpy()).max()),
            float(abs(expected - pd.Series(grpc_scores).to_numpy()).max()),
        )
        self._check(
            "contract",
            "scores match batch scoring",
            worst <= self.config.golden.score_tolerance,
            f"max |served - batch| {worst:.2e} (tolerance {self.config.golden.score_tolerance:g})",
        )
        self._stage_passed("contract")

    def _load(self, store: Any, schema: Any) -> None:
        assert self.service is not None
        load = self.config.load
        items, unknown = replay_payloads(
            store,
            self.model_config,
            schema,
            load.payload_rows,
            load.unknown_entity_share,
            load.seed,
        )
        path = write_payloads(items, self.out_dir / "payloads.jsonl")
        protocols = ["rest", "grpc"] if load.protocol == "both" else [load.protocol]
        rate = load.rate / len(protocols)
        self.progress(
            f"load: {load.rate:g} requests/s for {load.seconds:g} s over {'+'.join(protocols)} "
            f"({len(items)} real payloads, {unknown} with unknown entities)"
        )
        before = server_metrics.scrape(self.service.url)
        for protocol in protocols:
            run = LocustRun(
                LoadPlan(protocol, rate, load.seconds, load.user_rate),  # type: ignore[arg-type]
                self.service.url,
                self.service.grpc_target,
                path,
                self.out_dir,
            )
            self.locusts.append(run)  # listed before it starts: close() always finds it
            run.start()
        stats: dict[str, ClientStats] = {run.plan.protocol: run.wait() for run in self.locusts}
        after = server_metrics.scrape(self.service.url)
        self._judge_load(server_metrics.delta(before, after), stats, list(protocols))
        self._stage_passed("load")

    def _judge_load(
        self, delta: server_metrics.Samples, stats: dict[str, ClientStats], protocols: list[str]
    ) -> None:
        budgets = self.config.budgets
        endpoints = [PREDICT_ENDPOINTS[p] for p in protocols]
        per_endpoint = {
            e: server_metrics.histogram(delta, LATENCY, endpoint=e, stage="total")
            for e in endpoints
        }
        combined = server_metrics.add(list(per_endpoint.values()))
        server_q = {k: combined.quantile(q) * 1000 for k, q in QUANTILES.items()}
        requests = sum(
            server_metrics.counter(delta, "skewless_requests", endpoint=e) for e in endpoints
        )
        failed = requests - sum(
            server_metrics.counter(delta, "skewless_requests", endpoint=e, status=ok)
            for e in endpoints
            for ok in ("200", "OK")
        )
        self.report.server = {
            "requests": requests,
            "errors": failed,
            "error_ratio": failed / requests if requests else 1.0,
            "latency_ms": server_q,
            "per_endpoint_ms": {
                e: {k: h.quantile(q) * 1000 for k, q in QUANTILES.items()}
                for e, h in per_endpoint.items()
            },
            "cdf": [(b * 1000, share) for b, share in combined.cdf()],
        }
        self.report.client = {p: asdict(s) for p, s in stats.items()}
        target = self.config.load.rate
        for key in QUANTILES:
            budget = getattr(budgets.server, f"{key}_ms")
            self._check(
                "load",
                f"server {key}",
                server_q[key] <= budget,
                f"{server_q[key]:.2f} ms (budget {budget:g} ms)",
            )
        for protocol, s in stats.items():
            for key, column in (("p50", "50%"), ("p95", "95%"), ("p99", "99%")):
                value = s.percentiles_ms.get(column, math.inf)
                budget = getattr(budgets.client, f"{key}_ms")
                self._check(
                    "load",
                    f"client {protocol} {key}",
                    value <= budget,
                    f"{value:g} ms (budget {budget:g} ms)",
                )
        client_requests = sum(s.requests for s in stats.values())
        client_failures = sum(s.failures for s in stats.values())
        ratio = max(
            client_failures / client_requests if client_requests else 1.0,
            self.report.server["error_ratio"],
        )
        examples = [e for s in stats.values() for e in s.failure_examples][:2]
        self._check(
            "load",
            "error ratio",
            ratio <= budgets.max_error_ratio,
            f"{ratio:.4f} (client {client_failures} of {client_requests}, server {failed:g} of "
            f"{requests:g}; max {budgets.max_error_ratio:g})"
            + (f"; {examples}" if examples else ""),
        )
        achieved = sum(s.rate for s in stats.values())
        self._check(
            "load",
            "achieved rate",
            achieved >= budgets.min_rate_ratio * target,
            f"{achieved:.1f} requests/s of {target:g} (at least {budgets.min_rate_ratio:.0%})",
        )

    def _skew(self, store: Any, schema: Any, loader: ModelFetcher) -> None:
        self.progress("skew: the gate's own requests, recomputed offline")
        served = read_prediction_log(self.out_dir / "prediction_log")
        if served.empty:
            self._check("skew", "prediction log", False, "the service logged no predictions")
            return
        skew = check_skew(
            store,
            schema,
            served,
            loader,
            sample=self.config.skew.sample,
            tolerance=self.config.skew.tolerance,
        )
        self.report.skew = {
            "rows": skew.rows,
            "features_differing": {f.feature: f.share for f in skew.features},
            "score_mismatches": skew.score_mismatches,
            "max_score_diff": skew.max_score_diff,
        }
        self._check(
            "skew",
            "served features and scores equal offline",
            skew.passed,
            f"{skew.rows} of {len(served)} logged predictions; features differing: "
            f"{sorted(self.report.skew['features_differing']) or 'none'}; score mismatches "
            f"{skew.score_mismatches} (tolerance {self.config.skew.tolerance:g})",
        )

    # --- helpers -----------------------------------------------------------------------
    def _feature_time(self) -> datetime:
        """What the service reads features as of: the replay's now, or the wall clock (to
        the second, as the service)."""
        if self.settings.serve_clock == "replay":
            return self.model_config.as_of
        return datetime.now(UTC).replace(microsecond=0)

    def _stop_service(self) -> None:
        if self.service is not None:
            self.service.stop()  # SIGTERM: drains and flushes the prediction log

    def close(self) -> None:
        for run in self.locusts:
            run.stop()
        self._stop_service()


def _golden_rest(
    url: str, rows: pd.DataFrame, schema: Any, version: str
) -> tuple[list[float], list[str]]:
    """Each row alone, then all of them in one batch; every answer checked for form."""
    scores: list[float] = []
    errors: list[str] = []
    bodies = [rest_body(row, schema, request_id=f"golden-{k}") for k, row in rows.iterrows()]
    with httpx.Client(base_url=url, timeout=10) as client:
        for body in bodies:
            response = client.post("/v1/predict", json=body)
            if response.status_code != 200:
                errors.append(
                    f"REST {body['request_id']}: {response.status_code} {response.text[:200]}"
                )
                scores.append(math.nan)
                continue
            found = response.json()
            errors += _form_errors(found, body["request_id"], version)
            scores.append(float(found.get("probability", math.nan)))
        batch = client.post("/v1/predict/batch", json={"instances": [b for b in bodies]})
        if batch.status_code != 200:
            errors.append(f"REST batch: {batch.status_code} {batch.text[:200]}")
        else:
            answers = batch.json().get("predictions", [])
            if [a.get("probability") for a in answers] != scores:
                errors.append("REST batch answers differ from the single requests")
    return scores, errors


def _form_errors(found: dict[str, Any], request_id: str, version: str) -> list[str]:
    probability = found.get("probability")
    problems = []
    if found.get("request_id") != request_id:
        problems.append("request_id not echoed")
    if not isinstance(probability, float) or not 0.0 <= probability <= 1.0:
        problems.append(f"probability {probability!r}")
    elif found.get("decision") != (probability >= found.get("threshold", math.inf)):
        problems.append("decision disagrees with the threshold")
    if found.get("model_version") != version:
        problems.append(f"served by version {found.get('model_version')!r}")
    if not isinstance(found.get("missing_features"), list):
        problems.append("missing_features absent")
    return [f"REST {request_id}: {p}" for p in problems]


def _golden_grpc(target: str, rows: pd.DataFrame, schema: Any) -> tuple[list[float], list[str]]:
    scores: list[float] = []
    errors: list[str] = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionStub(channel)
        for k, row in rows.iterrows():
            request_id = f"golden-grpc-{k}"
            try:
                answer = stub.Predict(
                    pb.PredictRequest(instance=grpc_instance(row, schema, request_id)), timeout=10
                )
            except grpc.RpcError as exc:
                errors.append(f"gRPC {request_id}: {exc.code().name} {exc.details()}")
                scores.append(math.nan)
                continue
            if answer.request_id != request_id or not 0.0 <= answer.probability <= 1.0:
                errors.append(f"gRPC {request_id}: malformed answer")
            scores.append(answer.probability)
    return scores, errors


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
