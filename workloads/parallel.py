"""Loops on every core, at a small compile cost: the two ways the simulator's kernels run in parallel.

- :func:`kernel`: a ``prange`` loop ``fn(n_parts, *args)`` (over the items, or over ``n_parts`` contiguous shares
  of them when each share needs its own scratch) compiled twice, lazily: serially, for the small inputs that most
  layers are (cheap to compile, and no threads to start), and with ``parallel=True`` the first time an input of at
  least :data:`PARALLEL_VALUES` values needs it. A first run on small networks therefore never pays for parfors.
- :func:`in_threads`: ``nogil`` workers ``worker(part, parts, *args)`` on a thread pool, for the big, costly to
  compile kernels (Bit-Tactical's), where a ``parallel=True`` twin would cost many seconds of compiling. Handing a
  part to a pool thread costs about 0.1 ms, so it suits a few calls per layer, not many small ones.
"""

from __future__ import annotations

import itertools
import types
from concurrent.futures import ThreadPoolExecutor

from numba import config, get_num_threads, njit

PARALLEL_VALUES = 1 << 16  # inputs of fewer values run serially (threads would cost more than they save)


def parts(values: int) -> int:
    """How many parts a :func:`kernel` loop over an input of ``values`` values is cut into: 1 (serial) for small
    inputs or one thread, else a few per thread (for balance)."""
    threads = get_num_threads()
    return 1 if values < PARALLEL_VALUES or threads <= 1 else 4 * threads


class Kernel:
    """A ``prange`` loop ``fn(n_parts, *args)`` compiled serially and, on first need, with ``parallel=True``."""

    def __init__(self, fn):
        self.serial = njit(cache=True, nogil=True)(fn)
        self._fn = fn
        self._parallel = None

    def __call__(self, n_parts: int, *args):
        if n_parts <= 1:
            return self.serial(1, *args)
        if self._parallel is None:  # a renamed copy: its own entry in numba's cache
            fn = self._fn
            twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__,
                                      fn.__closure__)
            twin.__qualname__ = fn.__qualname__ + "_parallel"
            twin.__module__ = fn.__module__
            self._parallel = njit(cache=True, parallel=True)(twin)
        return self._parallel(n_parts, *args)


def kernel(fn) -> Kernel:
    """Decorator for a ``prange`` loop ``fn(n_parts, *args)``; call it as ``fn(parts(values), ...)``."""
    return Kernel(fn)


_POOL: list[ThreadPoolExecutor] = []


def in_threads(worker, n_parts: int, *args) -> None:
    """``worker(part, n_parts, *args)`` for every part, on numba's number of threads (in this thread if one). This
    thread and one pool thread per other core each take the next part left until none is: one hand-off per thread,
    not per part."""
    threads = min(get_num_threads(), n_parts)
    if threads <= 1:
        for part in range(n_parts):
            worker(part, n_parts, *args)
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=config.NUMBA_NUM_THREADS))
    next_part = itertools.count().__next__  # atomic under the GIL

    def take_parts() -> None:
        part = next_part()
        while part < n_parts:
            worker(part, n_parts, *args)
            part = next_part()

    others = [_POOL[0].submit(take_parts) for _ in range(threads - 1)]
    take_parts()
    for done in others:
        done.result()
