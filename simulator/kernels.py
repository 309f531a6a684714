"""The fast engine's cost kernels (numba): per-brick statistics gathered per step, reduced by the sync.

Inputs are per-brick statistics ``hi``/``lo`` (see :func:`simulator.sync.unit_cost`), computed once per
brick by the design. Every kernel returns ``(cycles, busy_pe_cycles, busy_lane_cycles)``; a PE is busy
for its unit's cost on every step it holds a real window and a real filter, and its busy lanes are the
lanes holding a real MAC (one for depthwise, ``diagonal``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .sync import fc_pipeline, run_ahead_step, unit_cost

BIG = 1 << 30


@njit(cache=True)
def _lanes_used(channels: int, cb: int, lanes: int, diagonal: bool) -> int:
    if diagonal:
        return 1
    return max(0, min(lanes, channels - cb * lanes))


@njit(cache=True)
def _rows_in_pass(filters: int, p: int, tiles_rows: int) -> int:
    return max(0, min(tiles_rows, filters - p * tiles_rows))


@njit(cache=True)
def conv_activation_serial(hi, lo, mode, extra, channels, filters, passes, stride, out_h, out_w, kr, ks,
                           lanes, columns, group, tiles_rows, spread, run_ahead, diagonal):
    """Conv whose cost is set by each column group's activation bricks (shared by all rows and tiles).

    hi, lo: (G, CB, Hp, Wp). With ``spread`` > 1, sub-convs run ``spread`` at a time, one per tile.
    """
    n_sub, n_cb = hi.shape[0], hi.shape[1]
    n_win = out_h * out_w
    n_ws = (n_win + columns - 1) // columns
    cgroups = columns // group
    n_units = spread * cgroups
    n_steps = kr * ks * n_cb
    k = np.zeros((n_steps, n_units), dtype=np.int64)
    ncols = np.zeros(n_units, dtype=np.int64)
    finish = np.zeros(n_units, dtype=np.int64)
    ring = np.zeros(max(run_ahead, 1), dtype=np.int64)
    state = np.zeros(2, dtype=np.int64)
    cycles = 0
    busy_pe = 0
    busy_lane = 0
    n_batches = (n_sub + spread - 1) // spread
    for b in range(n_batches):
        for ws in range(n_ws):
            w0 = ws * columns
            for slot in range(spread):
                g = b * spread + slot
                for cg in range(cgroups):
                    u = slot * cgroups + cg
                    c_lo = w0 + cg * group
                    c_hi = min(c_lo + group, n_win)
                    ncols[u] = max(0, c_hi - c_lo) if g < n_sub else 0
                    t = 0
                    for r in range(kr):
                        for s in range(ks):
                            for cb in range(n_cb):
                                if ncols[u] == 0:
                                    k[t, u] = 0
                                else:
                                    hmax = -BIG
                                    lmin = BIG
                                    for w in range(c_lo, c_hi):
                                        y = (w // out_w) * stride + r
                                        x = (w % out_w) * stride + s
                                        if hi[g, cb, y, x] > hmax:
                                            hmax = hi[g, cb, y, x]
                                        if lo[g, cb, y, x] < lmin:
                                            lmin = lo[g, cb, y, x]
                                    k[t, u] = unit_cost(hmax, lmin, mode, extra)
                                t += 1
            step_max_sum = 0
            for t in range(n_steps):
                m = 0
                for u in range(n_units):
                    if k[t, u] > m:
                        m = k[t, u]
                step_max_sum += m
            for p in range(passes):
                if run_ahead == 0:
                    cycles += step_max_sum
                else:
                    for t in range(n_steps):
                        run_ahead_step(finish, k[t], ring, state)
                for u in range(n_units):
                    g = b * spread + u // cgroups
                    if ncols[u] == 0:
                        continue
                    rows = _rows_in_pass(filters[g], p, tiles_rows)
                    for t in range(n_steps):
                        pe = k[t, u] * ncols[u] * rows
                        busy_pe += pe
                        busy_lane += pe * _lanes_used(channels[g], t % n_cb, lanes, diagonal)
    if run_ahead > 0:
        cycles = finish.max()
    return cycles, busy_pe, busy_lane


@njit(cache=True)
def conv_weight_serial(hi, lo, mode, extra, channels, filters, passes, n_win, lanes, columns, rows, tiles,
                       group, spread, run_ahead, diagonal):
    """Conv whose cost is set by each row group's weight bricks (shared by all columns).

    hi, lo: (G, Kg, R, S, CB), step order r, s, channel brick. Tile t in pass p holds filter set
    p*tiles + t of the current sub-conv, or (``spread`` > 1) filter set 0 of sub-conv b*spread + t.
    """
    n_sub, kg, kr, ks, n_cb = hi.shape
    n_steps = kr * ks * n_cb
    n_ws = (n_win + columns - 1) // columns
    rgroups = rows // group
    n_units = tiles * rgroups
    k = np.zeros((passes, n_steps, n_units), dtype=np.int64)
    nrows = np.zeros((passes, n_units), dtype=np.int64)
    subconv = np.zeros(n_units, dtype=np.int64)
    finish = np.zeros(n_units, dtype=np.int64)
    ring = np.zeros(max(run_ahead, 1), dtype=np.int64)
    state = np.zeros(2, dtype=np.int64)
    cycles = 0
    busy_pe = 0
    busy_lane = 0
    n_batches = n_sub if spread == 1 else (n_sub + spread - 1) // spread
    for b in range(n_batches):
        for p in range(passes):
            for tile in range(tiles):
                if spread == 1:
                    g = b
                    fset = p * tiles + tile
                else:
                    g = b * spread + tile
                    fset = p
                for rg in range(rgroups):
                    u = tile * rgroups + rg
                    f0 = fset * rows + rg * group
                    f1 = min(f0 + group, filters[g]) if g < n_sub else f0
                    nrows[p, u] = max(0, f1 - f0)
                    subconv[u] = g
                    t = 0
                    for r in range(kr):
                        for s in range(ks):
                            for cb in range(n_cb):
                                if nrows[p, u] == 0:
                                    k[p, t, u] = 0
                                else:
                                    hmax = -BIG
                                    lmin = BIG
                                    for f in range(f0, f1):
                                        if hi[g, f, r, s, cb] > hmax:
                                            hmax = hi[g, f, r, s, cb]
                                        if lo[g, f, r, s, cb] < lmin:
                                            lmin = lo[g, f, r, s, cb]
                                    k[p, t, u] = unit_cost(hmax, lmin, mode, extra)
                                t += 1
            # activity: every window set repeats the same per-PE work, scaled by its active columns
            pe_sum = 0
            lane_sum = 0
            for u in range(n_units):
                if nrows[p, u] == 0:
                    continue
                for t in range(n_steps):
                    pe = k[p, t, u] * nrows[p, u]
                    pe_sum += pe
                    lane_sum += pe * _lanes_used(channels[subconv[u]], t % n_cb, lanes, diagonal)
            busy_pe += pe_sum * n_win  # sum over window sets of active columns = windows
            busy_lane += lane_sum * n_win
        if run_ahead == 0:
            s = 0
            for p in range(passes):
                for t in range(n_steps):
                    m = 0
                    for u in range(n_units):
                        if k[p, t, u] > m:
                            m = k[p, t, u]
                    s += m
            cycles += s * n_ws
        else:
            for _ws in range(n_ws):
                for p in range(passes):
                    for t in range(n_steps):
                        run_ahead_step(finish, k[p, t], ring, state)
    if run_ahead > 0:
        cycles = finish.max()
    return cycles, busy_pe, busy_lane


@njit(cache=True)
def fc_activation_serial(hi, lo, mode, extra, channels, filters, passes, lanes, columns, tiles_rows):
    """FC: step i (channel brick) costs its activation brick; steps pipelined over columns, passes repeat."""
    n_cb = hi.shape[0]
    costs = np.empty(passes * n_cb, dtype=np.int64)
    busy_pe = 0
    busy_lane = 0
    for p in range(passes):
        rows = _rows_in_pass(filters, p, tiles_rows)
        for t in range(n_cb):
            c = unit_cost(hi[t], lo[t], mode, extra)
            costs[p * n_cb + t] = c
            busy_pe += c * rows
            busy_lane += c * rows * _lanes_used(channels, t, lanes, False)
    return fc_pipeline(costs, columns), busy_pe, busy_lane


@njit(cache=True)
def fc_weight_serial(hi, lo, mode, extra, channels, filters, passes, lanes, columns, rows, tiles, group):
    """FC: a step costs the slowest row group of the pass on its weight bricks; pipelined over columns.

    hi, lo: (K, CB).
    """
    n_cb = hi.shape[1]
    costs = np.zeros(passes * n_cb, dtype=np.int64)
    busy_pe = 0
    busy_lane = 0
    rgroups = rows // group
    for p in range(passes):
        for tile in range(tiles):
            for rg in range(rgroups):
                f0 = (p * tiles + tile) * rows + rg * group
                f1 = min(f0 + group, filters)
                if f1 <= f0:
                    continue
                for t in range(n_cb):
                    hmax = -BIG
                    lmin = BIG
                    for f in range(f0, f1):
                        hmax = max(hmax, hi[f, t])
                        lmin = min(lmin, lo[f, t])
                    c = unit_cost(hmax, lmin, mode, extra)
                    if c > costs[p * n_cb + t]:
                        costs[p * n_cb + t] = c
                    busy_pe += c * (f1 - f0)
                    busy_lane += c * (f1 - f0) * _lanes_used(channels, t, lanes, False)
    return fc_pipeline(costs, columns), busy_pe, busy_lane


@njit(cache=True)
def window_tap_sum(per_position: np.ndarray, kr: int, ks: int, stride: int, out_h: int, out_w: int) -> np.ndarray:
    """For every group g: sum over windows and kernel taps of per_position[g, y, x] (int64)."""
    n_g = per_position.shape[0]
    out = np.zeros(n_g, dtype=np.int64)
    for g in range(n_g):
        acc = 0
        for oy in range(out_h):
            for ox in range(out_w):
                for r in range(kr):
                    for s in range(ks):
                        acc += per_position[g, oy * stride + r, ox * stride + s]
        out[g] = acc
    return out


@njit(cache=True)
def _pe_cost(a, w, ga, gw, lanewise):
    """Cycles of one PE on one step: a[ga] x w[gw] (separable) or max over lanes of max(1, a_l * w_l)."""
    if not lanewise:
        return a[ga, 0] * w[gw, 0]
    best = 1
    for lane in range(a.shape[1]):
        p = a[ga, lane] * w[gw, lane]
        if p > best:
            best = p
    return best


@njit(cache=True)
def _pe_cost_busy(a, w, ga, gw, lanewise, used, diagonal_lane):
    """(cycles, busy lane-cycles) of one PE on one step, in one pass over its lanes."""
    if not lanewise or diagonal_lane >= 0:
        cost = _pe_cost(a, w, ga, gw, lanewise)
        return cost, _lane_busy(a, w, ga, gw, lanewise, cost, used, diagonal_lane)
    ar, wr = a[ga], w[gw]
    best = 1
    busy = 0
    for lane in range(used):  # branch-free loops over contiguous rows (vectorizable)
        p = ar[lane] * wr[lane]
        best = max(best, p)
        busy += max(1, p)
    for lane in range(used, ar.shape[0]):
        best = max(best, ar[lane] * wr[lane])
    return best, busy


@njit(cache=True)
def _lane_busy(a, w, ga, gw, lanewise, cost, used, diagonal_lane):
    """Busy lane-cycles of one PE on one step: its own product count per lane (lane-wise) or the PE's cost."""
    if not lanewise:
        return cost * (1 if diagonal_lane >= 0 else used)
    if diagonal_lane >= 0:
        return max(1, a[ga, diagonal_lane] * w[gw, diagonal_lane])
    total = 0
    for lane in range(used):
        total += max(1, a[ga, lane] * w[gw, lane])
    return total


@njit(cache=True)
def conv_both_serial(a, w, lanewise, channels, filters, passes, stride, out_h, out_w, kr, ks, n_cb, plane_h, plane_w,
                     kg, lanes, columns, rows, tiles, spread, sync, diagonal):
    """Conv with both operands serial: the cost is per PE (window x filter x step).

    a: activation-brick data (G*CB*plane_h*plane_w, A) indexed by ((g*CB + cb)*plane_h + y)*plane_w + x;
    w: weight-brick data (G*kg*R*S*CB, A) indexed by (((g*kg + f)*R + r)*S + s)*CB + cb; A = 1 (separable:
    cost = a * w) or lanes (lane-wise: max over lanes of max(1, a_l * w_l)).
    sync: 0 chip lockstep, 1 per tile, 2 per PE. Returns (cycles, busy PE-cycles, busy lane-cycles).
    A step's lockstep cost needs only per-lane maxima (a PE's cost is monotone in both operands); busy
    counters and per-PE sync need every PE (separable designs: sums of a and w).
    """
    n_sub = channels.shape[0]
    n_lanes = a.shape[1]
    n_win = out_h * out_w
    n_ws = (n_win + columns - 1) // columns
    n_batches = n_sub if spread == 1 else (n_sub + spread - 1) // spread
    tile_total = np.zeros(tiles, dtype=np.int64)
    pe_total = np.zeros((tiles, rows, columns) if sync == 2 else (1, 1, 1), dtype=np.int64)
    aidx = np.zeros(columns, dtype=np.int64)
    widx = np.zeros(rows, dtype=np.int64)
    amax = np.zeros(n_lanes, dtype=np.int64)
    wmax = np.zeros(n_lanes, dtype=np.int64)
    cycles = 0
    busy_pe = 0
    busy_lane = 0
    for b in range(n_batches):
        for ws in range(n_ws):
            ncols = min(columns, n_win - ws * columns)
            for p in range(passes):
                for r in range(kr):
                    for s in range(ks):
                        for cb in range(n_cb):
                            step_max = 0
                            for t in range(tiles):
                                if spread == 1:
                                    g = b
                                    fset = p * tiles + t
                                else:
                                    g = b * spread + t
                                    fset = p
                                if g >= n_sub:
                                    continue
                                nrows = max(0, min(rows, filters[g] - fset * rows))
                                if nrows == 0:
                                    continue
                                used = max(0, min(lanes, channels[g] - cb * lanes))
                                for c in range(ncols):
                                    win = ws * columns + c
                                    y = (win // out_w) * stride + r
                                    x = (win % out_w) * stride + s
                                    aidx[c] = ((g * n_cb + cb) * plane_h + y) * plane_w + x
                                for row in range(nrows):
                                    widx[row] = (((g * kg + fset * rows + row) * kr + r) * ks + s) * n_cb + cb
                                # the tile's step cost from per-lane maxima
                                for lane in range(n_lanes):
                                    amax[lane] = 0
                                    wmax[lane] = 0
                                    for c in range(ncols):
                                        amax[lane] = max(amax[lane], a[aidx[c], lane])
                                    for row in range(nrows):
                                        wmax[lane] = max(wmax[lane], w[widx[row], lane])
                                if lanewise:
                                    cost = 1
                                    for lane in range(n_lanes):
                                        cost = max(cost, amax[lane] * wmax[lane])
                                else:
                                    cost = amax[0] * wmax[0]
                                tile_total[t] += cost
                                step_max = max(step_max, cost)
                                if lanewise or diagonal or sync == 2:  # every PE on its own (MAC-level work)
                                    for row in range(nrows):
                                        dlane = ((fset * rows + row) % lanes) if diagonal else -1
                                        for c in range(ncols):
                                            pc, lb = _pe_cost_busy(a, w, aidx[c], widx[row], lanewise, used, dlane)
                                            busy_pe += pc
                                            busy_lane += lb
                                            if sync == 2:
                                                pe_total[t, row, c] += pc
                                else:  # separable: sums suffice
                                    sa = 0
                                    sw = 0
                                    for c in range(ncols):
                                        sa += a[aidx[c], 0]
                                    for row in range(nrows):
                                        sw += w[widx[row], 0]
                                    busy_pe += sa * sw
                                    busy_lane += sa * sw * used
                            cycles += step_max
    if sync == 1:
        cycles = tile_total.max()
    elif sync == 2:
        cycles = pe_total.max()
    return cycles, busy_pe, busy_lane


@njit(cache=True, parallel=True)
def fc_both_serial(a, w, lanewise, channels, filters, passes, n_cb, lanes, columns, tiles_rows):
    """FC with both operands serial: a step costs its slowest PE (all rows of the pass, one activation brick);
    steps pipelined over the columns. a: (CB, A); w: (K*CB, A) indexed f*CB + cb."""
    costs = np.zeros(passes * n_cb, dtype=np.int64)
    busy_pe = 0
    busy_lane = 0
    for step in prange(passes * n_cb):  # step = p * n_cb + cb
        p, cb = step // n_cb, step % n_cb
        used = max(0, min(lanes, channels - cb * lanes))
        k = 0
        for f in range(p * tiles_rows, min(filters, (p + 1) * tiles_rows)):
            cost = _pe_cost(a, w, cb, f * n_cb + cb, lanewise)
            busy_pe += cost
            busy_lane += _lane_busy(a, w, cb, f * n_cb + cb, lanewise, cost, used, -1)
            if cost > k:
                k = cost
        costs[step] = k
    return fc_pipeline(costs, columns), busy_pe, busy_lane


@njit(cache=True)
def tap_window_sums(values: np.ndarray, kr: int, ks: int, stride: int, out_h: int, out_w: int) -> np.ndarray:
    """(C, R, S): for every channel and kernel tap, the sum over windows of the padded input value it meets."""
    c_n = values.shape[0]
    out = np.zeros((c_n, kr, ks), dtype=np.int64)
    for c in range(c_n):
        for r in range(kr):
            for s in range(ks):
                acc = 0
                for oy in range(out_h):
                    for ox in range(out_w):
                        acc += values[c, oy * stride + r, ox * stride + s]
                out[c, r, s] = acc
    return out
