"""Bit-Tactical (Delmas Lascorz et al., ASPLOS 2019): a static weight schedule skips zero weights in front of a
DaDianNao (TCL), Pragmatic (TCLe) or Dynamic Stripes (TCLp) back end.

Front end (``simulator.tactical_schedule``): every filter set's weights are scheduled once, offline; a tile
holding filter set s runs its issued steps in order. All rows (filters) of a tile share the step sequence (a
step is skipped only if it is zero for every filter of the set) while each filter's lanes are filled by its own
promotions; a slot multiplies the activation its weight came with (up to h steps ahead, d lanes aside). Tiles
hold different sets, so they issue different numbers of steps: call i of a (window set, pass) gives every tile
its i-th issued step (a tile already done idles) and lasts as long as its slowest column, DNNsim's model.

Back ends (cost of one PE on one step, over the ``lanes`` activations its slots select; a slot without a
weight keeps its lane's own activation of the current step, the multiplexer's default, which the
activation-serial back ends process like any other: zero weights are not gated. DNNsim processes those too,
except the empty slots a promotion leaves behind in a later step, which it drops; DNNsim's conv1 TCLe row is 662
either way, the least_flexible one is 563 here and 562 with DNNsim's rule):
- ``dadiannao`` (TCL): 1 cycle;
- ``pragmatic`` (TCLe): PRA(term masks of the selected activations, first_stage_bits) with ``encoding``;
- ``dynamic_stripes`` (TCLp): the detected precision of the selected activations, shared by every PE of the
  tile in the column group (max msb - min lsb over their union, as Dynamic Stripes).
A column group (``group_size`` columns, spanning every tile) costs the max over its PEs; column groups run in
lockstep or with ``run_ahead`` registers (DESIGN §4). FC layers issue the scheduled steps to the columns round
robin (DESIGN §3) at the cost of the step's slowest PE; TCL's FC cycles are its steps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from workloads import LayerKind

from ..config import ArchConfig, Backend, Design, Encoding, Promotion
from ..encodings import ENCODING_CODE, bit_tables, brick_msb_lsb, mask_table, value_terms, value_widths
from ..sync import MODE_PRECISION, fc_pipeline, run_ahead_step, unit_cost
from ..tactical_schedule import LayerSchedule, reference_schedule, schedule_layer
from .base import Cycle, DesignModel, Operand, run_in_parallel
from .dadiannao import DaDianNao
from .dynamic_stripes import DynamicStripes
from .pragmatic import Pragmatic

TCL, TCLE, TCLP = 0, 1, 2
BACKEND_CODE = {Backend.DADIANNAO: TCL, Backend.PRAGMATIC: TCLE, Backend.DYNAMIC_STRIPES: TCLP}
BIG = 1 << 30


# --------------------------------------------------------------------------------------------------- fast engine

@njit(cache=True)
def _pra(masks, n, window):
    """Pragmatic's two-stage shifting (DESIGN §4) over the first n (non-zero) term masks; mutates them."""
    cycles = 0
    while True:
        lows = 0
        for j in range(n):
            m = masks[j]
            lows |= m & -m
        if lows == 0:
            break
        limit = (lows & -lows) << window  # lanes whose next term is within the first stage's reach of the offset
        for j in range(n):
            m = masks[j]
            low = m & -m
            if low != 0 and low <= limit:
                masks[j] = m ^ low
        cycles += 1
    return max(cycles, 1)


@njit(cache=True)
def _gather(floor, sidx, i, g, w_lo, w_hi, out_w, stride, row_len, n_ch, offs, nfilt, act, act_lo, extra, backend,
            pop, buf, cnt, upper, npe):
    """Add one tile's PEs (windows w_lo..w_hi-1 on issued step i of set sidx) to a unit.

    Activation data is flat per sub-conv, laid out (Hp, Wp, n_ch) with row_len = Wp; ``offs`` holds each slot's
    offset in it from its window's origin. TCLe (``act``: term masks): each PE's non-zero masks go to buf[npe] with
    their count and an upper bound on their PRA (the union's popcount); returns (max(floor, their lower bounds),
    npe). TCLp (``act``, ``act_lo``: msb, lsb): returns (max(floor, the precision of the union of the tile's PEs'
    selected activations), npe). TCL: (max(floor, 1), npe)."""
    if backend == TCL:
        return max(floor, 1), npe
    n_l = offs.shape[3]
    hmax = -BIG
    lmin = BIG
    best = floor
    for w in range(w_lo, w_hi):
        origin = ((w // out_w) * stride * row_len + (w % out_w) * stride) * n_ch
        for f in range(nfilt[sidx]):
            if backend == TCLE:
                n = 0
                union = 0
                most = 1
                for lane in range(n_l):
                    m = act[g, origin + offs[sidx, i, f, lane]]
                    if m != 0:
                        buf[npe, n] = m
                        n += 1
                        union |= m
                        if pop[m] > most:
                            most = pop[m]
                cnt[npe] = n
                upper[npe] = max(pop[union], 1)
                npe += 1
                if most > best:  # PRA is at least the most terms of one lane
                    best = most
            else:
                for lane in range(n_l):
                    k = origin + offs[sidx, i, f, lane]
                    if act[g, k] > hmax:
                        hmax = act[g, k]
                    if act_lo[g, k] < lmin:
                        lmin = act_lo[g, k]
    if backend == TCLP:
        return max(floor, unit_cost(hmax, lmin, MODE_PRECISION, extra)), npe
    return best, npe


@njit(cache=True)
def _finish(best, npe, buf, cnt, upper, fsb):
    """The unit's cost: the max PRA over its gathered PEs, computed only where it could exceed the best so far."""
    window = (1 << fsb) - 1
    for j in range(npe):
        if upper[j] > best:
            best = max(best, _pra(buf[j], cnt[j], window))
    return best


@njit(cache=True)
def _offsets(src, ch_of, r_of, s_of, row_len, n_ch):
    """Each slot's offset, from its window's origin, of the activation it selects in a (Hp, Wp, n_ch) plane."""
    flat = src.ravel()
    out = np.empty(flat.size, dtype=np.int32)
    for j in range(flat.size):
        e = flat[j]
        out[j] = (r_of[e] * row_len + s_of[e]) * n_ch + ch_of[e]
    return out.reshape(src.shape)


@njit(cache=True)
def _placement(b, p, t, tiles, spread, n_sub, sets):
    """Schedule-set index held by tile t in pass p of batch b, or -1 (DESIGN §3, depthwise 'spread')."""
    if spread == 1:
        g = b
        fs = p * tiles + t
    else:
        g = b * spread + t
        fs = p
    if g >= n_sub or fs >= sets:
        return -1
    return g * sets + fs


@njit(cache=True)
def tactical_conv(backend, steps, offs, nfilt, slot_busy, sets, act, act_lo, row_len, n_ch, fsb, extra, pop, passes,
                  stride, out_h, out_w, columns, group, tiles, spread, run_ahead):
    """Conv: (cycles, busy PE-cycles, busy lane-cycles). Column groups (spanning every tile) are the units."""
    n_sub = steps.shape[0] // sets
    n_l = offs.shape[3]
    n_win = out_h * out_w
    n_ws = (n_win + columns - 1) // columns
    cgroups = columns // group
    k = np.zeros(cgroups, dtype=np.int64)
    finish = np.zeros(cgroups, dtype=np.int64)
    ring = np.zeros(max(run_ahead, 1), dtype=np.int64)
    state = np.zeros(2, dtype=np.int64)
    held = np.empty(tiles, dtype=np.int64)
    pes = tiles * offs.shape[2] * group
    buf = np.empty((pes, n_l), dtype=np.int64)  # a unit's PEs' term masks
    cnt = np.empty(pes, dtype=np.int64)
    upper = np.empty(pes, dtype=np.int64)
    cycles = 0
    busy_pe = 0
    busy_lane = 0
    n_batches = n_sub if spread == 1 else (n_sub + spread - 1) // spread
    for b in range(n_batches):
        for ws in range(n_ws):
            for p in range(passes):
                n_calls = 0
                for t in range(tiles):
                    held[t] = _placement(b, p, t, tiles, spread, n_sub, sets)
                    if held[t] >= 0 and steps[held[t]] > n_calls:
                        n_calls = steps[held[t]]
                for i in range(n_calls):
                    rows_on = 0
                    lanes_on = 0
                    for t in range(tiles):
                        s = held[t]
                        if s >= 0 and i < steps[s]:
                            rows_on += nfilt[s]
                            lanes_on += slot_busy[s, i]
                    kmax = 0
                    for u in range(cgroups):
                        w_lo = ws * columns + u * group
                        w_hi = min(w_lo + group, n_win)
                        ku = 0
                        npe = 0
                        for t in range(tiles):
                            s = held[t]
                            if w_hi > w_lo and s >= 0 and i < steps[s]:
                                ku, npe = _gather(ku, s, i, s // sets, w_lo, w_hi, out_w, stride, row_len, n_ch, offs,
                                                  nfilt, act, act_lo, extra, backend, pop, buf, cnt, upper, npe)
                        ku = _finish(ku, npe, buf, cnt, upper, fsb)
                        k[u] = ku
                        if ku > kmax:
                            kmax = ku
                        if w_hi > w_lo:
                            busy_pe += ku * (w_hi - w_lo) * rows_on
                            busy_lane += ku * (w_hi - w_lo) * lanes_on
                    if run_ahead == 0:
                        cycles += kmax
                    else:
                        run_ahead_step(finish, k, ring, state)
    if run_ahead > 0:
        cycles = finish.max()
    return cycles, busy_pe, busy_lane


@njit(cache=True)
def tactical_fc(backend, steps, offs, nfilt, slot_busy, sets, act, act_lo, row_len, n_ch, fsb, extra, pop, passes,
                columns, tiles):
    """FC: scheduled steps of every pass issued to the columns round robin, each at its slowest PE's cost."""
    n_l = offs.shape[3]
    held = np.empty(tiles, dtype=np.int64)
    pes = tiles * offs.shape[2]
    buf = np.empty((pes, n_l), dtype=np.int64)  # a step's PEs' term masks
    cnt = np.empty(pes, dtype=np.int64)
    upper = np.empty(pes, dtype=np.int64)
    total = 0
    for p in range(passes):
        n_calls = 0
        for t in range(tiles):
            s = _placement(0, p, t, tiles, 1, 1, sets)
            if s >= 0 and steps[s] > n_calls:
                n_calls = steps[s]
        total += n_calls
    costs = np.zeros(total, dtype=np.int64)
    busy_pe = 0
    busy_lane = 0
    j = 0
    for p in range(passes):
        n_calls = 0
        for t in range(tiles):
            held[t] = _placement(0, p, t, tiles, 1, 1, sets)
            if held[t] >= 0 and steps[held[t]] > n_calls:
                n_calls = steps[held[t]]
        for i in range(n_calls):
            kmax = 0
            npe = 0
            rows_on = 0
            lanes_on = 0
            for t in range(tiles):
                s = held[t]
                if s < 0 or i >= steps[s]:
                    continue
                rows_on += nfilt[s]
                lanes_on += slot_busy[s, i]
                kmax, npe = _gather(kmax, s, i, 0, 0, 1, 1, 1, row_len, n_ch, offs, nfilt, act, act_lo, extra, backend,
                                    pop, buf, cnt, upper, npe)
            kmax = _finish(kmax, npe, buf, cnt, upper, fsb)
            costs[j] = kmax
            j += 1
            busy_pe += kmax * rows_on
            busy_lane += kmax * lanes_on
    return fc_pipeline(costs, columns), busy_pe, busy_lane


# --------------------------------------------------------------------------------------------------- the model

def _source_tables(low, lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every source code e = step * lanes + lane: its channel, kernel row and kernel column."""
    kr, ks = low.kernel
    n_cb = -(-int(low.acts.shape[1]) // lanes)
    e = np.arange(kr * ks * n_cb * lanes)
    t, lane = e // lanes, e % lanes
    return (t % n_cb) * lanes + lane, t // (ks * n_cb), (t // n_cb) % ks


def _slot_busy(sched: LayerSchedule, low, lanes: int, rows: int) -> np.ndarray:
    """(sets, T): lanes doing a real MAC per issued step, over the set's real filters: a slot holding a weight,
    or an empty slot at a real (channel, filter) position of the layer (depthwise: its own channel only)."""
    n_sets, n_t = sched.rows.shape
    ch_of, _, _ = _source_tables(low, lanes)
    own = sched.rows[:, :, None, None] * lanes + np.arange(lanes)[None, None, None, :]  # (S, T, 1, L)
    ch = ch_of[own]
    g = np.arange(n_sets) // sched.sets_per_group
    real_ch = ch < low.channels[g].reshape(-1, 1, 1, 1)
    if low.diagonal:
        filt = (np.arange(n_sets) % sched.sets_per_group).reshape(-1, 1, 1, 1) * rows + np.arange(rows).reshape(
            1, 1, -1, 1)
        real_ch = real_ch & (ch == filt)
    busy = (sched.weight != 0) | real_ch
    busy &= np.arange(rows).reshape(1, 1, -1, 1) < sched.filters.reshape(-1, 1, 1, 1)
    busy &= np.arange(n_t).reshape(1, -1, 1, 1) < sched.steps.reshape(-1, 1, 1, 1)
    return busy.sum(axis=(2, 3)).astype(np.int64)


def _padded_acts(low, lanes: int) -> np.ndarray:
    g, cg, hp, wp = low.acts.shape
    n_cb = -(-cg // lanes)
    out = np.zeros((g, n_cb * lanes, hp, wp), dtype=np.int32)
    out[:, :cg] = low.acts
    return out


def _effectual_mac_sum(layer, act_cost: np.ndarray, pad_value: int = 0) -> int:
    """Sum over the layer's MACs whose weight is non-zero of a per-activation cost (padding costs pad_value)."""
    nonzero = (layer.weights != 0).astype(np.int64)
    cost = act_cost.astype(np.int64)
    if layer.kind == LayerKind.FC:
        return int((nonzero @ cost).sum())
    if layer.kind == LayerKind.GEMM:
        return int((nonzero @ cost.sum(axis=0)).sum())
    pt, pb, pl, pr = layer.padding
    oh, ow = layer.output_hw
    k, cg, kr, ks = layer.weights.shape
    g, st = layer.groups, layer.stride
    padded = np.pad(cost, ((0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
    taps = np.empty((padded.shape[0], kr, ks), dtype=np.int64)  # per channel and tap: the sum over windows
    for r in range(kr):
        for s in range(ks):
            taps[:, r, s] = padded[:, r:r + st * (oh - 1) + 1:st, s:s + st * (ow - 1) + 1:st].sum(axis=(1, 2))
    per_channel = nonzero.reshape(g, k // g, cg, kr, ks).sum(axis=1)
    return int(np.einsum("gcrs,gcrs->", per_channel, taps.reshape(g, cg, kr, ks)))


class Tactical(DesignModel):
    design = Design.TACTICAL

    # ----------------------------------------------------------------- fast engine
    def fast_layer(self, arch: ArchConfig, layer, low, passes: int) -> tuple[int, int, int]:
        lanes = arch.lanes
        sched = schedule_layer(low.weights, arch, low.filters)
        backend = BACKEND_CODE[arch.backend]
        acts = _padded_acts(low, lanes).transpose(0, 2, 3, 1)  # (G, Hp, Wp, channels): a PE's lanes are adjacent
        n_sub, _, row_len, n_ch = acts.shape
        act = act_lo = np.zeros((n_sub, 1), dtype=np.int32)
        if backend == TCLE:
            act = mask_table(ENCODING_CODE[arch.encoding])[np.abs(acts.astype(np.int64))].astype(np.int32)
        elif backend == TCLP:
            act, act_lo = brick_msb_lsb(np.ascontiguousarray(acts).reshape(-1, 1), arch.minor_bit)
        act, act_lo = act.reshape(n_sub, -1), act_lo.reshape(n_sub, -1)
        ch_of, r_of, s_of = _source_tables(low, lanes)
        offs = _offsets(sched.src, ch_of, r_of, s_of, row_len, n_ch)
        slot_busy = _slot_busy(sched, low, lanes, arch.rows)
        common = (backend, sched.steps, offs, sched.filters, slot_busy, sched.sets_per_group, act, act_lo, row_len,
                  n_ch, arch.first_stage_bits, int(layer.act_signed), bit_tables()[2], passes)
        if low.is_fc:
            cyc, busy_pe, busy_lane = tactical_fc(*common, arch.columns, arch.tiles)
        else:
            cyc, busy_pe, busy_lane = tactical_conv(*common, low.stride, low.out_h, low.out_w, arch.columns,
                                                    arch.group_size, arch.tiles, low.spread_tiles, arch.run_ahead)
        return int(cyc), int(busy_pe), int(busy_lane)

    def ideal_and_terms(self, arch: ArchConfig, layer) -> tuple[float, int]:
        """Only MACs with a non-zero weight count: 1 each (TCL), the activation's terms (TCLe) or its own width
        (TCLp); ``terms`` counts effectual MACs (TCL) or the activation terms processed for them."""
        if arch.backend == Backend.DADIANNAO:
            work = _effectual_mac_sum(layer, np.ones(layer.activations.shape, np.int64), pad_value=1)
            return float(work), work
        enc = ENCODING_CODE[arch.encoding if arch.backend == Backend.PRAGMATIC else Encoding.BINARY]
        terms = _effectual_mac_sum(layer, value_terms(layer.activations, enc))
        if arch.backend == Backend.PRAGMATIC:
            return float(terms), terms
        widths = value_widths(layer.activations, layer.act_signed, arch.minor_bit)
        return float(_effectual_mac_sum(layer, widths)), terms

    # ----------------------------------------------------------------- reference engine
    def reference_layer(self, arch: ArchConfig, layer, low, passes: int) -> tuple[int, np.ndarray]:
        return _Reference(arch, layer, low, passes).run()


class _Reference:
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
                                  arch.promotion == Promotion.LEAST_FLEXIBLE)

    def _held(self, b: int, p: int, t: int) -> tuple[int, int] | None:
        g, fs = (b, p * self.tiles + t) if self.low.spread_tiles == 1 else (b * self.low.spread_tiles + t, p)
        return (g, fs) if g < self.n_sub and fs < self.sets else None

    def _calls(self, b: int, p: int) -> int:
        """Calls of a pass: the most steps any tile issues."""
        held = [self._held(b, p, t) for t in range(self.tiles)]
        return max((len(self.schedules[h]) for h in held if h is not None), default=0)

    def _activation(self, g: int, window: int, step: int, lane: int) -> int:
        """The activation at source (step, lane) for an output window."""
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
        from ..reference import run_column_pipeline, run_synchronized

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
