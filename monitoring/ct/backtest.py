"""The backtest of retraining policies: a past period replayed day by day, once per policy,
with the controller's own parts, to see which policy pays (accuracy gained against retrains
spent).

Each day, the requests of that day are scored by the policy's current model on their
point-in-time features (what the service would have served: the parity tests prove the
offline read equal to the online one) and kept as that policy's prediction log. At the end of
each day the policy's triggers (`triggers.py`, the same functions as `skewless ct tick`) are
evaluated on the evidence known then: the labels known by then, the current model's drift
over the lookback (`VersionAnalysis`, as monitoring computes it), the labels known since its
data, the schedule. A retrain is `skewless train --as-of <that moment>` in a subprocess (a
sandbox registry of the backtest's own, which learns only from labels known by then); a
blessed version is adopted from the next day on. The gate and canary are not replayed: they
judge serving, not accuracy.

Shared work is done once: the point-in-time features of every request of the period, and
each retrain, cached by its moment across policies (its cost counts for every policy using it).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from skewless.command_support import run_command
from skewless.errors import BadInput
from skewless.features import store as feature_store
from skewless.features.outcomes import KNOWN_AT, LABEL, KnownTimes, outcome_source
from skewless.features.service import ENTITY_TIMESTAMP, historical_features, service_schema
from skewless.models.artifacts import load_artifacts
from skewless.models.configuration import ModelConfig
from skewless.models.contract import ModelContract
from skewless.quality.prediction_log import FEATURE
from skewless.quality.reference import REFERENCE_FILE, SCHEMA_FILE
from skewless.registry.adapter import ModelRegistry
from skewless.registry.aliases import CHAMPION
from skewless.settings import Settings

from ..analysis import TIME, VersionAnalysis, VersionReference
from ..config import MonitoringConfig
from .backtest_policies import Model, PolicyRun, policy_config
from .backtest_report import result_of
from .config import CTConfig
from .evidence import Champion, labelled_since, recent_auc
from .triggers import Evidence, evaluate, ready_at

Runner = Callable[..., int]


class Backtest:
    def __init__(
        self,
        settings: Settings,
        config: ModelConfig,
        monitoring: MonitoringConfig,
        ct: CTConfig,
        start: datetime | None,
        end: datetime | None,
        output: Path,
        *,
        base_version: str | None = None,
        runner: Runner = run_command,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.settings, self.config, self.monitoring, self.ct = settings, config, monitoring, ct
        self.output, self.runner, self.progress = output, runner, progress
        self.state = output / "state"
        self.registry = self._sandbox(base_version)
        # By default the days the base model never saw (earlier, it would score its own labels).
        self.start = start or self.base_data_end
        self.end = end or self._last_day()
        if self.start >= self.end:
            raise BadInput(f"nothing to replay from {self.start} to {self.end}: pass --start")
        self.models: dict[str, Model] = {}
        self.retrains: dict[datetime, tuple[str | None, float, str]] = {}

    def _sandbox(self, base_version: str | None) -> ModelRegistry:
        """A registry of the backtest's own: a copy of the real one (artifacts stay where
        they are), its champion set to the base model; retrains register here."""
        if self.settings.registry_uri:  # its retrains would register in the shared registry
            raise BadInput(
                "the backtest replays against a copy of a local SQLite registry; run it "
                "without SKEWLESS_REGISTRY_URI"
            )
        self.state.mkdir(parents=True, exist_ok=True)
        source = self.settings.state_dir / "mlflow.db"
        if not source.exists():
            raise BadInput(f"no model registry at {source}: run `skewless quickstart` first")
        shutil.copy(source, self.state / "mlflow.db")
        registry = ModelRegistry(self.state)
        name = self.config.name
        found = (
            registry.version(name, base_version)
            if base_version
            else registry.by_alias(name, CHAMPION)
        )
        if found is None:
            raise BadInput(f"{name} has no champion to start from; pass --base-version")
        registry.set_alias(name, CHAMPION, str(found.version))  # a sandbox: no gate here
        self.base = str(found.version)
        data_end = Champion.of(found).trained_until
        if data_end is None:
            raise BadInput(f"version {self.base} records no data end: pass --start")
        self.base_data_end: datetime = pd.Timestamp(data_end).ceil("D").to_pydatetime()
        text = yaml.safe_load(Path(str(self.config.source)).read_text())
        training = text.setdefault("pipeline", {}).setdefault("training", {})
        training["search_budget"] = 1  # the policies are compared, not the search
        self.model_file = self.output / "model.yaml"
        self.model_file.write_text(yaml.safe_dump(text, sort_keys=False))
        return registry

    def _load(self, version: str) -> Model:
        if version not in self.models:
            found = self.registry.version(self.config.name, version)
            fetched = self.registry.fetch(found, self.output / "models" / f"v{version}")
            folder = fetched.artifacts
            reference = VersionReference(
                version,
                json.loads((folder / SCHEMA_FILE).read_text()),
                json.loads((folder / REFERENCE_FILE).read_text()),
                ModelContract.load(folder / "contract.json"),
            )
            against = self.ct.drift.against if self.ct.drift else "recent"
            self.models[version] = Model(
                version,
                load_artifacts(folder, fetched.sha256),
                VersionAnalysis(reference.against(against), self.monitoring),
                Champion.of(found),
            )
        return self.models[version]

    def _last_day(self) -> datetime:
        """The end (exclusive) of the last day of the entity source."""
        store = feature_store.open_store(self.settings)
        path = feature_store.file_source_path(store, self.config.entity_source)
        last = pd.read_parquet(path, columns=[ENTITY_TIMESTAMP])[ENTITY_TIMESTAMP].max()
        end: datetime = (pd.Timestamp(last).floor("D") + pd.Timedelta(days=1)).to_pydatetime()
        return end

    def _requests(self) -> pd.DataFrame:
        """Every request of the period and the lookback before it, with its point-in-time
        features (one read for all policies) and its outcome (label, known when)."""
        store = feature_store.open_store(self.settings)
        schema = service_schema(store, self.config.feature_service)
        rows = pd.read_parquet(feature_store.file_source_path(store, self.config.entity_source))
        first = pd.Timestamp(self.start)
        times = rows[ENTITY_TIMESTAMP]
        rows = rows[(times >= first) & (times < pd.Timestamp(self.end))]
        rows = rows.sort_values(ENTITY_TIMESTAMP, kind="stable").reset_index(drop=True)
        started = time.perf_counter()
        features = historical_features(store, schema.name, rows)
        self.progress(
            f"features of {len(rows):,} requests in {time.perf_counter() - started:.1f} s"
        )
        source = outcome_source(store, self.config)
        if source.table is None:
            raise BadInput(f"outcome view {source.view!r} is not a local table")
        outcomes = pd.read_parquet(
            source.table, columns=[source.join_key, source.label, source.known_at]
        )
        outcomes = outcomes.rename(columns={source.label: LABEL, source.known_at: KNOWN_AT})
        frame = pd.DataFrame(
            {
                "request_id": rows[self.config.entity_id].astype(str),
                TIME: rows[ENTITY_TIMESTAMP],
                **{FEATURE + name: features[name] for name in schema.features},
            }
        )
        frame = frame.merge(
            outcomes.assign(request_id=outcomes[source.join_key].astype(str)).drop(
                columns=[source.join_key]
            ),
            on="request_id",
            how="left",
        )
        frame[KNOWN_AT] = pd.to_datetime(frame[KNOWN_AT], utc=True)
        self.known = KnownTimes.of(outcomes[KNOWN_AT])
        self.features = features[list(schema.features)]
        return frame

    # --- the replay --------------------------------------------------------------------------

    def run(self, policies: list[str]) -> dict[str, Any]:
        started = time.perf_counter()
        frame = self._requests()
        days = pd.to_datetime(frame[TIME]).dt.floor("D")
        by_day = {d: idx for d, idx in days.groupby(days).indices.items()}
        base = self._load(self.base)
        runs = [
            PolicyRun(
                name,
                policy_config(name, self.ct),
                base,
                np.full(len(frame), np.nan),
                np.full(len(frame), "", dtype=object),
            )
            for name in policies
        ]
        for day in sorted(by_day):
            index = by_day[day]
            now = (day + pd.Timedelta(days=1)).to_pydatetime()
            for run in runs:
                columns = {n: self.features[n].iloc[index] for n in self.features.columns}
                run.scores[index] = run.model.loaded.score(columns, threads=0)
                run.versions[index] = run.model.version
                self._tick(run, frame, now)
            self.progress(
                f"{day:%Y-%m-%d}: " + ", ".join(f"{r.name} v{r.model.version}" for r in runs)
            )
        seconds = time.perf_counter() - started
        result = result_of(frame, runs, (self.start, self.end), self.base, seconds)
        (self.output / "backtest.json").write_text(json.dumps(result, indent=2, default=str))
        return result

    def _tick(self, run: PolicyRun, frame: pd.DataFrame, now: datetime) -> None:
        model = run.model
        mine = run.versions == model.version
        known = (frame[KNOWN_AT] <= pd.Timestamp(now)).to_numpy() & mine
        labelled = frame.loc[known, [TIME, LABEL]].assign(probability=run.scores[known])
        cfg = run.config
        auc, recent_n = None, 0
        if cfg.performance is not None:
            auc, recent_n = recent_auc(labelled, cfg.performance.last_labelled)
        weighted: float | None = None
        drifted: list[str] = []
        if cfg.drift is not None:
            since = pd.Timestamp(now - timedelta(days=cfg.lookback_days))
            window = mine & (frame[TIME] >= since).to_numpy()
            if window.any():
                weighted, drifted = model.analysis.drift_summary(frame.loc[window])
        new = None
        if cfg.new_data is not None:
            new = labelled_since(self.known, model.facts, now)
        evidence = Evidence(
            now=now,
            last_tick=run.last_tick,
            champion=model.version,
            champion_test_auc=model.facts.test_auc,
            labelled_since_training=new,
            recent_auc=auc,
            recent_labelled=recent_n,
            drifted_importance=weighted,
            drifted=drifted,
        )
        run.last_tick = now
        fired = [v for v in evaluate(evidence, cfg) if v.fired]
        if not fired or now >= self.end:  # a model made after the period would serve nothing
            return
        past = [(datetime.fromisoformat(r["at"]), r["version"] is not None) for r in run.retrains]
        ready = ready_at(past, cfg.cooldown_hours)
        if ready is not None and now < ready:
            return
        version, seconds, result = self._retrain(now)
        run.retrains.append(
            {
                "at": now.isoformat(),
                "why": [v.trigger for v in fired],
                "version": version,
                "seconds": seconds,
                "result": result,
            }
        )
        if version is not None:
            run.model = self._load(version)

    def _retrain(self, now: datetime) -> tuple[str | None, float, str]:
        """`skewless train --as-of now` in the sandbox, once per moment whoever asks."""
        if now not in self.retrains:
            before = {str(v.version) for v in self.registry.versions(self.config.name)}
            env = {  # these settings, not the environment's: the same repository and stores
                **self.settings.as_env(),
                "SKEWLESS_STATE_DIR": str(self.state),
                "SKEWLESS_MODEL_FILE": str(self.model_file),
            }
            started = time.perf_counter()
            status = self.runner("train", "--as-of", now.isoformat(), env=env)
            seconds = time.perf_counter() - started
            new = [
                v for v in self.registry.versions(self.config.name) if str(v.version) not in before
            ]
            if status != 0 or not new:
                self.retrains[now] = (None, seconds, f"pipeline stopped (exit {status})")
            elif not new[0].record.blessed:
                self.retrains[now] = (None, seconds, f"v{new[0].version} not blessed")
            else:
                self.retrains[now] = (str(new[0].version), seconds, f"v{new[0].version} adopted")
            self.progress(
                f"retrain as of {now:%Y-%m-%d}: {self.retrains[now][2]} ({seconds:.0f} s)"
            )
        return self.retrains[now]
