"""The canary: a sticky share of traffic goes to the challenger for a while; then its error
rate, latency and score distribution are compared with the champion's on the same window, and
it is promoted or rolled back. Scores are compared on the same rows: the service has the
champion score the challenger's requests too (not returned), so that two equal models show
no difference (on the two sticky halves, which hold different entities, they showed KS 0.087).

The share is a registry tag that every service following the registry polls, so a canary
acts on a running service (`--url`); with no live traffic to watch (this machine, the
tests, a replayed data set), the canary starts a service of its own and replays real requests
at it with locust. Either way the figures are the service's own, per role, from /metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from serving.core import PAIRED
from serving.process import ServiceProcess
from serving.settings import ServingSettings
from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.configuration import load_model_config
from skewless.quality import statistics
from skewless.records import CheckResult, StepVerdict
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHALLENGER, CHAMPION
from skewless.registry.versions import PromotionRefused, RegistryError
from skewless.settings import Settings

from . import server_metrics
from .config import CanaryConfig
from .locust_run import LoadPlan, LocustRun, signals_held
from .payload_file import write_payloads
from .payloads import replay_payloads
from .promotion import promote
from .records import record_step

ROLES = ("champion", "challenger")
REPLAY_ROWS = 2000  # real requests the canary's own traffic cycles through
LIVE_MARGIN_SECONDS = 120  # a canary killed outright stops counting this long after its end


@dataclass
class CanaryReport:
    model_name: str
    champion: str
    challenger: str
    share: float
    seconds: float
    started_at: str
    roles: dict[str, dict[str, float]] = field(default_factory=dict)
    score_ks: float = math.nan
    score_ks_critical: float = math.nan
    score_psi: float = math.nan  # reported, not judged
    score_paired: bool = False  # compared with the champion's scores on the same rows
    checks: list[CheckResult] = field(default_factory=list)
    action: str = ""  # promoted | rolled back

    @property
    def verdict(self) -> StepVerdict:
        return StepVerdict(tuple(self.checks))

    @property
    def passed(self) -> bool:
        return self.verdict.passed


def run_canary(
    settings: Settings,
    config: CanaryConfig,
    out_dir: Path,
    *,
    url: str | None = None,
    by: str,
    progress: Callable[[str], None] = print,
) -> CanaryReport:
    registry = ModelRegistry.of(settings)
    name = load_model_config(settings.model_file).name
    champion = registry.by_alias(name, CHAMPION)
    challenger = registry.by_alias(name, CHALLENGER)
    if champion is None or challenger is None:
        raise RegistryError(f"{name} needs both a champion and a challenger for a canary")
    ok, reason = registry.gate_passed(name, str(challenger.version))
    if not ok:  # it could never be promoted: do not send it traffic either
        raise PromotionRefused(reason)
    candidate = str(challenger.version)
    report = CanaryReport(
        name,
        str(champion.version),
        candidate,
        config.share,
        config.seconds,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    service: ServiceProcess | None = None
    traffic: LocustRun | None = None
    live = url is not None
    try:
        if live:  # every service following the registry: a tag they poll, with a deadline
            deadline = datetime.now(UTC) + timedelta(seconds=config.seconds + LIVE_MARGIN_SECONDS)
            registry.set_canary_share(name, config.share, until=deadline)
            # the live services' poll interval: their settings, from the same environment
            wait = ServingSettings().model_poll_seconds * 3 + 30
        else:  # a service of its own, told its share directly: live services see nothing
            service = ServiceProcess(
                {
                    **settings.as_env(),
                    "SKEWLESS_CHALLENGER_SHARE": str(config.share),
                    "SKEWLESS_SERVE_VERSION": "",  # follow the aliases
                    "SKEWLESS_PREDICTION_LOG": str(out_dir / "prediction_log"),
                },
                out_dir / "service.log",
            )
            service.start()
            url, wait = service.url, 30
        assert url is not None  # given, or the private service's
        progress(f"canary: {config.share:.0%} of {url}'s traffic to version {candidate}")
        _wait_for_challenger(url, candidate, wait)
        before = server_metrics.scrape(url)
        if service is not None:
            traffic = _replay(settings, config, service, out_dir)
            traffic.start().wait()
        else:
            time.sleep(config.seconds)
        after = server_metrics.scrape(url)
    finally:
        with signals_held():
            try:
                if traffic is not None:
                    traffic.stop()
                if service is not None:
                    service.stop()
            finally:
                if live:
                    registry.set_canary_share(name, None)
    _judge(report, config, server_metrics.delta(before, after), progress)
    if report.passed:
        promote(settings, candidate, by=by, why="canary passed")
        report.action = "promoted"
    else:
        registry.delete_alias(name, CHALLENGER)  # no more traffic to it
        report.action = "rolled back"
    record_step(
        registry,
        name,
        candidate,
        "canary",
        report.action,
        {**asdict(report), **report.verdict.to_report()},
    )
    progress(f"canary: version {candidate} {report.action}")
    return report


def _wait_for_challenger(url: str, version: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if version in server_metrics.loaded_models(server_metrics.scrape(url), "challenger"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the service at {url} did not load challenger {version} in {timeout:.0f} s")


def _replay(
    settings: Settings, config: CanaryConfig, service: ServiceProcess, out_dir: Path
) -> LocustRun:
    model_config = load_model_config(settings.model_file)
    store = feature_store.open_store(settings)
    schema = service_schema(store, model_config.feature_service)
    items, _ = replay_payloads(store, model_config, schema, REPLAY_ROWS, 0.0, seed=0)
    path = write_payloads(items, out_dir / "payloads.jsonl")
    plan = LoadPlan(config.protocol, config.replay_rate, config.seconds)
    return LocustRun(plan, service.url, service.grpc_target, path, out_dir)


def _judge(
    report: CanaryReport,
    config: CanaryConfig,
    delta: server_metrics.Samples,
    progress: Callable[[str], None],
) -> None:
    t = config.thresholds
    scores = {}
    for role in ROLES:
        predictions = server_metrics.counter(delta, "skewless_predictions", role=role)
        errors = server_metrics.counter(delta, "skewless_model_errors", role=role)
        latency = server_metrics.histogram(delta, "skewless_prediction_duration_seconds", role=role)
        scores[role] = server_metrics.histogram(delta, "skewless_prediction_score", role=role)
        report.roles[role] = {
            "predictions": predictions,
            "errors": errors,
            "error_ratio": errors / (predictions + errors) if predictions + errors else 0.0,
            "p50_ms": latency.quantile(0.5) * 1000,
            "p99_ms": latency.quantile(0.99) * 1000,
        }
    champ, chall = report.roles["champion"], report.roles["challenger"]
    # The champion's scores on the challenger's own rows, where the service pairs them
    # (serving/core.py): the same requests, so only the models differ. Otherwise the
    # champion's half of the traffic, which holds other entities.
    paired = server_metrics.histogram(delta, "skewless_prediction_score", role=PAIRED)
    report.score_paired = paired.total > 0
    against = paired if report.score_paired else scores["champion"]
    report.score_psi = psi(against, scores["challenger"])
    report.score_ks = ks_distance(against, scores["challenger"])
    report.score_ks_critical = statistics.ks_critical(
        against.total, scores["challenger"].total, t.score_alpha
    )

    def check(name: str, passed: bool, detail: str) -> None:
        report.checks.append(CheckResult(name, passed, detail, "canary"))
        progress(f"  {'pass' if passed else 'FAIL'}  {name}: {detail}")

    check(
        "enough challenger traffic",
        chall["predictions"] >= t.min_predictions,
        f"{chall['predictions']:g} predictions by the challenger, {champ['predictions']:g} by "
        f"the champion (at least {t.min_predictions})",
    )
    check(
        "error ratio",
        chall["error_ratio"] <= t.max_error_ratio
        and chall["error_ratio"] - champ["error_ratio"] <= t.max_error_ratio_increase,
        f"challenger {chall['error_ratio']:.4f}, champion {champ['error_ratio']:.4f}",
    )
    ratio = chall["p99_ms"] / champ["p99_ms"] if champ["p99_ms"] > 0 else math.inf
    check(
        "p99 latency",
        ratio <= t.max_p99_ratio,
        f"challenger {chall['p99_ms']:.2f} ms, champion {champ['p99_ms']:.2f} ms "
        f"(ratio {ratio:.2f}, at most {t.max_p99_ratio:g})",
    )
    shifted = report.score_ks > t.max_score_ks and report.score_ks > report.score_ks_critical
    check(
        "score distribution",
        not shifted,
        f"KS distance {report.score_ks:.3f} (at most {t.max_score_ks:g}, or below "
        f"{report.score_ks_critical:.3f}, the {t.score_alpha:g} significance bound); "
        f"PSI {report.score_psi:.3f}; "
        + (
            "the champion's scores on the same rows"
            if report.score_paired
            else "the champion's own half of the traffic (the service pairs no scores)"
        ),
    )


def ks_distance(a: server_metrics.Histogram, b: server_metrics.Histogram) -> float:
    """KS distance at the bucket bounds (a lower bound of the exact statistic)."""
    if not a.total or not b.total:
        return 1.0
    return statistics.ks_distance(np.asarray(a.counts) / a.total, np.asarray(b.counts) / b.total)


def psi(expected: server_metrics.Histogram, actual: server_metrics.Histogram) -> float:
    """Population stability index over the score buckets."""
    if not expected.total or not actual.total:
        return math.inf
    return statistics.psi(_shares(expected), _shares(actual))


def _shares(h: server_metrics.Histogram) -> list[float]:
    counts = [c - p for c, p in zip(h.counts, (0.0, *h.counts[:-1]), strict=True)]
    return [c / h.total for c in counts]
