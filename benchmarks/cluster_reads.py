"""Online reads against a Redis Cluster beside one Redis, same run: wall time per request of
the service's reader (one request's 8 HMGETs), direct and through the Feast SDK.

Starts a private single redis-server and a cluster of three masters and three replicas on
loopback, materializes the project's repository into both (as of the configuration's `as_of`),
then reads the same real request rows one at a time through each reader, alternating, and
prints p50/p99 per reader. Stops only what it started.

    python -m benchmarks.cluster_reads [--calls 2000]   # after ./scripts/quickstart
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import redis
from redis.cluster import ClusterNode, RedisCluster

from skewless.features import store as feature_store
from skewless.features.service import read_online, service_schema
from skewless.models.configuration import load_model_config
from skewless.online.redis_readers import RedisClusterFeatureReader, RedisFeatureReader
from skewless.settings import get_settings
from tests.support.redis_cluster import RedisCluster as ClusterProcesses
from tests.support.redis_server import RedisServer
from tests.support.repos import copy_feature_repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    base = get_settings()
    config = load_model_config(base.config)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "single").mkdir()
        single = RedisServer(folder / "single").start()
        cluster = ClusterProcesses(folder / "cluster").start()
        try:
            # A copy of the repository: materializing into throwaway servers must not record
            # intervals in the real registries (a later incremental load would skip them).
            repo = copy_feature_repo(folder / "repo")
            shutil.copytree(base.data_dir, repo / "data", ignore=shutil.ignore_patterns("*.db"))
            base = base.model_copy(update={"repo_path": repo, "feast_registry_uri": None})
            stores = {}
            for name, store, connection in (
                ("one Redis", "redis", single.connection),
                ("cluster", "redis_cluster", cluster.connection),
            ):
                settings = base.model_copy(
                    update={"online_store": store, "redis_connection": connection}
                )
                started = time.perf_counter()
                feature_store.apply(settings)
                stores[name] = feature_store.open_store(settings)
                feature_store.materialize(stores[name], config.as_of)
                print(f"{name}: materialized in {time.perf_counter() - started:.0f} s", flush=True)
            schema = service_schema(stores["one Redis"], config.feature_service)
            rows = feature_store.recent_entity_rows(stores["one Redis"], config, schema, args.calls)
            records = [
                {k: v.to_pydatetime() if hasattr(v, "to_pydatetime") else v for k, v in r.items()}
                for r in rows[list(schema.inputs)].to_dict(orient="records")
            ]
            port = next(iter(cluster.processes))
            services = {n: store.get_feature_service(schema.name) for n, store in stores.items()}
            readers: dict[str, Callable[[list[dict[str, Any]], Any], Any]] = {
                "direct, one Redis": RedisFeatureReader(
                    stores["one Redis"], schema, redis.Redis(port=single.port)
                ).read,
                "direct, cluster": RedisClusterFeatureReader(
                    stores["cluster"],
                    schema,
                    RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port)]),
                ).read,
                # As the service calls it: the feature service looked up once.
                "Feast SDK, one Redis": partial(
                    read_online, stores["one Redis"], schema, service=services["one Redis"]
                ),
                "Feast SDK, cluster": partial(
                    read_online, stores["cluster"], schema, service=services["cluster"]
                ),
            }
            times: dict[str, list[float]] = {name: [] for name in readers}
            for record in records[:50]:  # warm: connections, caches
                for read in readers.values():
                    read([record], config.as_of)
            for record in records:  # alternating, so that noise falls on all alike
                for name, read in readers.items():
                    started = time.perf_counter()
                    read([record], config.as_of)
                    times[name].append(time.perf_counter() - started)
        finally:
            cluster.stop()
            single.stop(save=False)
    print(f"\n{len(records)} single-row reads each, alternating\n")
    print("| reader | p50 (ms) | p99 (ms) |")
    print("|---|---|---|")
    for name, values in times.items():
        ms = np.array(values) * 1000
        print(f"| {name} | {np.percentile(ms, 50):.3f} | {np.percentile(ms, 99):.3f} |")


if __name__ == "__main__":
    main()
