"""Parallel loops without parfors: ``nogil`` numba workers on a thread pool.

A worker ``worker(part, parts, *args)`` handles its share of a loop (e.g. indices ``part * n // parts`` up to
``(part + 1) * n // parts``) and writes only its own part of the outputs; :func:`in_threads` runs the parts on
numba's number of threads. Compiling such a worker costs a fraction of a ``parallel=True`` function, which
matters on a first run (every kernel is compiled once, then cached).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from numba import config, get_num_threads

_POOL: list[ThreadPoolExecutor] = []


def in_threads(worker, parts: int, *args) -> None:
    """``worker(part, parts, *args)`` for every part, on numba's number of threads (in this thread if one)."""
    if min(get_num_threads(), parts) <= 1:
        for part in range(parts):
            worker(part, parts, *args)
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=config.NUMBA_NUM_THREADS))
    for done in [_POOL[0].submit(worker, part, parts, *args) for part in range(parts)]:
        done.result()


def parts(n: int, per_thread: int = 4) -> int:
    """How many parts to cut a loop of ``n`` items into: a few per thread (for balance), never more than items."""
    return max(1, min(n, per_thread * get_num_threads()))

