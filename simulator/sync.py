"""Synchronization of units (DESIGN §3-4): lockstep, run-ahead registers, and the FC column pipeline."""

from __future__ import annotations

import numpy as np
from numba import njit

MODE_MAX = 0  # a unit costs the max of its members' brick costs
MODE_PRECISION = 1  # a unit costs max msb - min lsb + 1 (+1 signed) over its members (dynamic precision)


@njit(cache=True)
def unit_cost(hmax: int, lmin: int, mode: int, extra: int) -> int:
    """Cycles of one unit for one step from its members' combined brick statistics."""
    if mode == MODE_MAX:
        return hmax
    if hmax < 0:
        return 1 + extra
    return max(1, hmax - lmin + 1 + extra)


@njit(cache=True)
def run_ahead_step(finish: np.ndarray, k: np.ndarray, ring: np.ndarray, state: np.ndarray) -> None:
    """One step of the run-ahead recurrence with len(ring) registers (DESIGN §4).

    ``finish[u]`` is unit u's finish time, ``k[u]`` its cost this step (0 = idle), ``ring`` the last R step
    maxima, ``state`` = (ready, j). Mutates its arguments.
    """
    ready = state[0]
    m = 0
    for u in range(finish.shape[0]):
        f = max(ready, finish[u]) + k[u]
        finish[u] = f
        if f > m:
            m = f
    j = state[1]
    state[0] = ring[j]
    ring[j] = m
    state[1] = (j + 1) % ring.shape[0]


@njit(cache=True)
def fc_pipeline(costs: np.ndarray, columns: int) -> int:
    """Steps issued in order, at most one per cycle, to the columns round-robin; a column is busy for its step's
    cost. Steps that cost 0 (skipped work) are not issued."""
    busy = np.zeros(columns, dtype=np.int64)
    clk = 0
    issued = 0
    for i in range(costs.shape[0]):
        if costs[i] == 0:
            continue
        c = issued % columns
        issued += 1
        clk = max(clk, busy[c])
        busy[c] = clk + costs[i]
        clk += 1
    return int(busy.max())
