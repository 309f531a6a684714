"""Where sweep points run: one seam (``map_points(points, store_root, task=run_point)`` runs ``task(point,
store_root, data_dir)`` on every point and yields its ``(key, state, seconds)`` as points finish), three executors.

* ``SerialExecutor``: in this process (tests, debugging).
* ``LocalExecutor``: worker processes on this machine (joblib's loky backend). Each worker gets
  ``NUMBA_NUM_THREADS=1`` (``numba_threads``), so that ``jobs`` workers do not oversubscribe the cores; numba's
  on-disk cache is loaded once per worker, on its first point.
* ``DaskExecutor``: a Dask distributed cluster, ``scheduler="tcp://host:8786"`` (workers started by the user, e.g.
  with dask-jobqueue on SLURM) or a ``LocalCluster`` of ``local_workers`` processes. A point runs as one task that
  writes its own result into the store (which must be on a file system every worker sees); a worker that dies
  takes its running points with it and the scheduler runs them again elsewhere (Dask's ``allowed-failures``), so no
  finished point is lost and the sweep completes.

Every executor runs ``simulator.sweep.run_point`` (and ``prune_point`` for the pruned workloads a sweep needs): the
same sweep file gives the same table on each.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from .sweep import Point, run_point

Outcome = tuple[str, str, float]
Task = Callable[[Point, str, str | None], Outcome]


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block (child processes started inside inherit them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Executor:
    """Every executor is a context manager: ``with executor:`` holds what it starts (a Dask cluster) for every
    ``map_points`` call inside; the local ones start nothing to hold."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class SerialExecutor(_Executor):
    """Points one after the other in this process."""

    def __init__(self, data_dir: str | None = None):
        self.data_dir = data_dir

    def map_points(self, points: list[Point], store_root: str, task: Task = run_point) -> Iterator[Outcome]:
        for p in points:
            yield task(p, store_root, self.data_dir)


class LocalExecutor(_Executor):
    """``jobs`` worker processes (default: the machine's cores) with ``numba_threads`` numba threads each."""

    def __init__(self, jobs: int | None = None, *, numba_threads: int = 1, data_dir: str | None = None):
        self.jobs = jobs or os.cpu_count() or 1
        if self.jobs < 1 or numba_threads < 1:
            raise ValueError(f"jobs ({jobs}) and numba_threads ({numba_threads}) must be >= 1")
        self.numba_threads = numba_threads
        self.data_dir = data_dir

    def map_points(self, points: list[Point], store_root: str, task: Task = run_point) -> Iterator[Outcome]:
        if self.jobs == 1 or len(points) <= 1:
            yield from SerialExecutor(self.data_dir).map_points(points, store_root, task)
            return
        from joblib import Parallel, delayed

        with _environment(NUMBA_NUM_THREADS=str(self.numba_threads)):
            run = Parallel(n_jobs=self.jobs, backend="loky", return_as="generator_unordered")
            yield from run(delayed(task)(p, store_root, self.data_dir) for p in points)


class DaskExecutor(_Executor):
    """Points as tasks of a Dask distributed cluster: ``scheduler`` (an address) or ``local_workers`` processes.

    Used as a context manager (``with DaskExecutor(...) as ex:``), one client (and local cluster) serves every
    ``map_points`` call inside (a sweep's pruning phase and its points); otherwise each call opens its own."""

    def __init__(self, scheduler: str | None = None, *, local_workers: int | None = None, numba_threads: int = 1,
                 data_dir: str | None = None):
        if (scheduler is None) == (local_workers is None):
            raise ValueError("DaskExecutor needs exactly one of scheduler (an address) or local_workers (a count)")
        if local_workers is not None and local_workers < 1:
            raise ValueError(f"local_workers ({local_workers}) must be >= 1")
        self.scheduler = scheduler
        self.local_workers = local_workers
        self.numba_threads = numba_threads
        self.data_dir = data_dir
        self.client = None  # while a client is open (tests reach the workers through it)
        self._session: contextlib.ExitStack | None = None

    @contextlib.contextmanager
    def _open(self):
        from dask.distributed import Client, LocalCluster

        if self.scheduler is not None:
            with Client(self.scheduler) as client:
                yield client
            return
        env = {"NUMBA_NUM_THREADS": str(self.numba_threads)}
        with _environment(**env), LocalCluster(n_workers=self.local_workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, env=env) as cluster, Client(cluster) as client:
            yield client

    def __enter__(self) -> DaskExecutor:
        self._session = contextlib.ExitStack()
        self.client = self._session.enter_context(self._open())
        return self

    def __exit__(self, *exc) -> None:
        session, self._session, self.client = self._session, None, None
        if session is not None:
            session.close()

    @contextlib.contextmanager
    def _client(self):
        if self._session is not None:
            yield self.client
            return
        with self._open() as client:
            self.client = client
            try:
                yield client
            finally:
                self.client = None

    def map_points(self, points: list[Point], store_root: str, task: Task = run_point) -> Iterator[Outcome]:
        from dask.distributed import as_completed

        if not points:
            return
        with self._client() as client:
            futures = [client.submit(task, p, store_root, self.data_dir, key=f"{task.__name__}-{p.key}", pure=False)
                       for p in points]
            for future in as_completed(futures):
                yield future.result()
