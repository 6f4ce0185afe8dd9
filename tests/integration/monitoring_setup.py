"""What the monitoring tests share: a state folder whose registry holds two real small models
(v1 trained on the first half of March, v2 on the first half of September, each with its own
registered reference), and prediction logs replayed from the real requests:
- `march`: v1 serving its own training fortnight (no drift by construction);
- `september`: v1 and v2 both serving the first half of September.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from serving.replay import replay
from skewless.features import store as feature_store
from skewless.features.service import ServiceSchema, service_schema
from skewless.models.artifacts import ModelFetcher
from skewless.models.configuration import ModelConfig, load_model_config
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings
from training.config import load_pipeline_config
from training.pipeline import Pipeline

MODEL = """
name: departure_delay
feature_service: delay_model_v1
entity_source: flight_requests
entity_id: flight_id
label: departed_late
outcomes: {{feature_view: flight_outcomes, label: departed_late, known_at: outcome_known_at}}
segments: [origin, carrier]
as_of: "2013-12-30T23:00:00Z"
monitoring:
  window: day
  skew_sample: {skew_sample}
pipeline:
  windows:
    train: {{start: "2013-{m}-01T00:00:00Z", end: "2013-{m}-15T00:00:00Z"}}
    validation: {{start: "2013-{m}-15T00:00:00Z", end: "2013-{m}-22T00:00:00Z"}}
    test: {{start: "2013-{m}-22T00:00:00Z", end: "2013-{m}-29T00:00:00Z"}}
  rolling: {{train_days: 14, validation_days: 7, test_days: 7}}
  baseline_by: [carrier]
  # September is not March: this test wants the second model despite the season.
  validation: {{max_out_of_range_share: 1.0, max_null_increase: 1.0}}
  training: {{search_budget: 1, max_rounds: 200, early_stopping_rounds: 20}}
  blessing: {{latency_budget_ms_p99: 50, infra_sample_rows: 50}}
"""

MARCH = (datetime(2013, 3, 1, tzinfo=UTC), datetime(2013, 3, 15, tzinfo=UTC))
SEPTEMBER = (datetime(2013, 9, 1, tzinfo=UTC), datetime(2013, 9, 15, tzinfo=UTC))


def model_yaml(folder: Path, month: str, skew_sample: int = 100) -> Path:
    path = folder / f"model-{month}-{skew_sample}.yaml"
    path.write_text(MODEL.format(m=month, skew_sample=skew_sample))
    return path


@dataclass
class MonitoringWorld:
    settings: Settings  # sqlite online store; `march` log; config: v1's (skew sample 100)
    config: ModelConfig
    schema: ServiceSchema
    folder: Path
    logs: dict[str, Path]

    def with_log(self, name: str, **changes: object) -> Settings:
        return self.settings.model_copy(update={"prediction_log": self.logs[name], **changes})

    def config_file(self, skew_sample: int) -> Path:
        return model_yaml(self.folder, "03", skew_sample)


def build_world(real_repo: Settings, folder: Path) -> MonitoringWorld:
    settings = real_repo.model_copy(
        update={"state_dir": folder / "state", "model_file": model_yaml(folder, "03")}
    )
    for month in ("03", "09"):
        cfg = load_pipeline_config(model_yaml(folder, month))
        result = Pipeline(settings, cfg, progress=lambda _: None).run()
        assert result.version is not None, result.verdict
    config = load_model_config(settings.model_file)
    store = feature_store.open_store(settings)
    schema = service_schema(store, config.feature_service)
    fetcher = ModelFetcher(ModelRegistry(settings.state_dir), config.name, schema, folder / "m")
    logs = {"march": folder / "log-march", "september": folder / "log-september"}
    try:
        replay(store, schema, fetcher.load("1"), config, *MARCH, logs["march"], progress=str)
        for version in ("1", "2"):
            model = fetcher.load(version)
            replay(store, schema, model, config, *SEPTEMBER, logs["september"], progress=str)
    finally:
        fetcher.close()
    return MonitoringWorld(
        settings.model_copy(update={"prediction_log": logs["march"]}),
        config,
        schema,
        folder,
        logs,
    )
