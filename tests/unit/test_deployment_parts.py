"""The gate's and canary's arithmetic and configuration, without services: quantiles read
off Prometheus histograms, PSI, strict YAML, the report page, and the registry's record of
champion moves (on a real MLflow SQLite store in a temporary folder)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from loadtests import server_metrics
from loadtests.canary import CanaryReport, _judge, ks_distance, psi
from loadtests.config import CONFIG_DIR, load_canary_config, load_gate_config
from loadtests.gate_report import GateReport
from loadtests.payloads import UNKNOWN, unknown_keys
from loadtests.report import render_html
from skewless.features.service import ServiceSchema
from skewless.quality.statistics import ks_critical
from skewless.records import CheckResult
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.registry.versions import RegistryError
from skewless.strict_yaml import ConfigError
from tests.support.registry_state import mlflow_client, record_passed_gate, register_versions


class Scraped:
    """A histogram in a registry of its own, scraped as the gate scrapes /metrics. Each gets
    a name of its own: importing Feast puts prometheus_client in multiprocess mode, where two
    metrics of the same name in one process share their values."""

    count = 0

    def __init__(self, buckets: tuple[float, ...]) -> None:
        Scraped.count += 1
        self.name = f"t{Scraped.count}_seconds"
        self.registry = CollectorRegistry()
        self.histogram = Histogram(self.name, "test", buckets=buckets, registry=self.registry)

    def observe(self, values: list[float]) -> Scraped:
        for v in values:
            self.histogram.observe(v)
        return self

    def samples(self) -> server_metrics.Samples:
        return server_metrics.parse(generate_latest(self.registry).decode())

    def read(self, samples: server_metrics.Samples | None = None) -> server_metrics.Histogram:
        return server_metrics.histogram(self.samples() if samples is None else samples, self.name)


def test_quantiles_from_buckets_interpolate_within_the_bucket():
    values = [0.0015] * 50 + [0.003] * 49 + [0.007]
    h = Scraped((0.001, 0.002, 0.004, 0.008)).observe(values).read()
    assert h.total == 100
    assert 0.001 <= h.quantile(0.5) <= 0.002  # half the requests are in (1, 2] ms
    assert 0.002 < h.quantile(0.95) <= 0.004
    assert 0.004 < h.quantile(0.999) <= 0.008


def test_a_quantile_beyond_the_last_bucket_is_its_bound_not_infinity():
    h = Scraped((0.001, 0.01)).observe([0.5] * 10).read()
    assert h.quantile(0.99) == pytest.approx(0.01)


def test_delta_subtracts_what_was_there_before():
    scraped = Scraped((0.001, 0.002)).observe([0.0015] * 10)
    before = scraped.samples()
    after = scraped.observe([0.0005] * 5).samples()
    h = scraped.read(server_metrics.delta(before, after))
    assert h.total == 5 and h.quantile(0.5) <= 0.001


def test_psi_is_zero_for_equal_scores_and_large_for_shifted_ones():
    buckets = tuple(k / 10 for k in range(1, 11))
    low = Scraped(buckets).observe([0.05, 0.15, 0.25] * 30).read()
    same = Scraped(buckets).observe([0.05, 0.15, 0.25] * 10).read()
    high = Scraped(buckets).observe([0.75, 0.85, 0.95] * 30).read()
    assert psi(low, same) == pytest.approx(0.0, abs=1e-9)
    assert psi(low, high) > 1.0
    assert math.isinf(psi(low, server_metrics.Histogram((), ())))


def test_the_shipped_configurations_load_and_a_typo_fails_naming_the_field(tmp_path: Path):
    assert load_gate_config().load.rate > 0
    assert load_gate_config(CONFIG_DIR / "gate-1000rps.yaml").load.rate == 1000
    assert 0 < load_canary_config().share <= 1
    text = (CONFIG_DIR / "gate.yaml").read_text().replace("p99_ms: 25", "p99_msec: 25")
    (tmp_path / "gate.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"budgets\.server\.p99"):
        load_gate_config(tmp_path / "gate.yaml")


def test_unknown_entities_replace_every_join_key_of_about_the_share():
    schema = ServiceSchema(
        name="s",
        join_keys=("origin", "tailnum"),
        request_fields=(),
        features=(),
        ttl={},
        kinds={},
    )
    rows = pd.DataFrame({"origin": ["JFK"] * 1000, "tailnum": ["N1"] * 1000})
    mask = unknown_keys(rows, schema, 0.2, seed=1)
    assert 150 < mask.sum() < 250
    assert rows.loc[mask, "origin"].str.startswith(UNKNOWN).all()
    assert rows.loc[mask, "tailnum"].str.startswith(UNKNOWN).all()
    assert (rows.loc[~mask, "origin"] == "JFK").all()


def test_the_report_page_says_the_verdict_and_plots_both_views():
    report = GateReport("m", "2", "abc", True, {}, "/tmp/x", "t0", "t1")
    report.checks = [CheckResult("server p99", False, "30 ms (budget 25 ms)", "load")]
    report.server = {
        "requests": 10,
        "errors": 0,
        "error_ratio": 0.0,
        "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 30.0},
        "per_endpoint_ms": {},
        "cdf": [(1.0, 0.5), (2.0, 0.95), (50.0, 1.0)],
    }
    report.client = {
        "rest": {
            "requests": 10,
            "failures": 0,
            "rate": 10.0,
            "percentiles_ms": {"50%": 5.0, "99%": 40.0},
            "failure_examples": [],
        }
    }
    page = render_html(report.to_json())
    assert "FAILED" in page and "server p99" in page and "30 ms (budget 25 ms)" in page
    assert page.count("<polyline") == 2 and "locust-rest.html" in page


def test_champion_moves_are_recorded_and_rollback_walks_back(tmp_path: Path):
    registry = ModelRegistry(tmp_path)
    versions = register_versions(registry, "m", 3)
    for version in versions[1:]:
        record_passed_gate(registry, "m", version)
    with pytest.raises(RegistryError, match="no champion"):
        registry.rollback_target("m")
    registry.move_champion("m", versions[0], action="pipeline", by="a", why="first")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback_target("m")
    with pytest.raises(RegistryError, match="already the champion"):  # no self-moves
        registry.move_champion("m", versions[0], action="promote", by="a", why="again")
    registry.move_champion("m", versions[1], action="promote", by="b", why="better")
    registry.move_champion("m", versions[2], action="promote", by="c", why="better still")
    assert registry.rollback_target("m") == versions[1]
    assert registry.rollback_champion("m", by="d", why="slow").version == versions[1]
    assert registry.rollback_target("m") == versions[0]  # twice back: two promotions back
    assert str(registry.by_alias("m", CHAMPION).version) == versions[1]
    history = registry.champion_history("m")
    assert [(h.version, h.previous, h.action, h.by) for h in history] == [
        (versions[0], None, "pipeline", "a"),
        (versions[1], versions[0], "promote", "b"),
        (versions[2], versions[1], "promote", "c"),
        (versions[1], versions[2], "rollback", "d"),
    ]


def test_the_canary_share_is_a_tag_that_comes_and_goes(tmp_path: Path):
    registry = ModelRegistry(tmp_path)
    mlflow_client(registry).create_registered_model("m")
    assert registry.canary_share("m") is None
    soon = datetime.now(UTC) + timedelta(minutes=5)
    registry.set_canary_share("m", 0.25, until=soon)
    assert registry.canary_share("m") == 0.25
    registry.set_canary_share("m", None)
    assert registry.canary_share("m") is None
    # A canary killed before its clean-up stops counting at its deadline.
    registry.set_canary_share("m", 0.25, until=datetime.now(UTC) - timedelta(seconds=1))
    assert registry.canary_share("m") is None


def test_ks_flags_a_large_significant_shift_only():
    buckets = tuple(k / 10 for k in range(1, 11))
    base = Scraped(buckets).observe([0.05, 0.15, 0.25] * 300).read()
    same = Scraped(buckets).observe([0.05, 0.15, 0.25] * 30).read()
    shifted = Scraped(buckets).observe([0.55, 0.65, 0.75] * 30).read()
    assert ks_distance(base, same) == pytest.approx(0.0)
    assert ks_distance(base, shifted) == pytest.approx(1.0)
    # The significance bound shrinks with the samples: 1.95 * sqrt((n + m) / (n m)) at 0.001.
    assert ks_critical(900, 90, 0.001) == pytest.approx(1.949 * math.sqrt(990 / 81000), rel=1e-3)
    assert ks_critical(90_000, 9_000, 0.001) < ks_critical(900, 90, 0.001) / 9


def _role_samples(role: str, predictions: int, errors: int, latency_s: float, score: float):
    """What a service's /metrics would add up to over a canary window, for one role."""
    samples: server_metrics.Samples = {
        ("skewless_predictions_total", (("role", role), ("version", "1"))): predictions,
        ("skewless_model_errors_total", (("role", role),)): errors,
    }
    for name, value, bounds in (
        ("skewless_prediction_duration_seconds", latency_s, (0.001, 0.01, 0.1)),
        ("skewless_prediction_score", score, tuple(k / 10 for k in range(1, 11))),
    ):
        for bound in (*bounds, math.inf):
            count = predictions if value <= bound else 0
            le = "+Inf" if bound == math.inf else str(bound)
            samples[(f"{name}_bucket", (("le", le), ("role", role)))] = count
    return samples


@pytest.mark.parametrize(
    ("challenger", "failing"),
    [
        ((300, 0, 0.0005, 0.35), []),
        ((300, 30, 0.0005, 0.35), ["error ratio"]),
        ((300, 0, 0.05, 0.35), ["p99 latency"]),
        ((300, 0, 0.0005, 0.85), ["score distribution"]),
        ((50, 0, 0.0005, 0.35), ["enough challenger traffic"]),
    ],
)
def test_the_canary_judges_each_threshold(challenger: tuple, failing: list[str]):
    config = load_canary_config()
    report = CanaryReport("m", "1", "2", 0.1, 60, "t0")
    delta = {
        **_role_samples("champion", 2700, 0, 0.0005, 0.35),
        **_role_samples("challenger", *challenger),
    }
    _judge(report, config, delta, progress=lambda _: None)
    assert [c.name for c in report.checks if not c.passed] == failing
    assert report.passed == (not failing)


def _paired_scores(predictions: int, score: float) -> server_metrics.Samples:
    """The champion's scores on the challenger's rows, as a pairing service exposes them."""
    samples: server_metrics.Samples = {}
    for bound in (*tuple(k / 10 for k in range(1, 11)), math.inf):
        le = "+Inf" if bound == math.inf else str(bound)
        key = ("skewless_prediction_score_bucket", (("le", le), ("role", "champion_paired")))
        samples[key] = predictions if score <= bound else 0
    return samples


@pytest.mark.parametrize(("paired_score", "shifted"), [(0.85, False), (0.35, True)])
def test_the_canary_compares_scores_on_the_same_rows_when_the_service_pairs_them(
    paired_score: float, shifted: bool
):
    """The challenger scores 0.85 on its rows; the champion's own half scores 0.35 (other
    entities). What counts is the champion on the challenger's rows."""
    config = load_canary_config()
    report = CanaryReport("m", "1", "2", 0.1, 60, "t0")
    delta = {
        **_role_samples("champion", 2700, 0, 0.0005, 0.35),
        **_role_samples("challenger", 300, 0, 0.0005, 0.85),
        **_paired_scores(300, paired_score),
    }
    _judge(report, config, delta, progress=lambda _: None)
    assert report.score_paired
    failed = [c.name for c in report.checks if not c.passed]
    assert failed == (["score distribution"] if shifted else [])
