"""Synchronization of units (docs/design.md §3-4): lockstep, run-ahead registers, and the FC column pipeline.

Each rule comes twice: in numba for the fast engine (per-step costs in, cycles out), and literally, cycle by
cycle, for the reference engine (units run their per-cycle schedules; a callback applies every cycle's work)."""

from __future__ import annotations

from collections.abc import Callable

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
    """One step of the run-ahead recurrence with len(ring) registers (docs/design.md §4).

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


# ----------------------------------------------------------------------------- literal (reference engine)
Schedule = list | None  # a unit's cycles for one step (each a list of work items); None: nothing to do


def run_synchronized(n_steps: int, n_units: int, run_ahead: int, schedule: Callable[[int, int], Schedule],
                     on_cycle: Callable[[int, int, object], None]) -> int:
    """Advance ``n_units`` units over ``n_steps`` steps, one cycle at a time; returns the cycles taken."""
    next_step = [0] * n_units
    running: list[list | None] = [None] * n_units  # [step, schedule, cycle index]
    finished = [0] * n_steps  # units done with each step
    clock = 0
    while True:
        started = True
        while started:  # start every unit whose registers allow it (idle steps finish at once)
            started = False
            for u in range(n_units):
                i = next_step[u]
                if running[u] is not None or i == n_steps:
                    continue
                gate = i - run_ahead - 1
                if gate >= 0 and finished[gate] < n_units:
                    continue
                sched = schedule(i, u)
                next_step[u] += 1
                started = True
                if not sched:  # idle, or nothing to do (e.g. a skipped all-zero brick)
                    finished[i] += 1
                else:
                    running[u] = [i, sched, 0]
        if all(r is None for r in running):
            assert all(s == n_steps for s in next_step)
            return clock
        done = []
        for u in range(n_units):
            r = running[u]
            if r is None:
                continue
            on_cycle(r[0], u, r[1][r[2]])
            r[2] += 1
            if r[2] == len(r[1]):
                done.append(u)
        clock += 1
        for u in done:
            finished[running[u][0]] += 1
            running[u] = None


def run_column_pipeline(n_steps: int, columns: int,
                        units_of: Callable[[int], list[tuple[list, Callable[[object], None]]]]) -> int:
    """FC: steps issued in order, at most one per cycle, to the columns round-robin; a column is busy until every
    unit of its step has run its schedule (``units_of(step)`` -> [(schedule, apply_cycle_entry)]). Steps whose
    schedules are all empty (skipped work) are not issued."""
    busy: list[list | None] = [None] * columns  # per column: [[schedule, apply, index], ...]
    issued, slot, clock, pending = 0, 0, 0, None
    while True:
        while pending is None and issued < n_steps:
            pending = units_of(issued)
            issued += 1
            if not any(sched for sched, _ in pending):
                pending = None  # nothing to do: not issued
        if pending is None and all(b is None for b in busy):
            return clock
        if pending is not None and busy[slot % columns] is None:
            busy[slot % columns] = [[sched, apply, 0] for sched, apply in pending]
            slot += 1
            pending = None
        free = []
        for col, units in enumerate(busy):
            if units is None:
                continue
            for unit in units:
                sched, apply, idx = unit
                if idx < len(sched):
                    apply(sched[idx])
                    unit[2] += 1
            if all(u[2] == len(u[0]) for u in units):
                free.append(col)
        clock += 1
        for col in free:
            busy[col] = None
