"""Does monitoring see what was served as it was: drift where there is drift (and alarms only
where the model cares), labels only once known, performance as scikit-learn computes it,
each version against its own reference, a report a browser renders, and clear refusals?"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from monitoring.config import load_monitoring_config
from monitoring.run import HISTORY_FILE, REPORT_FILE, RESULT_FILE, Period, monitor
from skewless.errors import BadInput
from skewless.features import store as feature_store
from skewless.features.outcomes import join_labels, outcome_source
from skewless.features.store import file_source_path
from skewless.models.configuration import load_model_config
from skewless.quality.monitoring_result import FeatureDrift, MonitoringResult, VersionResult
from skewless.quality.prediction_log import FEATURE, read_prediction_log

from .monitoring_setup import MARCH, SEPTEMBER, MonitoringWorld

UNTIL = MARCH[1] + timedelta(days=1)  # every March label of the log is known by then


def _monitor(world: MonitoringWorld, log: str, output: Path, skew_sample: int = 0, **cfg: Any):  # type: ignore[no-untyped-def]
    config = load_model_config(world.config_file(skew_sample))
    monitoring_config = load_monitoring_config(config)
    if cfg:
        monitoring_config = monitoring_config.model_copy(update=cfg)
    settings = world.with_log(log)
    period = Period(None, SEPTEMBER[1] + timedelta(days=1) if log == "september" else UNTIL)
    return monitor(settings, config, monitoring_config, period, output)


def _version(result: MonitoringResult, version: str) -> VersionResult:
    found = result.version(version)
    assert found is not None, [v.version for v in result.versions]
    return found


def _drift(version: VersionResult, feature: str) -> FeatureDrift:
    return next(d for d in version.drift.features if d.feature == feature)


def _planted_log(world: MonitoringWorld, feature: str, folder: Path) -> Path:
    """A copy of the real March log with one numeric feature moved by two of its standard
    deviations (every other column as served)."""
    source = world.logs["march"]
    values = read_prediction_log(source)[FEATURE + feature].astype("float64")
    shift = 2 * float(values.std())
    for part in source.glob("date=*/part-*.parquet"):
        table = pq.read_table(part).to_pandas()
        table[FEATURE + feature] = table[FEATURE + feature].astype("float64") + shift
        target = folder / part.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        table.to_parquet(target, index=False)
    return folder


def test_a_planted_drift_is_flagged_and_named_and_the_real_log_is_not(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    plain = _monitor(monitoring_world, "march", tmp_path / "plain")
    v1 = _version(plain.result, "1")
    importance = {d.feature: d.importance for d in v1.drift.features}
    numeric = [d.feature for d in v1.drift.features if d.kind == "numeric"]
    top = max(numeric, key=lambda f: importance[f])
    assert importance[top] > 0.1, importance  # the model leans on it
    # v1 serving its own training fortnight: nothing drifted, no alarm.
    assert v1.drift.drifted == [], v1.drift.drifted
    assert not [a for a in v1.alerts if a.condition == "data_drift"]

    monitoring_world.logs["planted"] = _planted_log(monitoring_world, top, tmp_path / "log")
    alert_config = load_monitoring_config(monitoring_world.config).alerts.model_copy(
        update={"drifted_importance": 0.1}
    )
    planted = _monitor(monitoring_world, "planted", tmp_path / "planted", alerts=alert_config)
    v1p = _version(planted.result, "1")
    assert v1p.drift.drifted == [top]
    assert _drift(v1p, top).drifted is True
    data_drift = [a for a in v1p.alerts if a.condition == "data_drift"]
    assert data_drift and top in data_drift[0].message
    assert v1p.distributions[0].feature == top  # plotted first


def test_drift_in_a_feature_the_model_barely_uses_is_reported_but_does_not_alert(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    plain = _monitor(monitoring_world, "march", tmp_path / "plain")
    v1 = _version(plain.result, "1")
    numeric = [d for d in v1.drift.features if d.kind == "numeric" and d.missing_rate < 0.5]
    unused = min(numeric, key=lambda d: d.importance)
    assert unused.importance < 0.01, unused
    monitoring_world.logs["unused"] = _planted_log(
        monitoring_world, unused.feature, tmp_path / "log"
    )
    planted = _monitor(monitoring_world, "unused", tmp_path / "planted")
    v1p = _version(planted.result, "1")
    assert unused.feature in v1p.drift.drifted  # reported
    assert v1p.drift.drifted_importance < 0.3
    assert not [a for a in v1p.alerts if a.condition == "data_drift"]


def test_a_label_known_one_second_after_the_monitoring_time_is_not_used(
    monitoring_world: MonitoringWorld,
) -> None:
    settings = monitoring_world.settings
    store = feature_store.open_store(settings)
    source = outcome_source(store, monitoring_world.config)
    outcomes = pd.read_parquet(file_source_path(store, "flight_outcomes"))
    some = outcomes.iloc[[10, 5000, 20000]]
    ids = some["flight_id"].astype(str).reset_index(drop=True)
    for k, row in enumerate(some.itertuples()):
        known = row.outcome_known_at.to_pydatetime()
        before = join_labels(store, source, ids.iloc[[k]], known - timedelta(seconds=1))
        after = join_labels(store, source, ids.iloc[[k]], known + timedelta(seconds=1))
        assert np.isnan(before["label"].iloc[0])
        assert after["label"].iloc[0] == row.departed_late
        assert after["label_known_at"].iloc[0] == row.outcome_known_at


def test_performance_equals_scikit_learn_on_the_same_joined_rows(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    outcome = _monitor(monitoring_world, "march", tmp_path / "out")
    v1 = _version(outcome.result, "1")
    log = read_prediction_log(monitoring_world.logs["march"])
    store = feature_store.open_store(monitoring_world.settings)
    outcomes = pd.read_parquet(file_source_path(store, "flight_outcomes"))
    known = outcomes[outcomes["event_timestamp"] <= pd.Timestamp(UNTIL)]
    joined = log.merge(known, left_on="request_id", right_on="flight_id", how="inner")
    y, p = joined["departed_late"].to_numpy(), joined["probability"].to_numpy()
    overall = v1.performance.overall
    assert overall.rows == len(joined) == v1.labels.labelled
    assert overall.roc_auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert overall.log_loss == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), abs=1e-12)
    assert overall.brier == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert overall.positive_rate == pytest.approx(y.mean(), abs=1e-12)
    bins = np.clip(np.floor(p * 10).astype(int), 0, 9)
    ece = sum(
        (bins == b).mean() * abs(p[bins == b].mean() - y[bins == b].mean())
        for b in range(10)
        if (bins == b).any()
    )
    assert overall.ece == pytest.approx(ece, abs=1e-12)
    jfk = next(g for g in v1.performance.segments["origin"] if g.value == "JFK")
    mask = joined["entity.origin"] == "JFK"
    assert jfk.roc_auc == pytest.approx(roc_auc_score(y[mask], p[mask]), abs=1e-12)
    assert jfk.predictions == int((log["entity.origin"] == "JFK").sum())


def test_each_version_is_compared_with_its_own_reference(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    """Both versions served the first half of September; v2 was trained on it, v1 on March.
    September's weather is drift for v1 and none for v2."""
    outcome = _monitor(monitoring_world, "september", tmp_path / "out")
    v1, v2 = _version(outcome.result, "1"), _version(outcome.result, "2")
    assert v1.rows == v2.rows > 5000
    assert _drift(v1, "weather_temp").drifted is True
    assert _drift(v2, "weather_temp").drifted is False
    assert v2.drift.drifted == []
    assert v1.reference.test_metrics != v2.reference.test_metrics


def _cli(
    world: MonitoringWorld, log: Path, output: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SKEWLESS_REPO_PATH": str(world.settings.repo_path),
        "SKEWLESS_STATE_DIR": str(world.settings.state_dir),
        "SKEWLESS_MODEL_FILE": str(world.config_file(100)),
        "SKEWLESS_PREDICTION_LOG": str(log),
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", "monitor", "--output", str(output), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_command_writes_a_report_that_a_browser_renders(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    output = tmp_path / "report"
    done = _cli(
        monitoring_world, monitoring_world.logs["march"], output, "--until", UNTIL.isoformat()
    )
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"monitored [\d,]+ predictions", done.stdout), done.stdout
    result = MonitoringResult.from_json((output / RESULT_FILE).read_text())
    assert result.predictions > 5000
    history = pd.read_parquet(output / HISTORY_FILE)
    assert {"roc_auc", "drifted_importance", "label_coverage"} <= set(history["metric"])
    assert history["window_start"].dropna().dt.tz is not None
    skew = result.versions[0].skew
    assert skew is not None and skew.passed is True  # replayed = recomputed

    page = output / REPORT_FILE
    html = page.read_text()
    assert "<script" not in html  # nothing to run, nothing to fail in a console
    assert not re.search(r"""(src|href)=["']https?:""", html)  # nothing loaded from a network
    chromium = shutil.which("chromium")
    assert chromium, "scripts/test installs chromium"
    common = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run(
        [chromium, *common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "CONSOLE" not in dom.stderr, dom.stderr[-2000:]
    svgs = re.findall(r"<svg[^>]*>", dom.stdout)
    assert len(svgs) >= 5, len(svgs)
    assert dom.stdout.count("<path") > 100  # the plots were drawn, not left empty
    for title in ("Drift per feature over time", "Score distribution", "ROC AUC"):
        assert title in dom.stdout
    shot = tmp_path / "page.png"
    subprocess.run(
        [chromium, *common, "--window-size=1300,3000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # plots and tables, not a blank page


def _one_line_error(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0], done.stderr


@pytest.mark.parametrize("case", ["empty log", "no log folder", "no labels yet"])
def test_bad_input_gets_one_line_and_exit_2_and_nothing_written(
    monitoring_world: MonitoringWorld, tmp_path: Path, case: str
) -> None:
    output = tmp_path / "report"
    output.mkdir()
    (output / RESULT_FILE).write_text("earlier result")
    log = {
        "empty log": tmp_path / "empty",
        "no log folder": tmp_path / "absent",
        "no labels yet": monitoring_world.logs["march"],
    }[case]
    if case == "empty log":
        (log / "date=2013-03-01").mkdir(parents=True)
    until = UNTIL.isoformat()
    if case == "no labels yet":  # requests are made an hour ahead: no flight has left yet
        first = read_prediction_log(log)["feature_time"].min()
        until = (first + pd.Timedelta(minutes=30)).isoformat()
    done = _cli(monitoring_world, log, output, "--until", until)
    words = {
        "empty log": "is empty",
        "no log folder": "no prediction log",
        "no labels yet": "no labels yet",
    }
    _one_line_error(done, words[case])
    assert sorted(p.name for p in output.iterdir()) == [RESULT_FILE]
    assert (output / RESULT_FILE).read_text() == "earlier result"


def test_monitoring_a_period_with_no_predictions_is_refused(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    config = load_model_config(monitoring_world.config_file(0))
    with pytest.raises(BadInput, match="no predictions"):
        monitor(
            monitoring_world.settings,
            config,
            load_monitoring_config(config),
            Period(datetime(2013, 6, 1, tzinfo=UTC), datetime(2013, 6, 2, tzinfo=UTC)),
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()


def test_replaying_a_period_again_replaces_it_rather_than_doubling_it(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    from serving.replay import replay
    from skewless.models.artifacts import ModelFetcher
    from skewless.registry.adapter import ModelRegistry

    log = tmp_path / "log"
    shutil.copytree(monitoring_world.logs["march"], log)
    before = read_prediction_log(log)
    settings = monitoring_world.settings
    store = feature_store.open_store(settings)
    registry = ModelRegistry(settings.state_dir)
    fetcher = ModelFetcher(
        registry, monitoring_world.config.name, monitoring_world.schema, tmp_path
    )
    try:
        model = fetcher.load("1")
        day = (MARCH[0] + timedelta(days=3), MARCH[0] + timedelta(days=4))
        replay(
            store, monitoring_world.schema, model, monitoring_world.config, *day, log, progress=str
        )
    finally:
        fetcher.close()
    after = read_prediction_log(log)
    assert len(after) == len(before)
    assert sorted(after["request_id"]) == sorted(before["request_id"])


def test_labels_optional_reports_drift_before_any_label_is_known(
    monitoring_world: MonitoringWorld, tmp_path: Path
) -> None:
    config = load_model_config(monitoring_world.config_file(0))
    first = read_prediction_log(monitoring_world.logs["march"])["feature_time"].min()
    period = Period(None, (first + pd.Timedelta(minutes=30)).to_pydatetime())
    outcome = monitor(
        monitoring_world.settings,
        config,
        load_monitoring_config(config),
        period,
        tmp_path / "out",
        labels_optional=True,
    )
    v1 = _version(outcome.result, "1")
    assert v1.labels.labelled == 0 and v1.labels.coverage == 0.0
    assert v1.performance.overall.roc_auc is None
    assert v1.rows > 0 and (tmp_path / "out" / REPORT_FILE).exists()
