"""The fast engine's cost kernels (numba): per-brick statistics gathered per step, reduced by the sync.

Inputs are per-brick statistics ``hi``/``lo`` (see :func:`simulator.sync.unit_cost`), computed once per
brick by the design. Every kernel returns ``(cycles, busy_pe_cycles, busy_lane_cycles)``; a PE is busy
for its unit's cost on every step it holds a real window and a real filter, and its busy lanes are the
lanes holding a real MAC (one for depthwise, ``diagonal``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

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


PAIR_LIMIT = 1 << 15  # pair data are int16: the product of two values must fit (term or bit counts do)


@njit(cache=True)
def _unit_pair_cost(amax, wmax, lanewise):
    """Cycles of a unit (tile) on one step from the per-lane maxima of its columns' and rows' pair data.

    A PE's cost is monotone in both operands (data are non-negative), so the unit's slowest PE costs
    max over lanes of max(1, amax_l * wmax_l) (lane-wise), or amax * wmax (separable)."""
    if not lanewise:
        return np.int64(amax[0]) * np.int64(wmax[0])
    best = 1
    for lane in range(amax.shape[0]):
        best = max(best, np.int64(amax[lane]) * np.int64(wmax[lane]))
    return best


@njit(cache=True)
def _weight_side(wlanes, nf, rows, wmax, sw, nzw):
    """One step's weight bricks (lanes x filters): per lane, the sum and non-zero count over the nf real filters,
    and the maximum over every filter set of ``rows`` filters (wmax: filter sets x lanes)."""
    for lane in range(wlanes.shape[0]):
        wrow = wlanes[lane]
        tot = 0
        nz = 0
        for f in range(nf):
            tot += wrow[f]
            nz += wrow[f] != 0
        sw[lane] = tot
        nzw[lane] = nz
        for fs in range(wmax.shape[0]):
            mx = 0
            for f in range(fs * rows, min(nf, fs * rows + rows)):
                mx = max(mx, wrow[f])
            wmax[fs, lane] = mx


@njit(cache=True)
def _pe_costs(lane_idx, lane_val, n, wlanes, nf, floor, m):
    """m[f] = max(floor, max over the n listed lanes l of lane_val * wlanes[l, f]) for the first nf filters: the
    cycles of the PEs pairing one activation brick (its non-zero lanes listed) with every filter's weight brick.
    Filters are innermost, so the filter loop vectorizes (16 or 32 int16 PEs per instruction)."""
    for f in range(nf):
        m[f] = floor
    for j in range(n):
        al = lane_val[j]
        wrow = wlanes[lane_idx[j]]
        for f in range(nf):
            m[f] = max(m[f], np.int16(al * wrow[f]))  # exact: the engine checked that products fit int16


@njit(cache=True)
def conv_both_serial(a, wt, lanewise, channels, filters, passes, stride, out_h, out_w, lanes, columns, rows, tiles,
                     spread, sync, diagonal, pe_total):
    """Conv with both operands serial: the cost is per PE (window x filter x step).

    a: activation-brick data (G, CB, plane_h, plane_w, A); wt: weight-brick data (G, R, S, CB, A, Kg), filters
    innermost; int16, non-negative, products fit int16. A = 1 (separable: a PE costs a * w) or lanes (lane-wise:
    max over lanes of max(1, a_l * w_l)). sync: 0 chip lockstep, 1 per tile, 2 per PE; with per-PE sync, pe_total
    is a zeroed (tiles, rows, columns) int64 array that receives every PE's cycles, else None (numba then
    compiles the kernel without the per-PE code).
    Returns (cycles, busy PE-cycles, busy lane-cycles, pair sum): the pair sum is the sum over the layer's MACs
    of a_l * w_l (lane-wise; separable: over PE-steps of a * w), i.e. its terms when the data are term counts.

    Every total here is a sum, so the work is split in two, in whatever order is cheapest:
    - busy counters do not depend on the mapping: a sum, for every step (r, s, channel brick), over every real
      window x real filter. Lane-cycles are separable per lane: the sum over windows c and filters f of
      max(1, a_c * w_f) = (sum a)(sum w) + n_c n_f - nz(a) nz(w). PE-cycles need every PE's max over lanes:
      one vectorized pass over the filters per window and non-zero activation lane (separable designs:
      (sum a)(sum w)). Per-PE sync also sums every PE's cost per (window, filter).
    - a unit's step cost needs only per-lane maxima over its columns (window set) and rows (filter set), so
      lockstep / per-tile cycles then follow the loop nest of DESIGN section 3 on those maxima alone.
    """
    n_sub, n_cb, _, _, n_lanes = a.shape
    kr, ks, kg = wt.shape[1], wt.shape[2], wt.shape[5]
    n_win = out_h * out_w
    n_ws = (n_win + columns - 1) // columns
    n_fsets = (kg + rows - 1) // rows
    floor = 1 if lanewise else 0
    amax = np.zeros((n_sub, kr, ks, n_cb, n_ws, n_lanes), dtype=np.int16)  # per step and window set
    wmax = np.zeros((n_sub, kr, ks, n_cb, n_fsets, n_lanes), dtype=np.int16)  # per step and filter set
    if pe_total is not None:
        pe_sum = np.zeros((n_win, kg), dtype=np.int64)  # one sub-conv's cycles per (window, filter)
    m = np.empty(kg, dtype=np.int16)
    lane_idx = np.empty(n_lanes, dtype=np.int64)
    lane_val = np.empty(n_lanes, dtype=np.int16)
    sa = np.zeros(n_lanes, dtype=np.int64)
    nza = np.zeros(n_lanes, dtype=np.int64)
    sw = np.zeros(n_lanes, dtype=np.int64)
    nzw = np.zeros(n_lanes, dtype=np.int64)
    busy_pe = 0
    busy_lane = 0
    pair_sum = 0
    for g in range(n_sub):
        nf = filters[g]
        plane_g = a[g]
        for r in range(kr):
            for s in range(ks):
                for cb in range(n_cb):
                    used = max(0, min(lanes, channels[g] - cb * lanes))
                    wlanes = wt[g, r, s, cb]
                    _weight_side(wlanes, nf, rows, wmax[g, r, s, cb], sw, nzw)
                    am = amax[g, r, s, cb]
                    plane = plane_g[cb]
                    for lane in range(n_lanes):
                        sa[lane] = 0
                        nza[lane] = 0
                    step_pe = 0
                    win = 0
                    ws = 0
                    col = 0
                    for oy in range(out_h):  # every window's activation brick at this tap
                        y = oy * stride + r
                        for ox in range(out_w):
                            x = ox * stride + s
                            n = 0
                            for lane in range(n_lanes):
                                v = plane[y, x, lane]
                                am[ws, lane] = max(am[ws, lane], v)
                                sa[lane] += v
                                nza[lane] += v != 0
                                lane_idx[n] = lane  # list the non-zero lanes, branch-free
                                lane_val[n] = v
                                n += v != 0
                            if pe_total is not None:
                                _pe_costs(lane_idx, lane_val, n, wlanes, nf, floor, m)
                                for f in range(nf):
                                    step_pe += m[f]
                                    pe_sum[win, f] += m[f]
                            elif lanewise:
                                _pe_costs(lane_idx, lane_val, n, wlanes, nf, floor, m)
                                for f in range(nf):
                                    step_pe += m[f]
                            win += 1
                            col += 1
                            if col == columns:  # next window set
                                col = 0
                                ws += 1
                    if not lanewise:  # separable: a PE costs a * w, every used lane is busy that long
                        step_pe = sa[0] * sw[0]
                        busy_lane += step_pe * (1 if diagonal else used)
                        pair_sum += step_pe
                    else:
                        for lane in range(used):
                            pair_sum += sa[lane] * sw[lane]
                            if not diagonal:
                                busy_lane += sa[lane] * sw[lane] + n_win * nf - nza[lane] * nzw[lane]
                        if diagonal:  # filter f's only useful lane is f mod lanes
                            for f in range(nf):
                                lane = f % lanes
                                v = wlanes[lane, f]
                                busy_lane += sa[lane] * v + n_win - nza[lane] * (v != 0)
                    busy_pe += step_pe
        if pe_total is not None:  # window w and filter f meet on PE (f // rows mod tiles, f mod rows, w mod columns)
            for f in range(nf):
                t = (f // rows) % tiles if spread == 1 else g % spread
                for win in range(n_win):
                    pe_total[t, f % rows, win % columns] += pe_sum[win, f]
                    pe_sum[win, f] = 0
    if pe_total is not None:  # (plain loops rather than array methods: each method adds to the compile time)
        cycles = 0
        for t in range(tiles):
            for row in range(rows):
                for col in range(columns):
                    cycles = max(cycles, pe_total[t, row, col])
        return cycles, busy_pe, busy_lane, pair_sum
    # lockstep / per-tile cycles: for window set, pass, step, a tile costs what its slowest PE costs
    tile_total = np.zeros(tiles, dtype=np.int64)
    cycles = 0
    n_batches = n_sub if spread == 1 else (n_sub + spread - 1) // spread
    for b in range(n_batches):
        for ws in range(n_ws):
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
                                if g >= n_sub or fset * rows >= filters[g]:
                                    continue
                                cost = _unit_pair_cost(amax[g, r, s, cb, ws], wmax[g, r, s, cb, fset], lanewise)
                                tile_total[t] += cost
                                step_max = max(step_max, cost)
                            cycles += step_max
    if sync == 1:
        cycles = 0
        for t in range(tiles):
            cycles = max(cycles, tile_total[t])
    return cycles, busy_pe, busy_lane, pair_sum


@njit(cache=True)
def fc_both_serial(a, w, lanewise, channels, filters, passes, lanes, columns, tiles_rows):
    """FC with both operands serial: a step costs its slowest PE (all rows of the pass, one activation brick);
    steps pipelined over the columns. a: (CB, A); w: (K, CB, A); int16 as for ``conv_both_serial``, which see for
    the four results."""
    n_cb, n_lanes = a.shape
    costs = np.zeros(passes * n_cb, dtype=np.int64)
    sw = np.zeros(n_lanes, dtype=np.int64)
    nzw = np.zeros(n_lanes, dtype=np.int64)
    busy_pe = 0
    busy_lane = 0
    pair_sum = 0
    for p in range(passes):
        f0 = p * tiles_rows
        f1 = min(filters, f0 + tiles_rows)
        for cb in range(n_cb):
            used = max(0, min(lanes, channels - cb * lanes))
            av = a[cb]
            k = 0
            step_pe = 0
            for lane in range(n_lanes):
                sw[lane] = 0
                nzw[lane] = 0
            for f in range(f0, f1):
                wv = w[f, cb]
                if lanewise:
                    cost = np.int16(1)
                    for lane in range(n_lanes):
                        cost = max(cost, np.int16(av[lane] * wv[lane]))
                        sw[lane] += wv[lane]
                        nzw[lane] += wv[lane] != 0
                else:
                    cost = np.int16(av[0] * wv[0])
                step_pe += cost
                k = max(k, cost)
            costs[p * n_cb + cb] = k
            busy_pe += step_pe
            if not lanewise:  # separable: every used lane is busy for its PE's cost
                busy_lane += step_pe * used
                pair_sum += step_pe
            else:  # per lane, sum over filters of max(1, a * w) = a * (sum w) + n_f - nz(a) nz(w)
                for lane in range(used):
                    busy_lane += av[lane] * sw[lane] + (f1 - f0) - (av[lane] != 0) * nzw[lane]
                    pair_sum += av[lane] * sw[lane]
    return fc_pipeline(costs, columns), busy_pe, busy_lane, pair_sum


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
