"""`feast init`'s own template, made trainable as a user makes it: an entity source with a
label (requests half an hour after the template's hourly driver statistics, labelled by the
conversion rate known then), a model configuration, and the ASOF offline store in its yaml.
Shared by the tests that run skewless on a Feast repository the project did not write."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from cli.main import app
from skewless.settings import Settings
from training.config import load_pipeline_config
from training.pipeline import Pipeline

from .test_deployment import gate_config

SERVICE = "driver_activity_v1"  # conv_rate, and the on-demand view over it and the request
ON_DEMAND = {"conv_rate_plus_val1", "conv_rate_plus_val2"}

# What a user adds to the template to train on it: where the requests and their labels are.
ENTITY_SOURCE = """

driver_requests = FileSource(
    name="driver_requests",
    path="data/driver_requests.parquet",
    timestamp_field="event_timestamp",
)
"""

# The template's yaml names Feast's `file` (dask) offline store, which drops entity rows
# (ARCHITECTURE.md); point-in-time joins go through the project's ASOF plug-in instead.
OFFLINE_STORE = """
offline_store:
    type: skewless.offline.asof_store.AsofDuckDBOfflineStore
"""

MODEL = """
name: driver_reliability
feature_service: {service}
entity_source: driver_requests
entity_id: request_id
label: reliable
as_of: "{as_of}"
pipeline:
  windows:
    train: {{start: "{start}", end: "{validation}"}}
    validation: {{start: "{validation}", end: "{test}"}}
    test: {{start: "{test}", end: "{end}"}}
  baseline_by: [driver_id]
  training: {{search_budget: 1, max_rounds: 100, early_stopping_rounds: 10}}
  blessing: {{latency_budget_ms_p99: 50, infra_sample_rows: 50}}
"""

# The template's on-demand view is a pandas one (~2.5 ms a call, ARCHITECTURE.md): the gate's
# latency budgets are widened, this test is about definitions, not speed.
GATE = gate_config(
    golden={"requests": 5},
    load={"seconds": 2},
    budgets={"server": {"p50_ms": 50, "p95_ms": 150, "p99_ms": 300}},
    skew={"sample": 30},
)


@dataclass
class Template:
    settings: Settings
    folder: Path
    model: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "SKEWLESS_REPO_PATH": str(self.settings.repo_path),
            "SKEWLESS_STATE_DIR": str(self.settings.state_dir),
            "SKEWLESS_MODEL_FILE": str(self.model),
            "SKEWLESS_MODEL_POLL_SECONDS": "0.3",
            "SKEWLESS_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
            "SKEWLESS_DRAIN_SECONDS": "0.5",
            **extra,
        }

    def cli(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.output

    def requests(self) -> pd.DataFrame:
        """The entity source the test wrote: requests, their values to add, their labels."""
        return pd.read_parquet(self.settings.repo_path / "data" / "driver_requests.parquet")

    def edit(self, old: str, new: str) -> None:
        path = self.settings.repo_path / "feature_definitions.py"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    def train(self, settings: Settings, blessing: str = "") -> str:
        path = self.folder / "pipeline.yaml"
        extra = f", {blessing}}}" if blessing else "}"
        path.write_text(
            self.model.read_text().replace(
                "infra_sample_rows: 50}", f"infra_sample_rows: 50{extra}"
            )
        )
        config = load_pipeline_config(path)
        result = Pipeline(settings, config, progress=lambda _: None).run()
        assert result.version is not None, result.verdict
        return str(result.version)


def _requests(stats: pd.DataFrame) -> pd.DataFrame:
    """Half an hour after each of the last 14 days' hourly statistics, a request with random
    values to add, labelled by the conversion rate known then (plus noise): a label the model
    can learn from its features and only from them."""
    recent = stats[
        stats["event_timestamp"] > stats["event_timestamp"].max() - pd.Timedelta(days=14)
    ]
    rng = np.random.default_rng(7)
    rows = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(recent))],
            "driver_id": recent["driver_id"].to_numpy(),
            "event_timestamp": recent["event_timestamp"].to_numpy() + pd.Timedelta(minutes=30),
            "val_to_add": rng.integers(0, 10, len(recent)),
            "val_to_add_2": rng.integers(0, 10, len(recent)),
            "reliable": (
                recent["conv_rate"].to_numpy() + rng.normal(0, 0.15, len(recent)) > 0.5
            ).astype("int64"),
        }
    )
    return rows.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def _iso(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_template(folder: Path) -> Template:
    """`feast init driver_demo` in `folder`, with what a user adds to train on it."""
    subprocess.run(
        [sys.executable, "-m", "feast.cli.cli", "init", "driver_demo"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    repo = folder / "driver_demo" / "feature_repo"
    with (repo / "feature_definitions.py").open("a") as definitions:
        definitions.write(ENTITY_SOURCE)
    with (repo / "feature_store.yaml").open("a") as yaml_file:
        yaml_file.write(OFFLINE_STORE)
    requests = _requests(pd.read_parquet(repo / "data" / "driver_stats.parquet"))
    requests.to_parquet(repo / "data" / "driver_requests.parquet", index=False)
    first, last = requests["event_timestamp"].min().floor("h"), requests["event_timestamp"].max()
    model = folder / "driver_model.yaml"
    model.write_text(
        MODEL.format(
            service=SERVICE,
            as_of=_iso(last),
            start=_iso(first),
            validation=_iso(first + pd.Timedelta(days=8)),
            test=_iso(first + pd.Timedelta(days=10)),
            end=_iso(last + pd.Timedelta(hours=1)),
        )
    )
    return Template(
        Settings(repo_path=repo, state_dir=folder / "state", model_file=model), folder, model
    )
