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
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from serving.batch import TIMESTAMP, score_rows
from serving.process import ServiceProcess
from skewless.clock import now as clock_now
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.artifacts import ModelArtifactError, ModelFetcher, ModelRefused, ServedModel
from skewless.models.configuration import load_model_config
from skewless.quality.prediction_log import read_prediction_log
from skewless.quality.skew import check_skew
from skewless.records import CheckResult
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings

from . import host_load, server_metrics
from .config import GateConfig
from .gate_report import GateReport, now
from .golden import golden_grpc, golden_rest
from .load_judgement import judge_load
from .locust_run import ClientStats, LoadPlan, LocustRun, signals_held
from .payload_file import write_payloads
from .payloads import replay_payloads

log = logging.getLogger("skewless.gate")


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
            started_at=now(),
        )
        self.service: ServiceProcess | None = None
        self.locusts: list[LocustRun] = []

    # --- the stages ----------------------------------------------------------------------
    def run(self) -> GateReport:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        store = feature_store.open_store(self.settings)
        schema = service_schema(store, self.model_config.feature_service)
        loader = ModelFetcher(
            self.registry,
            self.model_config.name,
            schema,
            self.out_dir / "models",
            allow_definition_skew=self.settings.definition_skew == "allow",
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
            self.report.finished_at = now()
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
        rest, rest_errors = golden_rest(self.service.url, rows, schema, self.report.version)
        grpc_scores, grpc_errors = golden_grpc(self.service.grpc_target, rows, schema)
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
        self._wait_for_the_first_log_part()
        session = self.service.process.pid if self.service.process else None
        host_before = host_load.sample(session)
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
        host = host_load.between(host_before, host_load.sample(session))
        if host is not None:
            self.report.host = host.to_json()
            self.progress(f"  host: {host.describe()}")
        self._judge_load(server_metrics.delta(before, after), stats, list(protocols))
        try:
            self._stage_passed("load")
        except GateStopped as stop:
            if host is not None and host.busy:  # the verdict stands; its circumstances are said
                raise GateStopped(f"{stop} (a busy host: {host.describe()})") from None
            raise

    def _wait_for_the_first_log_part(self, timeout: float = 15.0) -> None:
        """The prediction log's first part (the contract stage's predictions) written before
        the measured load: its writer's first flush pays cold imports and files, ~150 ms of CPU
        that would otherwise land in the load's tail on two cores. Waits on the part, not a
        clock; a log that writes nothing in `timeout` is the skew stage's to judge."""
        log = self.out_dir / "prediction_log"
        deadline = time.monotonic() + timeout
        while not any(log.rglob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _judge_load(
        self, delta: server_metrics.Samples, stats: dict[str, ClientStats], protocols: list[str]
    ) -> None:
        judgement = judge_load(self.config, delta, stats, protocols)
        self.report.server, self.report.client = judgement.server, judgement.client
        for name, passed, detail in judgement.checks:
            self._check("load", name, passed, detail)

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
        moment = clock_now(self.settings, self.model_config.as_of)
        return moment if self.settings.serve_clock == "replay" else moment.replace(microsecond=0)

    def _stop_service(self) -> None:
        if self.service is not None:
            self.service.stop()  # SIGTERM: drains and flushes the prediction log

    def close(self) -> None:
        for run in self.locusts:
            run.stop()
        self._stop_service()
