"""The reference engine: a literal cycle-by-cycle model that also computes the real partial sums.

Each unit (a column group for activation-serial designs, a row group for weight-serial ones) runs the
design's per-cycle rule on its lanes (``DesignModel.reference_cycles``); every cycle, each PE sharing the
unit adds ``coefficient * other_operand`` for every term consumed. Units advance cycle by cycle under
the run-ahead rule (a unit may start step i once every unit has finished step i - R - 1; R = 0 is
lockstep); FC layers issue one step per cycle to the columns round-robin. Slow: for small layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workloads import Layer, Workload

from .config import ArchConfig, load_arch
from .designs import Cycle
from .knobs import Serial, Sync
from .plan import LayerPlan, plan_layer
from .sync import run_column_pipeline, run_synchronized

Schedule = list[Cycle] | None  # None: the unit has nothing to do this step


@dataclass(frozen=True)
class ReferenceResult:
    layer: str
    cycles: int
    output: np.ndarray  # the accumulators, shaped like workloads.layer_output(layer)


def _brick(values: np.ndarray, cb: int, lanes: int) -> list[int]:
    """Channels cb*lanes .. cb*lanes+lanes-1 of a 1-D channel vector, zero-padded."""
    out = [0] * lanes
    part = values[cb * lanes:(cb + 1) * lanes]
    out[:len(part)] = [int(v) for v in part]
    return out


def simulate_layer_reference(arch: ArchConfig, layer: Layer) -> ReferenceResult:
    """Cycle-by-cycle simulation of one layer: exact cycles and the accumulators it computed."""
    plan = plan_layer(arch, layer)
    design = arch.model
    serial, op, low, passes = plan.serial, plan.op, plan.low, plan.passes
    lanes, cols, tiles = arch.lanes, arch.columns, arch.tiles
    acts, wgts = low.acts, low.weights
    n_sub, kg, cg = wgts.shape[:3]
    taps = plan.taps()
    psum = np.zeros((n_sub, kg, low.windows), dtype=np.int64)
    spread = low.spread_tiles
    n_ws = plan.window_sets
    n_batches = plan.batches

    def position(w: int, r: int, s: int) -> tuple[int, int]:
        return (w // low.out_w) * low.stride + r, (w % low.out_w) * low.stride + s

    custom = design.reference_layer(plan)
    if custom is not None:
        cycles, psum = custom
    elif serial == Serial.BOTH:
        cycles = _run_both(plan, design, taps, psum)
    elif low.is_fc:
        cycles = _run_fc(plan, design, taps, psum)
    elif serial == Serial.WEIGHT:
        rgroups = arch.rows // arch.unit_group
        steps = [(b, ws, p, t) for b in range(n_batches) for ws in range(n_ws) for p in range(passes)
                 for t in taps]
        members: dict[tuple[int, int], tuple[int, list[int]]] = {}

        def schedule(i: int, u: int) -> Schedule:
            b, _, p, (r, s, cb) = steps[i]
            g, f_lo, f_hi = plan.held(b, p, u // rgroups)
            f0 = f_lo + (u % rgroups) * arch.unit_group
            fs = list(range(f0, min(f0 + arch.unit_group, f_hi)))
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
        cgroups = cols // arch.unit_group
        steps = [(b, ws, p, t) for b in range(n_batches) for ws in range(n_ws) for p in range(passes)
                 for t in taps]

        def windows_of(i: int, u: int) -> tuple[int, range]:
            b, ws, _, _ = steps[i]
            g = b * spread + u // cgroups
            w0 = ws * cols + (u % cgroups) * arch.unit_group
            return g, range(w0, min(w0 + arch.unit_group, low.windows))

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
                _, f0, f1 = plan.held(b, p, u // cgroups)
            else:  # every tile shares the column's activations
                f0, f1 = p * tiles * arch.rows, min((p + 1) * tiles * arch.rows, int(low.filters[g]))
            for lane, coeff in cycle:
                w, ch = windows[lane // lanes], cb * lanes + lane % lanes
                if ch < cg:
                    psum[g, f0:f1, w] += coeff * wgts[g, f0:f1, ch, r, s].astype(np.int64)

        cycles = run_synchronized(len(steps), spread * cgroups, arch.run_ahead, schedule, on_cycle)

    return ReferenceResult(layer.name, cycles, plan.output(psum))


def _run_fc(plan: LayerPlan, design, taps, psum) -> int:
    """FC on the brick path: the column (activation-serial) or each row group (weight-serial) is a unit."""
    arch, op, serial, low, passes = plan.arch, plan.op, plan.serial, plan.low, plan.passes
    lanes, rows, tiles = arch.lanes, arch.rows, arch.tiles
    acts, wgts = low.acts[0, :, 0, 0], low.weights[0, :, :, 0, 0]
    n_filters, cg = int(low.filters[0]), wgts.shape[1]
    steps = [(p, cb) for p in range(passes) for (_, _, cb) in taps]
    group = arch.unit_group if serial == Serial.WEIGHT else rows * tiles

    def units_of(i: int):
        p, cb = steps[i]
        base = p * tiles * rows
        out = []
        for f0 in range(base, min(base + tiles * rows, n_filters), group):
            fs = list(range(f0, min(f0 + group, n_filters)))
            if serial == Serial.WEIGHT:
                sched = design.reference_cycles([_brick(wgts[f], cb, lanes) for f in fs], op, arch)
            else:
                sched = design.reference_cycles([_brick(acts, cb, lanes)], op, arch)

            def apply(cycle, fs=fs, cb=cb):
                for lane, coeff in cycle:
                    if serial == Serial.WEIGHT:
                        f, ch = fs[lane // lanes], cb * lanes + lane % lanes
                        if ch < cg:
                            psum[0, f, 0] += coeff * int(acts[ch])
                    elif cb * lanes + lane < cg:
                        ch = cb * lanes + lane
                        psum[0, fs[0]:fs[-1] + 1, 0] += coeff * wgts[fs[0]:fs[-1] + 1, ch].astype(np.int64)

            out.append((sched, apply))
        return out

    return run_column_pipeline(len(steps), arch.columns, units_of)


def _run_both(plan: LayerPlan, design, taps, psum) -> int:
    """Both operands serial: every PE runs the design's per-pair schedule; PEs synchronize per ``sync``."""
    arch, low, passes = plan.arch, plan.low, plan.passes
    aop, wop = plan.act, plan.weight
    lanes, rows, cols, tiles = arch.lanes, arch.rows, arch.columns, arch.tiles
    acts, wgts = low.acts, low.weights
    n_sub = wgts.shape[0]
    spread = low.spread_tiles
    if low.is_fc:
        steps = [(p, cb) for p in range(passes) for (_, _, cb) in taps]

        def units_of(i: int):
            p, cb = steps[i]
            out = []
            for f in range(p * tiles * rows, min((p + 1) * tiles * rows, int(low.filters[0]))):
                sched = design.pe_cycles(_brick(acts[0, :, 0, 0], cb, lanes), _brick(wgts[0, f, :, 0, 0], cb, lanes),
                                         aop, wop, arch)

                def apply(entry, f=f):
                    psum[0, f, 0] += entry

                out.append((sched, apply))
            return out

        return run_column_pipeline(len(steps), cols, units_of)

    n_ws = -(-low.windows // cols)
    n_batches = -(-n_sub // spread)
    steps = [(b, ws, p, t) for b in range(n_batches) for ws in range(n_ws) for p in range(passes) for t in taps]
    pes = [(t, row, c) for t in range(tiles) for row in range(rows) for c in range(cols)]
    if arch.sync == Sync.LOCKSTEP:
        domains = [pes]
    elif arch.sync == Sync.TILE:
        domains = [[pe for pe in pes if pe[0] == t] for t in range(tiles)]
    else:
        domains = [[pe] for pe in pes]

    def placement(i: int, pe) -> tuple[int, int, int] | None:
        """(sub-conv, filter, window) of a PE at step i, or None if it is idle."""
        b, ws, p, _ = steps[i]
        t, row, c = pe
        g, fset = (b, p * tiles + t) if spread == 1 else (b * spread + t, p)
        f, win = fset * rows + row, ws * cols + c
        if g >= n_sub or f >= int(low.filters[g]) or win >= low.windows:
            return None
        return g, f, win

    cycles = 0
    for domain in domains:
        def schedule(i: int, u: int, domain=domain):
            where = placement(i, domain[u])
            if where is None:
                return None
            g, f, win = where
            _, _, _, (r, s, cb) = steps[i]
            y, x = (win // low.out_w) * low.stride + r, (win % low.out_w) * low.stride + s
            return design.pe_cycles(_brick(acts[g, :, y, x], cb, lanes), _brick(wgts[g, f, :, r, s], cb, lanes),
                                    aop, wop, arch)

        def on_cycle(i: int, u: int, entry, domain=domain) -> None:
            g, f, win = placement(i, domain[u])
            psum[g, f, win] += entry

        cycles = max(cycles, run_synchronized(len(steps), len(domain), 0, schedule, on_cycle))
    return cycles


def simulate_reference(arch: ArchConfig | str, workload: Workload) -> list[ReferenceResult]:
    """Every layer of ``workload`` through the reference engine."""
    if not isinstance(arch, ArchConfig):
        arch = load_arch(arch)
    return [simulate_layer_reference(arch, layer) for layer in workload.layers]
