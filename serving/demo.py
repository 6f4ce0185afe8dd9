"""The quickstart's last step: start the service, ask it for a few real predictions over REST
and gRPC, print them, and stop it again."""

from __future__ import annotations

import grpc
import httpx
from rich.console import Console
from rich.table import Table

from skewless.features import store as feature_store
from skewless.features.service import service_schema
from skewless.models.configuration import load_model_config
from skewless.settings import Settings

from .grpc_face import grpc_instance
from .process import ServiceProcess
from .protos import prediction_pb2 as pb
from .protos import prediction_pb2_grpc as pb_grpc
from .schemas import rest_body


def serve_examples(settings: Settings, console: Console, n: int = 5) -> None:
    config = load_model_config(settings.model_file)
    store = feature_store.open_store(settings)
    schema = service_schema(store, config.feature_service)
    rows = feature_store.recent_entity_rows(store, config, schema, n)
    console.print(f"starting the prediction service ({settings.online_store} online store)")
    with ServiceProcess(log_path=settings.state_dir / "quickstart-serve.log") as service:
        table = Table(
            title=f"real predictions from {service.url} (REST) and {service.grpc_target} (gRPC)"
        )
        for column in ("face", config.entity_id, "keys", "probability", "decision", "model"):
            table.add_column(column)
        with grpc.insecure_channel(service.grpc_target) as channel:
            stub = pb_grpc.PredictionStub(channel)  # type: ignore[no-untyped-call]  # generated
            for k, row in rows.iterrows():
                request_id = str(row[config.entity_id])
                if k % 2 == 0:
                    body = rest_body(row, schema, request_id=request_id)
                    p = httpx.post(service.url + "/v1/predict", json=body, timeout=10).json()
                    face = "REST"
                else:
                    instance = grpc_instance(row, schema, request_id)
                    response = stub.Predict(pb.PredictRequest(instance=instance), timeout=10)
                    face = "gRPC"
                    p = {
                        "probability": response.probability,
                        "decision": response.decision,
                        "model_version": response.model_version,
                    }
                keys = " ".join(str(row[key]) for key in schema.join_keys)
                table.add_row(
                    face,
                    request_id,
                    keys,
                    f"{p['probability']:.3f}",
                    str(p["decision"]),
                    f"v{p['model_version']}",
                )
        console.print(table)
    console.print("service stopped; `skewless serve` runs it until you stop it")
