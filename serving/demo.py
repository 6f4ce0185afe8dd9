"""The quickstart's last step: start the service, ask it for a few real predictions over REST
and gRPC, print them, and stop it again."""

from __future__ import annotations

import grpc
import httpx
from rich.console import Console
from rich.table import Table

from skewless import feature_store as fs
from skewless.config import load_model_config
from skewless.features import service_schema
from skewless.settings import Settings

from .grpc_face import to_value
from .process import ServiceProcess
from .protos import prediction_pb2 as pb
from .protos import prediction_pb2_grpc as pb_grpc


def serve_examples(settings: Settings, console: Console, n: int = 5) -> None:
    config = load_model_config(settings.config)
    store = fs.open_store(settings)
    schema = service_schema(store, config.feature_service)
    rows = fs.recent_entity_rows(store, config, schema, n)
    console.print(f"starting the prediction service ({settings.online_store} online store)")
    with ServiceProcess(log_path=settings.state_dir / "quickstart-serve.log") as service:
        table = Table(
            title=f"real predictions from {service.url} (REST) and {service.grpc_target} (gRPC)"
        )
        for column in ("face", config.entity_id, "keys", "probability", "decision", "model"):
            table.add_column(column)
        with grpc.insecure_channel(service.grpc_target) as channel:
            stub = pb_grpc.PredictionStub(channel)
            for k, row in rows.iterrows():
                entities = {key: row[key] for key in schema.join_keys}
                request = {name: row[name] for name in schema.request_fields}
                body = {
                    "request_id": str(row[config.entity_id]),
                    "entities": entities,
                    "request": {
                        name: v.isoformat() if hasattr(v, "isoformat") else v
                        for name, v in request.items()
                    },
                }
                if k % 2 == 0:
                    answer = httpx.post(service.url + "/v1/predict", json=body, timeout=10).json()
                    face, p = "REST", answer
                else:
                    response = stub.Predict(
                        pb.PredictRequest(
                            instance=pb.Instance(
                                request_id=body["request_id"],
                                entities={k2: to_value(v) for k2, v in entities.items()},
                                request={k2: to_value(_py(v)) for k2, v in request.items()},
                            )
                        ),
                        timeout=10,
                    )
                    face = "gRPC"
                    p = {
                        "probability": response.probability,
                        "decision": response.decision,
                        "model_name": response.model_name,
                        "model_version": response.model_version,
                    }
                table.add_row(
                    face, str(row[config.entity_id]), " ".join(str(v) for v in entities.values()),
                    f"{p['probability']:.3f}", str(p["decision"]), f"v{p['model_version']}",
                )  # fmt: skip
        console.print(table)
    console.print("service stopped; `skewless serve` runs it until you stop it")


def _py(value: object) -> object:
    return (
        value.to_pydatetime()
        if hasattr(value, "to_pydatetime")
        else (value.item() if hasattr(value, "item") else value)
    )
