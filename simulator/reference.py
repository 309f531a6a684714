"""The reference engine: a literal cycle-by-cycle model that also computes the real partial sums.

Each unit (a column group for activation-serial designs, a row group for weight-serial ones) runs the
design's per-cycle rule on its lanes (``DesignModel.reference_cycles``); every cycle, each PE sharing the
unit adds ``coefficient * other_operand`` for every term consumed. Units advance cycle by cycle under
the run-ahead rule (a unit may start step i once every unit has finished step i - R - 1; R = 0 is
lockstep); FC layers issue one step per cycle to the columns round-robin. Slow: for small layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workloads import Layer, LayerKind, Workload

from .config import ArchConfig, Serial, load_arch
from .designs import Cycle, model
from .engine import check_supported, passes_of, serial_operand
from .mapping import lower

Schedule = list[Cycle] | None  # None: the unit has nothing to do this step


@dataclass(frozen=True)
class ReferenceResult:
    layer: str
    cycles: int
    output: np.ndarray  # the accumulators, shaped like workloads.layer_output(layer)


def run_synchronized(n_steps: int, n_units: int, run_ahead: int, schedule: Callable[[int, int], Schedule],
                     on_cycle: Callable[[int, int, Cycle], None]) -> int:
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
                if sched is None:
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


def _brick(values: np.ndarray, cb: int, lanes: int) -> list[int]:
    """Channels cb*lanes .. cb*lanes+lanes-1 of a 1-D channel vector, zero-padded."""
    out = [0] * lanes
    part = values[cb * lanes:(cb + 1) * lanes]
    out[:len(part)] = [int(v) for v in part]
    return out


def simulate_layer_reference(arch: ArchConfig, layer: Layer) -> ReferenceResult:
    """Cycle-by-cycle simulation of one layer: exact cycles and the accumulators it computed."""
    design = model(arch.design)
    check_supported(design, arch, layer)
    serial, op = serial_operand(arch, layer)
    low = lower(layer, arch)
    passes = passes_of(low, arch)
    lanes, rows, cols, tiles = arch.lanes, arch.rows, arch.columns, arch.tiles
    acts, wgts = low.acts, low.weights
    n_sub, kg, cg, kr, ks = wgts.shape
    n_cb = -(-cg // lanes)
    taps = [(r, s, cb) for r in range(kr) for s in range(ks) for cb in range(n_cb)]
    psum = np.zeros((n_sub, kg, low.windows), dtype=np.int64)
    spread = low.spread_tiles
    n_ws = -(-low.windows // cols)
    n_batches = -(-n_sub // spread)

    def position(w: int, r: int, s: int) -> tuple[int, int]:
        return (w // low.out_w) * low.stride + r, (w % low.out_w) * low.stride + s

    def filters_of(b: int, p: int, tile: int) -> tuple[int, int, int]:
        """(sub-conv, first filter, end filter) held by ``tile`` in pass p of batch b."""
        g, fset = (b, p * tiles + tile) if spread == 1 else (b * spread + tile, p)
        if g >= n_sub:
            return g, 0, 0
        return g, fset * rows, min((fset + 1) * rows, int(low.filters[g]))

    custom = design.reference_layer(arch, layer, low, passes)
    if custom is not None:
        cycles, psum = custom
    elif low.is_fc:
        cycles = _run_fc(arch, design, op, serial, low, passes, taps, psum)
    elif serial == Serial.WEIGHT:
        rgroups = rows // arch.group_size
        steps = [(b, ws, p, t) for b in range(n_batches) for ws in range(n_ws) for p in range(passes)
                 for t in taps]
        members: dict[tuple[int, int], tuple[int, list[int]]] = {}

        def schedule(i: int, u: int) -> Schedule:
            b, _, p, (r, s, cb) = steps[i]
            g, f_lo, f_hi = filters_of(b, p, u // rgroups)
            f0 = f_lo + (u % rgroups) * arch.group_size
            fs = list(range(f0, min(f0 + arch.group_size, f_hi)))
            if not fs:
                return None
            members[(i, u)] = (g, fs)
            return design.reference_cycles([_brick(wgts[g, f, :, r, s], cb, lanes) for f in fs], op, arch)

        def on_cycle(i: int, u: int, cycle: Cycle) -> None:
            _, ws, _, (r, s, cb) = steps[i]
            g, fs = members[(i, u)]
            windows = range(ws * cols, min((ws + 1) * cols, low.windows))
            for lane, coeff in cycle:
                f, ch = fs[lane // lanes], cb * lanes + lane % lanes
                if ch < cg:
                    for w in windows:
                        y, x = position(w, r, s)
                        psum[g, f, w] += coeff * int(acts[g, ch, y, x])

        cycles = run_synchronized(len(steps), tiles * rgroups, arch.run_ahead, schedule, on_cycle)
    else:
        cgroups = cols // arch.group_size
        steps = [(b, ws, p, t) for b in range(n_batches) for ws in range(n_ws) for p in range(passes)
                 for t in taps]

        def windows_of(i: int, u: int) -> tuple[int, range]:
            b, ws, _, _ = steps[i]
            g = b * spread + u // cgroups
            w0 = ws * cols + (u % cgroups) * arch.group_size
            return g, range(w0, min(w0 + arch.group_size, low.windows))

        def schedule(i: int, u: int) -> Schedule:
            _, _, _, (r, s, cb) = steps[i]
            g, windows = windows_of(i, u)
            if g >= n_sub or not windows:
                return None
            return design.reference_cycles([_brick(acts[g, :, y, x], cb, lanes)
                                            for y, x in (position(w, r, s) for w in windows)], op, arch)

        def on_cycle(i: int, u: int, cycle: Cycle) -> None:
            b, _, p, (r, s, cb) = steps[i]
            g, windows = windows_of(i, u)
            if spread > 1:  # one sub-conv per tile
                _, f0, f1 = filters_of(b, p, u // cgroups)
            else:  # every tile shares the column's activations
                f0, f1 = p * tiles * rows, min((p + 1) * tiles * rows, int(low.filters[g]))
            for lane, coeff in cycle:
                w, ch = windows[lane // lanes], cb * lanes + lane % lanes
                if ch < cg:
                    psum[g, f0:f1, w] += coeff * wgts[g, f0:f1, ch, r, s].astype(np.int64)

        cycles = run_synchronized(len(steps), spread * cgroups, arch.run_ahead, schedule, on_cycle)

    out = np.zeros((layer.out_channels, low.windows), dtype=np.int64)
    for g in range(n_sub):
        f = int(low.filters[g])
        out[low.filter_offset[g]:low.filter_offset[g] + f] = psum[g, :f]
    if layer.kind == LayerKind.CONV:
        out = out.reshape(layer.output_shape)
    elif layer.kind == LayerKind.FC:
        out = out[:, 0]
    else:
        out = out.T
    return ReferenceResult(layer.name, cycles, out)


def _run_fc(arch, design, op, serial, low, passes, taps, psum) -> int:
    """FC: steps (pass, channel brick) issued one per cycle to columns round-robin, in order."""
    lanes, rows, cols, tiles = arch.lanes, arch.rows, arch.columns, arch.tiles
    acts, wgts = low.acts[0, :, 0, 0], low.weights[0, :, :, 0, 0]
    n_filters, cg = int(low.filters[0]), wgts.shape[1]
    steps = [(p, cb) for p in range(passes) for (_, _, cb) in taps]
    group = arch.group_size if serial == Serial.WEIGHT else rows * tiles

    def units_of(p: int, cb: int) -> list[tuple[list[int], list[Cycle]]]:
        """(filters, schedule) of every busy unit of a step: the column, or each row group (weight-serial)."""
        base = p * tiles * rows
        out = []
        for f0 in range(base, min(base + tiles * rows, n_filters), group):
            fs = list(range(f0, min(f0 + group, n_filters)))
            if serial == Serial.WEIGHT:
                members = [_brick(wgts[f], cb, lanes) for f in fs]
            else:
                members = [_brick(acts, cb, lanes)]
            out.append((fs, design.reference_cycles(members, op, arch)))
        return out

    busy: list[list | None] = [None] * cols  # per column: [cb, [(filters, schedule, index)]]
    issued, clock, next_issue = 0, 0, 0
    while issued < len(steps) or any(b is not None for b in busy):
        c = issued % cols
        if issued < len(steps) and busy[c] is None and clock >= next_issue:
            p, cb = steps[issued]
            busy[c] = [cb, [[fs, sched, 0] for fs, sched in units_of(p, cb)]]
            issued += 1
            next_issue = clock + 1
        free = []
        for col, state in enumerate(busy):
            if state is None:
                continue
            cb, units = state
            for unit in units:
                fs, sched, idx = unit
                if idx == len(sched):
                    continue
                for lane, coeff in sched[idx]:
                    if serial == Serial.WEIGHT:
                        f, ch = fs[lane // lanes], cb * lanes + lane % lanes
                        if ch < cg:
                            psum[0, f, 0] += coeff * int(acts[ch])
                    else:
                        ch = cb * lanes + lane
                        if ch < cg:
                            psum[0, fs[0]:fs[-1] + 1, 0] += coeff * wgts[fs[0]:fs[-1] + 1, ch].astype(np.int64)
                unit[2] += 1
            if all(u[2] == len(u[1]) for u in units):
                free.append(col)
        clock += 1
        for col in free:
            busy[col] = None
    return clock


def simulate_reference(arch: ArchConfig | str, workload: Workload) -> list[ReferenceResult]:
    """Every layer of ``workload`` through the reference engine."""
    if not isinstance(arch, ArchConfig):
        arch = load_arch(arch)
    return [simulate_layer_reference(arch, layer) for layer in workload.layers]
