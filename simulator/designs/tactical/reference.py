"""Bit-Tactical's reference engine: cycle by cycle, with plain-Python schedules and real partial sums."""

from __future__ import annotations

import numpy as np

from ...config import ArchConfig
from ...knobs import Backend, EmptySlots, Promotion
from ...plan import Operand
from ...sync import run_column_pipeline, run_synchronized
from ..base import Cycle, run_in_parallel
from ..dadiannao import DaDianNao
from ..dynamic_stripes import DynamicStripes
from ..pragmatic import Pragmatic
from .schedule import reference_schedule


class Reference:
    """Cycle-by-cycle Bit-Tactical: plain-Python schedules, per-PE back-end cycles, real partial sums."""

    def __init__(self, arch: ArchConfig, layer, low, passes: int) -> None:
        self.arch, self.low, self.passes = arch, low, passes
        self.op = Operand(layer.act_signed, layer.act_bits)
        self.lanes, self.rows, self.tiles = arch.lanes, arch.rows, arch.tiles
        n_sub, kg, cg, kr, ks = low.weights.shape
        self.n_sub, self.cg, self.kr, self.ks = n_sub, cg, kr, ks
        self.n_cb = -(-cg // self.lanes)
        self.sets = -(-kg // self.rows)
        self.schedules = {(g, fs): self._schedule(g, fs) for g in range(n_sub) for fs in range(self.sets)}
        self.psum = np.zeros((n_sub, kg, low.windows), dtype=np.int64)

    def _schedule(self, g: int, fs: int):
        """Issued steps of filter set fs of sub-conv g: [step][row][lane] -> (weight, source step, source lane)."""
        w = self.low.weights
        dense = []
        for r in range(self.kr):
            for s in range(self.ks):
                for cb in range(self.n_cb):
                    dense.append([[int(w[g, f, cb * self.lanes + lane, r, s])
                                   if f < w.shape[1] and cb * self.lanes + lane < self.cg else 0
                                   for lane in range(self.lanes)]
                                  for f in range(fs * self.rows, (fs + 1) * self.rows)])
        arch = self.arch
        return reference_schedule(dense, arch.lookahead, arch.lookaside, str(arch.search_shape),
                                  arch.promotion == Promotion.LEAST_FLEXIBLE, arch.empty_slots == EmptySlots.DNNSIM)

    def _held(self, b: int, p: int, t: int) -> tuple[int, int] | None:
        g, fs = (b, p * self.tiles + t) if self.low.spread_tiles == 1 else (b * self.low.spread_tiles + t, p)
        return (g, fs) if g < self.n_sub and fs < self.sets else None

    def _calls(self, b: int, p: int) -> int:
        """Calls of a pass: the most steps any tile issues."""
        held = [self._held(b, p, t) for t in range(self.tiles)]
        return max((len(self.schedules[h]) for h in held if h is not None), default=0)

    def _activation(self, g: int, window: int, step: int, lane: int) -> int:
        """The activation at source (step, lane) for an output window (step -1: a skipped slot, nothing)."""
        if step < 0:
            return 0
        r, rest = divmod(step, self.ks * self.n_cb)
        s, cb = divmod(rest, self.n_cb)
        ch = cb * self.lanes + lane
        if ch >= self.cg:
            return 0
        low = self.low
        y = (window // low.out_w) * low.stride + r
        x = (window % low.out_w) * low.stride + s
        return int(low.acts[g, ch, y, x])

    def _tile_cycles(self, members: list[tuple[int, int, int, list]]) -> list[Cycle]:
        """One tile's PEs (g, filter, window, slots) on one step, side by side (TCLp: one shared precision)."""
        arch, lanes = self.arch, self.lanes
        selected = [[self._activation(g, w, st, sl) for (_, st, sl) in slots] for g, _, w, slots in members]
        if arch.backend == Backend.DYNAMIC_STRIPES:
            return DynamicStripes().reference_cycles(selected, self.op, arch)
        pe = DaDianNao() if arch.backend == Backend.DADIANNAO else Pragmatic()
        return run_in_parallel([pe.brick_cycles(v, self.op, arch) for v in selected], lanes)

    def _unit(self, parts: list[list[tuple[int, int, int, list]]]) -> tuple[list[Cycle], list]:
        """Tiles' member lists -> (cycles of the unit, flat member list); lanes numbered member * lanes + lane."""
        sched: list[Cycle] = []
        flat: list = []
        for members in parts:
            base = len(flat) * self.lanes
            for c, cycle in enumerate(self._tile_cycles(members)):
                if c == len(sched):
                    sched.append([])
                sched[c].extend((base + lane, coeff) for lane, coeff in cycle)
            flat.extend(members)
        return sched, flat

    def _apply(self, flat: list, cycle: Cycle) -> None:
        for lane, coeff in cycle:
            g, f, w, slots = flat[lane // self.lanes]
            weight = slots[lane % self.lanes][0]
            if weight:
                self.psum[g, f, w] += coeff * weight

    def _parts(self, b: int, p: int, i: int, windows: range) -> list[list[tuple[int, int, int, list]]]:
        parts = []
        for t in range(self.tiles):
            held = self._held(b, p, t)
            if held is None or i >= len(self.schedules[held]):
                continue
            g, fs = held
            step = self.schedules[held][i]
            filters = range(fs * self.rows, min((fs + 1) * self.rows, int(self.low.filters[g])))
            parts.append([(g, f, w, step[f - fs * self.rows]) for f in filters for w in windows])
        return [members for members in parts if members]

    def run(self) -> tuple[int, np.ndarray]:
        low, arch = self.low, self.arch
        if low.is_fc:
            steps = [(p, i) for p in range(self.passes) for i in range(self._calls(0, p))]

            def units_of(n: int):
                p, i = steps[n]
                out = []
                for members in self._parts(0, p, i, range(1)):
                    sched, flat = self._unit([members])
                    out.append((sched, lambda cycle, flat=flat: self._apply(flat, cycle)))
                return out

            return run_column_pipeline(len(steps), arch.columns, units_of), self.psum

        cols, group = arch.columns, arch.group_size
        n_ws = -(-low.windows // cols)
        n_batches = -(-self.n_sub // low.spread_tiles)
        steps = []
        for b in range(n_batches):
            for ws in range(n_ws):
                for p in range(self.passes):
                    steps += [(b, ws, p, i) for i in range(self._calls(b, p))]
        flats: dict[tuple[int, int], list] = {}

        def schedule(n: int, u: int):
            b, ws, p, i = steps[n]
            w0 = ws * cols + u * group
            windows = range(w0, min(w0 + group, low.windows))
            parts = self._parts(b, p, i, windows) if windows else []
            if not parts:
                return None
            sched, flats[(n, u)] = self._unit(parts)
            return sched

        def on_cycle(n: int, u: int, cycle: Cycle) -> None:
            self._apply(flats[(n, u)], cycle)

        cycles = run_synchronized(len(steps), cols // group, arch.run_ahead, schedule, on_cycle)
        return cycles, self.psum
