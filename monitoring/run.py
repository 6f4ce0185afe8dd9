"""`skewless monitor`, the I/O around the analysis: read the prediction log for a period, join
the labels known by its end through Feast, fetch each served version's reference from the
registry, run a sample of the skew check, analyse each version against its own reference
(`analyse`: a typed `MonitoringResult`), then write the JSON result, the HTML report and the
history, each whole or not at all (`monitor`). The CT controller analyses without writing:
the operator's report and history are `skewless monitor`'s alone.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from skewless.clock import now as clock_now
from skewless.errors import BadInput
from skewless.features import store as feature_store
from skewless.features.outcomes import LABEL, join_labels, outcome_source
from skewless.features.service import ServiceSchema, service_schema
from skewless.models.artifacts import ModelFetcher
from skewless.models.configuration import ModelConfig
from skewless.models.contract import ModelContract
from skewless.quality.monitoring_result import Alert, MonitoringResult
from skewless.quality.prediction_log import read_prediction_log
from skewless.quality.reference import REFERENCE_FILE, SCHEMA_FILE
from skewless.quality.skew import SkewReport, check_skew
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings

from . import history, report
from .analysis import TIME, VersionAnalysis, VersionReference
from .config import MonitoringConfig
from .paired import paired_comparison

RESULT_FILE, REPORT_FILE, HISTORY_FILE = "monitor.json", "report.html", "history.parquet"


class NoLabels(BadInput):
    """No outcome is known yet for any monitored prediction."""


@dataclass(frozen=True)
class Period:
    since: datetime | None
    until: datetime  # the monitoring time T: labels known by T, predictions made by T


@dataclass(frozen=True)
class MonitorOutcome:
    result: MonitoringResult
    files: dict[str, Path]  # none when only analysed
    seconds: float
    rows: pd.DataFrame  # the monitored predictions, with `label` and `label_known_at`
    references: dict[str, VersionReference] = field(default_factory=dict)  # by version

    @property
    def alerts(self) -> list[Alert]:
        return self.result.alerts


def clock(settings: Settings, config: ModelConfig) -> datetime:
    """The monitoring time when none is given: the service's clock (a replayed data set's
    `as_of`, else now)."""
    return clock_now(settings, config.as_of)


def served_rows(settings: Settings, config: ModelConfig, period: Period) -> pd.DataFrame:
    directory = settings.prediction_log_dir
    log = read_prediction_log(directory)
    if log.empty:
        raise BadInput(f"the prediction log at {directory} is empty: serve requests first")
    log = log[log["model_name"] == config.name]
    times = pd.to_datetime(log[TIME], utc=True)
    keep = times <= pd.Timestamp(period.until)
    if period.since is not None:
        keep &= times >= pd.Timestamp(period.since)
    rows = log[keep].assign(**{TIME: times[keep]})
    if rows.empty:
        span = f"{times.min()} to {times.max()}" if len(times) else "no predictions of it"
        raise BadInput(
            f"no predictions of {config.name} between {period.since or 'the start'} and "
            f"{period.until} in {directory} (it holds {span})"
        )
    return rows.reset_index(drop=True)


def _reference(registry: ModelRegistry, name: str, version: str, folder: Path) -> VersionReference:
    fetched = registry.fetch(registry.version(name, version), folder / f"v{version}")
    paths = {f: fetched.artifacts / f for f in (SCHEMA_FILE, REFERENCE_FILE, "contract.json")}
    absent = [f for f, p in paths.items() if not p.exists()]
    if absent:
        raise BadInput(
            f"{name} version {version} has no monitoring reference ({', '.join(absent)}): it "
            "was registered before references were stored; retrain it to monitor it"
        )
    return VersionReference(
        version,
        json.loads(paths[SCHEMA_FILE].read_text()),
        json.loads(paths[REFERENCE_FILE].read_text()),
        ModelContract.load(paths["contract.json"]),
    )


def monitor(
    settings: Settings,
    config: ModelConfig,
    monitoring_config: MonitoringConfig,
    period: Period,
    output: Path,
    *,
    labels_optional: bool = False,
) -> MonitorOutcome:
    """`analyse`, then the result, the report and the history written into `output`."""
    outcome = analyse(settings, config, monitoring_config, period, labels_optional=labels_optional)
    files = write_outputs(outcome.result, output)
    return replace(outcome, files=files)


def analyse(
    settings: Settings,
    config: ModelConfig,
    monitoring_config: MonitoringConfig,
    period: Period,
    *,
    labels_optional: bool = False,
) -> MonitorOutcome:
    started = time.perf_counter()
    rows = served_rows(settings, config, period)
    store = feature_store.open_store(settings)
    source = outcome_source(store, config)
    joined = join_labels(store, source, rows["request_id"], period.until)
    rows = rows.assign(**{c: joined[c] for c in joined.columns})
    if not rows[LABEL].notna().any() and not labels_optional:
        raise NoLabels(
            f"no labels yet: none of the {len(rows):,} predictions has an outcome in "
            f"{source.view!r} known by {period.until.isoformat()}; monitor later, or pass "
            "--labels-optional for drift alone"
        )
    registry = ModelRegistry.of(settings)
    schema = service_schema(store, config.feature_service)
    fetch_dir = Path(tempfile.mkdtemp(prefix="monitor-", dir=_cache(settings)))
    # What was served is analysed whatever definitions it was served on: a changed definition
    # shows as skew here, it does not stop the analysis.
    loader = ModelFetcher(registry, config.name, schema, fetch_dir, allow_definition_skew=True)
    versions = []
    references = {}
    try:
        for version in sorted(rows["model_version"].astype(str).unique(), key=_version_key):
            mine = rows[rows["model_version"].astype(str) == version]
            ref = references[version] = _reference(registry, config.name, version, fetch_dir)
            skew = _skew_sample(store, schema, mine, loader, monitoring_config)
            analysis = VersionAnalysis(ref, monitoring_config).run(mine, config.segments, skew)
            versions.append(analysis)
    finally:
        loader.close()
        shutil.rmtree(fetch_dir, ignore_errors=True)
    result = MonitoringResult(
        model=config.name,
        monitored_at=datetime.now(UTC).isoformat(),
        since=(period.since or rows[TIME].min()).isoformat(),
        until=period.until.isoformat(),
        window=monitoring_config.window,
        prediction_log=str(settings.prediction_log_dir),
        predictions=len(rows),
        thresholds=monitoring_config.model_dump(mode="json"),
        versions=versions,
        paired=paired_comparison(rows),
        alerts=[a.model_copy(update={"version": v.version}) for v in versions for a in v.alerts],
        seconds=round(time.perf_counter() - started, 3),
    )
    return MonitorOutcome(result, {}, time.perf_counter() - started, rows, references)


def _skew_sample(
    store: FeatureStore,
    schema: ServiceSchema,
    rows: pd.DataFrame,
    loader: ModelFetcher,
    monitoring_config: MonitoringConfig,
) -> SkewReport | None:
    served = rows[rows["served_by"] != "shadow"]
    if not monitoring_config.skew_sample or served.empty:
        return None
    return check_skew(
        store,
        schema,
        served,
        loader,
        sample=monitoring_config.skew_sample,
        tolerance=monitoring_config.skew_tolerance,
    )


def _cache(settings: Settings) -> Path:
    folder = settings.state_dir / "cli"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (1 << 30, version)


def write_outputs(result: MonitoringResult, output: Path) -> dict[str, Path]:
    """The report and the result are made in full before anything is written; each file then
    replaces its old version atomically, and the history grows by one run's rows."""
    text = result.to_json()
    page = report.render(result)
    output.mkdir(parents=True, exist_ok=True)
    files = {
        "result": output / RESULT_FILE,
        "report": output / REPORT_FILE,
        "history": output / HISTORY_FILE,
    }
    new_history = history.rows_of(result)
    # The history first: should appending fail, the previous result and report stay.
    history.append(files["history"], new_history)
    for path, content in ((files["result"], text), (files["report"], page)):
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # concurrent runs: own
        tmp.write_text(content)
        tmp.replace(path)
    return files
