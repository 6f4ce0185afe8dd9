"""Batch work on a real Ray cluster of two nodes on loopback (`ray start --head` plus a second
node, one CPU each): historical retrieval and batch scoring through Ray Data give the
single-process path's rows, row by row, with workers on both nodes; a run begun on one engine
resumes on the other; the CT pipeline's extract goes through Ray when the settings say so;
materialization by a task per view writes what Feast's local engine writes; a failure
inside a worker stops the job with the worker's reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from serving.batch import read_scores, score_file
from skewless.features import store as feature_store
from skewless.features.service import historical_features
from skewless.models.artifacts import ModelFetcher, ServedModel
from skewless.offline import ray_batch
from skewless.offline.ray_batch import RayUnavailable, historical_features_on_ray, materialize_for
from skewless.registry.adapter import ModelRegistry
from skewless.settings import Settings
from tests.support.ray_cluster import RayCluster
from tests.support.repos import copy_feature_repo, settings_for
from training.config import load_pipeline_config
from training.extract import extract
from training.pipeline import Pipeline

from .serving_setup import SMALL_PIPELINE, ServingWorld


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    cluster = RayCluster(tmp_path_factory.mktemp("ray")).start(nodes=2)
    try:
        yield cluster
    finally:
        import ray

        ray.shutdown()  # this process's driver, before its cluster goes
        cluster.stop()


@pytest.fixture(scope="module")
def on_ray(serving_world: ServingWorld, ray_cluster: RayCluster) -> Settings:
    return serving_world.settings.model_copy(
        update={"batch_engine": "ray", "ray_address": ray_cluster.address, "ray_workers": 2}
    )


@pytest.fixture(scope="module")
def model(serving_world: ServingWorld, tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    registry = ModelRegistry.of(serving_world.settings)
    folder = tmp_path_factory.mktemp("model")
    return ModelFetcher(registry, serving_world.config.name, serving_world.schema, folder).load()


def year_sample(world: ServingWorld, every: int) -> pd.DataFrame:
    """Every `every`-th request of the year, plus the awkward rows: a duplicate and a row
    whose aircraft is unknown (a null join key)."""
    store = feature_store.open_store(world.settings)
    rows = pd.read_parquet(feature_store.file_source_path(store, world.config.entity_source))
    sample = rows.iloc[::every]
    unknown = sample.head(1).assign(tailnum=None)
    return pd.concat([sample, sample.head(1), unknown], ignore_index=True)


def test_historical_retrieval_on_ray_equals_one_process_row_by_row(
    serving_world: ServingWorld, on_ray: Settings
) -> None:
    rows = year_sample(serving_world, 20)  # ~17k rows over the whole year
    store = feature_store.open_store(serving_world.settings)
    here = historical_features(store, serving_world.schema.name, rows)
    there = historical_features_on_ray(on_ray, serving_world.schema.name, rows, block_rows=4000)
    pd.testing.assert_frame_equal(there, here)  # values, dtypes and order
    assert here["tailnum"].isna().sum() >= 1 and len(here) == len(rows)


def test_batch_scoring_on_ray_equals_one_process_and_uses_both_nodes(
    serving_world: ServingWorld, on_ray: Settings, model: ServedModel, tmp_path: Path
) -> None:
    rows = year_sample(serving_world, 12)  # ~28k rows
    source = tmp_path / "rows.parquet"
    rows.to_parquet(source, index=False)
    store = feature_store.open_store(serving_world.settings)
    schema = serving_world.schema
    quiet = {"chunk_rows": 3000, "progress": lambda _: None}
    local = score_file(store, schema, model, source, tmp_path / "local", **quiet)
    remote = score_file(store, schema, model, source, tmp_path / "ray", settings=on_ray, **quiet)
    assert remote.chunks == local.chunks == 10 and remote.skipped == 0
    pd.testing.assert_frame_equal(read_scores(tmp_path / "ray"), read_scores(tmp_path / "local"))
    # Ten chunks shared by two one-CPU workers, one per node.
    assert sorted(s.chunk for s in remote.workers) == list(range(10))
    assert len({s.node for s in remote.workers}) == 2, remote.workers
    assert all(s.peak_rss_mib > 0 for s in remote.workers)

    # Begun on Ray, finished here: the parts lost are written again, the others kept.
    for part in sorted((tmp_path / "ray").glob("part-*.parquet"))[3:5]:
        part.unlink()
    resumed = score_file(store, schema, model, source, tmp_path / "ray", **quiet)
    assert resumed.skipped == 8
    # A CSV input goes to the workers through the driver (a parquet one is read by them).
    rows.head(4500).to_csv(tmp_path / "rows.csv", index=False)
    for way, engine in (("csv-local", None), ("csv-ray", on_ray)):
        score_file(
            store, schema, model, tmp_path / "rows.csv", tmp_path / way, settings=engine, **quiet
        )
    pd.testing.assert_frame_equal(
        read_scores(tmp_path / "csv-ray"), read_scores(tmp_path / "csv-local")
    )
    # Nothing to score: one empty part, as in one process (Ray Data skips empty blocks).
    rows.head(0).to_parquet(tmp_path / "none.parquet", index=False)
    empty = score_file(
        store, schema, model, tmp_path / "none.parquet", tmp_path / "none", settings=on_ray, **quiet
    )
    assert (empty.rows, empty.chunks) == (0, 1) and read_scores(tmp_path / "none").empty
    pd.testing.assert_frame_equal(read_scores(tmp_path / "ray"), read_scores(tmp_path / "local"))


def test_the_pipelines_extract_goes_through_ray_when_the_settings_say_so(
    serving_world: ServingWorld, on_ray: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> pd.DataFrame:
        calls.append(len(args[2]))
        return historical_features_on_ray(*args, **kwargs)

    monkeypatch.setattr(ray_batch, "historical_features_on_ray", counted)
    path = tmp_path / "pipeline.yaml"
    path.write_text(SMALL_PIPELINE)
    config = load_pipeline_config(path)
    store = feature_store.open_store(serving_world.settings)
    pipeline = Pipeline(on_ray.model_copy(update={"state_dir": tmp_path / "state"}), config)
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
    pd.testing.assert_frame_equal(pipeline.extract_fn(store, config), extract(store, config))
    assert len(calls) == 1 and calls[0] > 1000  # the training windows' rows went to Ray


def _dump(connection: str, db: int) -> dict[bytes, dict[bytes, bytes]]:
    host, port = connection.split(",")[0].rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), db=db)
    keys = sorted(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def test_materialization_on_ray_writes_what_feasts_local_engine_writes(
    real_repo: Settings, serving_world: ServingWorld, on_ray: Settings, tmp_path: Path
) -> None:
    """A task per feature view on the cluster, into one Redis database; Feast's local engine
    into another: the same keys and values, and the intervals recorded in the registry."""
    repo = copy_feature_repo(tmp_path / "repo")
    shutil.copytree(real_repo.data_dir, repo / "data", ignore=shutil.ignore_patterns("*.db"))
    server = serving_world.settings.redis_connection
    local = settings_for(repo, "redis", f"{server},db=4")
    feature_store.apply(local)
    remote = on_ray.model_copy(update={"repo_path": repo, "redis_connection": f"{server},db=5"})
    as_of = serving_world.config.as_of
    store = feature_store.open_store(remote)
    materialize_for(remote, store, as_of)
    assert all(
        v.materialization_intervals
        for v in feature_store.open_store(remote).list_feature_views()
        if v.online
    )
    feature_store.materialize(feature_store.open_store(local), as_of)
    here, there = _dump(server, 4), _dump(server, 5)
    assert len(here) > 1000 and there == here


def test_a_failure_inside_a_worker_stops_the_job_with_its_reason(
    serving_world: ServingWorld, on_ray: Settings
) -> None:
    rows = year_sample(serving_world, 1000)
    with pytest.raises(RayUnavailable, match="no_such_feature"):
        historical_features_on_ray(on_ray, ["weather_hourly:no_such_feature"], rows)
