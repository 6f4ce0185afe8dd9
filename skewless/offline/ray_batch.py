"""Batch work on a Ray cluster (`batch_engine: ray`): Ray Data over the same offline store.

The entity rows are cut into blocks; a pool of Ray Data actors (`ray_workers` of them, one
CPU each), each with the Feast store opened once, runs the very `historical_features` of the
single-process path on its blocks, through the offline-store plug-in the settings name
(skewless.offline.asof_store). A row's features depend on that row alone (a point-in-time
join), so cutting the rows changes nothing, and the blocks come back in the rows' order: the
same rows out as in one process (tests/integration/test_ray_batch.py).

Why not Feast's own Ray engine (0.67): its offline store does its own point-in-time join,
which would be a second implementation to prove equal, and its compute engine's write step
swallows every per-batch error (`safe_batch_processor`): tried here, a materialization into
Redis reported success with nothing written.

Every node needs this project installed (the workers import it) and the feature repository's
files at the same path (a shared file system beyond one host).
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureStore

from skewless.errors import SkewlessError
from skewless.features.service import historical_features
from skewless.features.store import EPOCH, materialize, open_store
from skewless.settings import Settings

ROW = "_skewless_ray_row"  # each entity row's place, to put the blocks back in order
WAIT_FOR_WORKERS_S = 300
CAUSED = "The above exception was the direct cause"  # in a remote traceback's text


class RayUnavailable(SkewlessError):
    """The Ray cluster the settings name cannot be reached or used."""


@dataclass(frozen=True)
class WorkerStats:
    """What one Ray worker reported after a piece of work."""

    node: str  # the Ray node the worker ran on (its id's first 12 characters)
    worker: str  # host:pid of the worker process
    rows: int
    seconds: float
    peak_rss_mib: float  # the worker process's peak resident memory so far


def worker_stats(rows: int, seconds: float) -> WorkerStats:
    """Called inside a Ray worker, after its piece of work."""
    import ray

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return WorkerStats(
        ray.get_runtime_context().get_node_id()[:12],
        f"{socket.gethostname()}:{os.getpid()}",
        rows,
        seconds,
        peak_kib / 1024,
    )


def connect(settings: Settings) -> None:
    """Join the cluster at `ray_address` (or start one node in this process when unset),
    once per process; Ray Data's progress bars off (a batch job prints its own progress)."""
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        try:
            ray.init(
                # "local": a node of its own, never a cluster RAY_ADDRESS or a leftover names
                address=settings.ray_address or "local",
                log_to_driver=False,
                include_dashboard=False if settings.ray_address is None else None,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            where = settings.ray_address or "a local node"
            raise RayUnavailable(
                f"cannot start or join the Ray cluster at {where}: {_reason(exc)}"
            ) from exc
    context = DataContext.get_current()
    # Every worker of a pool started before any block goes out: otherwise the first one up
    # takes the early blocks (all of them, for a short job) while the others start; and a
    # cluster without room for the pool stops the job instead of waiting for ever.
    context.wait_for_min_actors_s = WAIT_FOR_WORKERS_S
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def for_workers(settings: Settings) -> Settings:
    """The settings as a worker needs them: its working folder is not this process's, so
    every path absolute."""
    return settings.model_copy(
        update={
            "repo_path": settings.repo_path.resolve(),
            "state_dir": settings.state_dir.resolve(),
        }
    )


def blocks(rows: pd.DataFrame, block_rows: int) -> list[pd.DataFrame]:
    """`rows` cut into blocks of `block_rows`, each row marked with its place."""
    marked = rows.reset_index(drop=True)
    marked[ROW] = np.arange(len(marked), dtype="int64")
    return [marked.iloc[i : i + block_rows] for i in range(0, max(len(marked), 1), block_rows)]


def in_order(frames: list[pd.DataFrame], expected: int) -> pd.DataFrame:
    """The blocks' results back in the entity rows' order, checked complete."""
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(out) != expected or (expected and not out[ROW].is_unique):
        raise RayUnavailable(f"the Ray workers returned {len(out)} rows for {expected}")
    if not expected:
        return out
    return out.sort_values(ROW, kind="stable").drop(columns=ROW).reset_index(drop=True)


class _Retriever:
    """A Ray Data actor: the store opened once, point-in-time features per block."""

    def __init__(self, settings: Settings, features: str | list[str]) -> None:
        self.store = open_store(settings)
        self.features = features

    def __call__(self, block: pa.Table) -> pd.DataFrame:
        return historical_features(self.store, self.features, block.to_pandas())


def map_blocks(
    settings: Settings,
    frames: list[pd.DataFrame],
    actor: type,
    args: tuple[Any, ...],
) -> Iterator[pd.DataFrame]:
    """Each frame through a pool of `actor(*args)` on the cluster, one frame per call, given
    as an Arrow table (`to_pandas()` makes it what the single-process path reads: numpy
    dtypes; Ray's own pandas batches would be Arrow-backed); the results as they come (in
    no particular order)."""
    import ray.data

    connect(settings)
    try:
        # Arrow tables made here, by Arrow's own conversion: Ray's `from_pandas` cannot
        # convert a tz-aware nanosecond column (a CSV's parsed times) and falls back to
        # Python objects that the offline store cannot read.
        try:
            tables = [pa.Table.from_pandas(frame, preserve_index=False) for frame in frames]
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise RayUnavailable(f"the rows cannot be sent to the Ray workers: {exc}") from exc
        dataset = ray.data.from_arrow(tables).map_batches(
            actor,
            fn_constructor_args=args,
            batch_size=None,  # a block per call: the blocks are cut to size already
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(settings.ray_workers, len(frames))),
            num_cpus=1,
            # A block that kills its worker (out of memory) is tried once more, then the job
            # stops; Ray Data's default retries it for ever, silently.
            max_restarts=1,
            max_task_retries=1,
        )
        # Arrow out, then pandas as Arrow's own conversion makes it (numpy dtypes, as the
        # single-process path returns them; Ray's pandas batches would be Arrow-backed).
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield cast(pa.Table, batch).to_pandas()
    except ray.exceptions.RayError as exc:
        raise RayUnavailable(f"batch work on Ray failed: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The worker's own error in one line. Ray Data wraps it (a task error around a
    UserCodeException) and keeps it only as text: the remote traceback that ends with it,
    before "The above exception was the direct cause"."""
    text = str(exc)
    if CAUSED in text:
        lines = [line.strip() for line in text.split(CAUSED, 1)[0].splitlines() if line.strip()]
        if lines:
            return lines[-1]
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def historical_features_on_ray(
    settings: Settings, features: str | list[str], rows: pd.DataFrame, block_rows: int = 50_000
) -> pd.DataFrame:
    """`features.historical_features` on the cluster: the same rows, in the same order."""
    if rows.empty:  # nothing to distribute (and Ray Data skips empty blocks)
        return historical_features(open_store(settings), features, rows)
    settings = for_workers(settings)
    frames = blocks(rows, block_rows)
    found = list(map_blocks(settings, frames, _Retriever, (settings, features)))
    return in_order(found, len(rows))


def _materialize_view(settings: Settings, name: str, start: datetime, end: datetime) -> WorkerStats:
    """One feature view's window into the online store, by Feast's own local engine, on a
    Ray worker. The registry is only read here: the driver records the interval."""
    from tqdm import tqdm

    started = time.perf_counter()
    store = open_store(settings)
    view = store.get_feature_view(name)
    store._get_provider().materialize_single_feature_view(  # what FeatureStore.materialize calls
        store.config,
        view,
        start,
        end,
        store.registry,
        store.project,
        lambda total: tqdm(total=total, disable=True),
    )
    return worker_stats(0, time.perf_counter() - started)


def materialize_on_ray(
    settings: Settings, store: FeatureStore, end: datetime, *, start: datetime
) -> list[WorkerStats]:
    """Every online feature view's window loaded into the online store, a Ray task per
    view (views in parallel; each view as Feast loads it). The materialized intervals are
    recorded in the registry by this process, after every view succeeded: a failed view
    stops the job and records nothing, so the next full or incremental run loads it again."""
    import ray

    connect(settings)
    settings = for_workers(settings)
    views = [view for view in store.list_feature_views() if view.online]
    task = ray.remote(num_cpus=1)(_materialize_view)
    pending = [task.remote(settings, view.name, start, end) for view in views]
    try:
        done: list[WorkerStats] = ray.get(pending)
    except ray.exceptions.RayError as exc:
        raise RayUnavailable(f"materialization on Ray failed: {_reason(exc)}") from exc
    for view in views:
        store.registry.apply_materialization(view, store.project, start, end)
    return done


def materialize_for(
    settings: Settings, store: FeatureStore, end: datetime, *, incremental: bool = False
) -> None:
    """`feature_store.materialize` on the batch engine the settings choose. On Ray, a full
    load from the epoch (the incremental rule, a window per view, is the local engine's)."""
    if settings.batch_engine == "ray" and not incremental:
        materialize_on_ray(settings, store, end, start=EPOCH)
    else:
        materialize(store, end, incremental=incremental)


def historical_features_for(
    settings: Settings, store: FeatureStore, features: str | list[str], rows: pd.DataFrame
) -> pd.DataFrame:
    """Point-in-time features on the batch engine the settings choose: in this process
    (`store`), or on the Ray cluster."""
    if settings.batch_engine == "ray":
        return historical_features_on_ray(settings, features, rows)
    return historical_features(store, features, rows)
