"""Bit-Tactical's fast engine: the cost kernels over the compact schedule (:func:`.schedule.schedule_compact`).

The schedule gives each slot's choice, per step and filter the farthest promotion, per step the lanes of each row
some real filter selects. A unit (a column group on one call: its windows, every tile's real filters) costs the max
over its PEs:
- TCL: 1 if it has a PE.
- TCLp: per tile, the precision of the union of the selected activations: the lanes each row supplies, taken from
  brick-level max msb / min lsb where a row supplies all of them.
- TCLe: bounded from brick-level tables before any PE is looked at. Every activation a PE of issued step i selects
  lies in buffer rows r .. r + dt of its window (r = the step's row, dt its farthest promotion), and PRA never
  decreases when lanes are added (each lane's progress is behind or equal, cycle by cycle), so PRA over all lanes
  of those rows (``bound``, computed once per brick where the rows are consecutive bricks) bounds every PE; each
  own lane a real filter keeps is a PE lane and PRA is at least one lane's terms (exact: the PRA of the own brick
  when some filter promoted nothing). Only when the bounds differ are PEs costed one by one (bit planes: each term
  position a word of lanes), first those that could reach the upper bound, each skipped if its bound (its farthest
  promotion; its tile's selected lanes) cannot beat the best so far, filters choosing exactly what an earlier one
  chooses skipped, until one reaches the upper bound.
The units of a layer are costed by parallel parts (``workloads.parallel.in_threads``), then reduced in order (lockstep,
run-ahead, or the FC pipeline). Lane sets are words of 64 lanes; ``full`` (a tuple, so that the number of words is
known when compiling) holds the lanes of each word.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit
from numba.cpython.unsafe.numbers import trailing_zeros

from workloads import LayerKind
from workloads.parallel import in_threads

from ...encodings import pra_planes
from ...sync import MODE_PRECISION, run_ahead_step, unit_cost
from .schedule import rotated, rotated_word

TCL, TCLE, TCLP = 0, 1, 2
BIG = 1 << 30


# --------------------------------------------------------------------------------------------------- brick tables

@njit(cache=True, nogil=True)
def _brick_tables(part, parts, masks, n_l, pop, planes, most):
    """Bricks part / parts of term masks (``masks`` reshaped (bricks, n_l)): bit planes (bricks, nb, words) and
    the most terms of one lane."""
    n, nb, words = planes.shape
    for b in range(part * n // parts, (part + 1) * n // parts):
        top = 0
        for lane in range(n_l):
            top = max(top, pop[masks[b * n_l + lane]])
        most[b] = top
        for p in range(nb):
            for k in range(words):
                x = np.int64(0)
                for lane in range(64 * k, min(64 * k + 64, n_l)):  # a plane at a time (vectorized)
                    x |= ((masks[b * n_l + lane] >> p) & 1) << (lane - 64 * k)
                planes[b, p, k] = x


def brick_tables(masks: np.ndarray, lanes: int, pop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bit planes (bricks, term positions, words) of term masks (values * lanes, a brick's lanes adjacent), and per
    brick the most terms of one lane (``pop``: popcount table)."""
    nb = max(1, int(np.bitwise_or.reduce(masks, axis=None)).bit_length())
    n = masks.size // lanes
    planes = np.zeros((n, nb, (lanes + 63) // 64), dtype=np.int64)
    most = np.zeros(n, dtype=np.int8)
    in_threads(_brick_tables, get_num_threads(), masks.ravel(), lanes, pop, planes, most)
    return planes, most


# --------------------------------------------------------------------------------------------------- TCLe bounds

@njit(cache=True)
def _rows_pra(planes, bricks, d, n_l, first_stage_bits, q, below):
    """PRA over every lane of bricks[0..d] (packed into one word per plane when they fit)."""
    nb, wpr = planes.shape[1], planes.shape[2]
    if wpr == 1 and (d + 1) * n_l <= 64:
        for p in range(nb):
            x = np.int64(0)
            for dd in range(d + 1):
                x |= planes[bricks[dd], p, 0] << (dd * n_l)
            q[p, 0] = x
        return pra_planes(q, 1, first_stage_bits, below)  # one word (compiled for it)
    for dd in range(d + 1):
        for p in range(nb):
            for k in range(wpr):
                q[p, dd * wpr + k] = planes[bricks[dd], p, k]
    return pra_planes(q, (d + 1) * wpr, first_stage_bits, below)


@njit(cache=True, nogil=True)
def _run_bounds(part, parts, planes, n_l, h, first_stage_bits, out):
    """out[b, d] for bricks part / parts: PRA over every lane of bricks b .. b + d (those that exist)."""
    n, nb, wpr = planes.shape
    q = np.empty((nb, (h + 1) * wpr), dtype=np.int64)
    below = np.empty((h + 1) * wpr, dtype=np.int64)
    bricks = np.empty(h + 1, dtype=np.int64)
    for b in range(part * n // parts, (part + 1) * n // parts):
        for d in range(h + 1):
            if b + d >= n:
                out[b, d] = out[b, d - 1]
                continue
            bricks[d] = b + d
            out[b, d] = _rows_pra(planes, bricks, d, n_l, first_stage_bits, q, below)


@njit(cache=True, nogil=True)
def _row_bounds(part, parts, run, planes, bricks_per_sub, wbase, rowoff, n_l, h, first_stage_bits, out):
    """out[g, w, r, d] for (sub-conv, window) pairs part / parts: PRA over every lane of buffer rows r .. r + d
    (those that exist) of the window; rows of one kernel row are consecutive bricks, whose bounds are in ``run``."""
    n_sub, n_win, n_t = out.shape[0], out.shape[1], out.shape[2]
    nb, wpr = planes.shape[1], planes.shape[2]
    q = np.empty((nb, (h + 1) * wpr), dtype=np.int64)
    below = np.empty((h + 1) * wpr, dtype=np.int64)
    bricks = np.empty(h + 1, dtype=np.int64)
    n = n_sub * n_win
    for job in range(part * n // parts, (part + 1) * n // parts):
        g = job // n_win
        w = job - g * n_win
        base = g * bricks_per_sub + wbase[w]
        for r in range(n_t):
            top = min(h, n_t - 1 - r)
            for d in range(top + 1):
                bricks[d] = base + rowoff[r + d]
                if rowoff[r + d] - rowoff[r] == d:  # consecutive bricks
                    out[g, w, r, d] = run[bricks[0], d]
                else:
                    out[g, w, r, d] = _rows_pra(planes, bricks, d, n_l, first_stage_bits, q, below)
            for d in range(top + 1, h + 1):
                out[g, w, r, d] = out[g, w, r, top]


def row_bounds(planes, bricks_per_sub, wbase, rowoff, n_t, n_l, h, first_stage_bits) -> np.ndarray:
    """(G, windows, T, h + 1): PRA over every lane of buffer rows r .. r + d (those that exist) of each window."""
    parts = get_num_threads()
    run = np.empty((planes.shape[0], h + 1), dtype=np.int8)
    in_threads(_run_bounds, parts, planes, n_l, h, first_stage_bits, run)
    out = np.empty((planes.shape[0] // bricks_per_sub, wbase.shape[0], n_t, h + 1), dtype=np.int8)
    in_threads(_row_bounds, parts, run, planes, bricks_per_sub, wbase, rowoff, n_l, h, first_stage_bits, out)
    return out


def _call_table(n_batches, passes, tiles, spread, n_sub, sets, steps):
    """Every call in loop order (batch, pass, call): the set each tile issues a step of (-1: none, or finished),
    the step index, and where each batch's calls start. A pass lasts as long as the most steps a tile issues."""
    b, p, t = np.ix_(np.arange(n_batches), np.arange(passes), np.arange(tiles))
    g, fs = np.broadcast_arrays(*((b, p * tiles + t) if spread == 1 else (b * spread + t, p)))  # docs/design.md §3
    placed = np.where((g < n_sub) & (fs < sets), g * sets + fs, -1).reshape(-1, tiles)  # (batch, pass), tile
    issued = np.where(placed >= 0, steps[np.maximum(placed, 0)], 0)
    n_calls = issued.max(axis=1)
    first = np.concatenate([[0], np.cumsum(n_calls.reshape(n_batches, passes).sum(axis=1))])
    of = np.repeat(np.arange(n_calls.size), n_calls)  # the (batch, pass) of each call
    step = np.arange(of.size) - np.repeat(np.cumsum(n_calls) - n_calls, n_calls)
    held = np.where(step[:, None] < issued[of], placed[of], -1)
    return held, step, first


def _call_activity(held, step, nfilt, slot_busy):
    """Per call: real filters and lanes doing a real MAC over its tiles (each per window)."""
    on = held >= 0
    s = np.maximum(held, 0)
    return (nfilt[s] * on).sum(axis=1), (slot_busy[s, step[:, None]] * on).sum(axis=1)


@njit(cache=True)
def _call_rows(held, step, sets, rows, smaxdt, ident, cov, nfilt):
    """TCLe, per call: its distinct (sub-conv, buffer row) pairs over the tiles with real filters, each with the
    farthest promotion, whether some filter promoted nothing, and the union of the own lanes the filters keep."""
    n, tiles = held.shape
    wpr = cov.shape[3]
    count = np.zeros(n, dtype=np.int64)
    key = np.zeros((n, tiles, 4), dtype=np.int64)  # sub-conv, row, farthest dt, some identity
    own = np.zeros((n, tiles, wpr), dtype=np.int64)
    for c in range(n):
        i = step[c]
        for t in range(tiles):
            s = held[c, t]
            if s < 0 or nfilt[s] == 0:
                continue
            g = s // sets
            r = rows[s, i]
            e = 0
            while e < count[c] and (key[c, e, 0] != g or key[c, e, 1] != r):
                e += 1
            if e == count[c]:
                count[c] += 1
                key[c, e, 0] = g
                key[c, e, 1] = r
            key[c, e, 2] = max(key[c, e, 2], smaxdt[s, i])
            if ident[s, i]:
                key[c, e, 3] = 1
            for k in range(wpr):
                own[c, e, k] |= cov[s, i, 0, k]
    return count, key, own


@njit(cache=True, nogil=True)
def _duplicates(part, parts, opt, steps, nfilt, rep):
    """rep[s, i, f] for sets part, part + parts, ...: the first real filter of the set whose slots choose exactly
    what this filter's do (itself if none); such filters cost the same on every window. ``opt`` may be viewed as
    wider words (whole rows compared)."""
    n_l = opt.shape[3]
    for s in range(part, opt.shape[0], parts):
        for i in range(steps[s]):
            for f in range(nfilt[s]):
                rep[s, i, f] = f
                for f2 in range(f):
                    if rep[s, i, f2] != f2:
                        continue
                    same = True
                    for lane in range(n_l):
                        if opt[s, i, f, lane] != opt[s, i, f2, lane]:
                            same = False
                            break
                    if same:
                        rep[s, i, f] = f2
                        break


def duplicates(opt: np.ndarray, steps: np.ndarray, nfilt: np.ndarray) -> np.ndarray:
    """(S, T, rows): see :func:`_duplicates`."""
    words = opt.view(np.int64) if opt.shape[3] % 8 == 0 else opt  # rows compared 8 slots at a time
    rep = np.zeros(opt.shape[:3], dtype=np.int16)  # rows <= 4096
    in_threads(_duplicates, get_num_threads(), words, steps, nfilt, rep)
    return rep


# --------------------------------------------------------------------------------------------------- unit costs

@njit(cache=True, inline="always")
def _pe_cost(g, w, s, i, f, r, opt, planes, bricks_per_sub, wbase, rowoff, dts, dlm, full, first_stage_bits, q, below,
             chosen):
    """Exact TCLe cost of one PE: PRA over the term masks of the activations its slots select, as bit planes: its
    own brick's planes on the slots keeping their own activation (chosen[0]), plus, per map entry m its slots chose
    (chosen[m + 1]), that row's planes rotated by the entry's lane offset on those slots."""
    n_l = opt.shape[3]
    nb = planes.shape[1]
    words = len(full)
    one = np.int64(1)
    used = one  # bit o: some slot chose o (0: its own activation)
    for k in range(words):
        chosen[0, k] = 0
    for lane in range(n_l):
        o = np.int64(opt[s, i, f, lane])
        if o == -2:  # emptied by a promotion, skipped (empty_slots: dnnsim)
            continue
        o = max(o, 0)
        if (used >> o) & 1 == 0:
            used |= one << o
            for k in range(words):
                chosen[o, k] = 0
        chosen[o, lane >> 6] |= one << (lane & 63)
    base = g * bricks_per_sub + wbase[w]
    own = base + rowoff[r]
    for p in range(nb):
        for k in range(words):
            q[p, k] = planes[own, p, k] & chosen[0, k]
    used ^= one
    while used:
        low = used & -used
        used ^= low
        o = trailing_zeros(low)
        b = base + rowoff[r + dts[o - 1]]
        shift = dlm[o - 1]
        for p in range(nb):
            for k in range(words):
                y = rotated(planes[b, p, 0], shift, n_l, full[0]) if words == 1 else \
                    rotated_word(planes[b], p, shift, k, n_l)
                q[p, k] |= y & chosen[o, k]
    if words == 1:  # the one-word specialization
        return pra_planes(q, 1, first_stage_bits, below)
    return pra_planes(q, words, first_stage_bits, below)


@njit(cache=True, inline="always")
def _unit_tcle(c, w_lo, w_hi, held, step, sets, sched, rowinfo, act, geo, first_stage_bits, scratch):
    """TCLe cost of a unit (windows w_lo..w_hi-1 on call c): bounds first, PEs only if they differ."""
    rows, opt, fmaxdt, smaxdt, nfilt, rep, cov = sched
    count, key, own = rowinfo
    masks, most, bound, pop, planes, bricks_per_sub = act
    wbase, rowoff, dts, dlm, full = geo
    tub, q, below, chosen, state, hint = scratch
    i = step[c]
    wpr = len(full)
    n_l = opt.shape[3]
    if w_hi <= w_lo or count[c] == 0:
        return 0
    lb = 1
    ub = 0
    for e in range(count[c]):
        g, r, md, some_identity = key[c, e, 0], key[c, e, 1], key[c, e, 2], key[c, e, 3]
        whole = True
        for k in range(wpr):
            if own[c, e, k] != full[k]:
                whole = False
        for w in range(w_lo, w_hi):
            ub = max(ub, bound[g, w, r, md])
            b = wbase[w] + rowoff[r]
            if some_identity:
                lb = max(lb, bound[g, w, r, 0])
            elif whole:
                lb = max(lb, most[g, b])
            else:
                for k in range(wpr):
                    x = own[c, e, k]
                    while x:
                        low = x & -x
                        x ^= low
                        lb = max(lb, pop[masks[g, b * n_l + 64 * k + trailing_zeros(low)]])
    if lb >= ub:
        return lb
    best = lb
    tiles = held.shape[1]
    for t in range(tiles):
        s = held[c, t]
        tub[t] = 0
        state[t] = 0  # 0: bound over whole rows, 1: over the lanes its filters select, 2: and costed up to ub
        if s < 0 or nfilt[s] == 0:
            continue
        g = s // sets
        for w in range(w_lo, w_hi):
            tub[t] = max(tub[t], bound[g, w, rows[s, i], smaxdt[s, i]])
    for first in (True, False):  # the PEs that could reach the bound first, then the rest that could raise best
        for t in range(tiles):
            if tub[t] <= best or (first and tub[t] < ub):
                continue
            s = held[c, t]
            g = s // sets
            r = rows[s, i]
            if state[t] == 0:  # a tighter bound: over the lanes its filters select (a subset of the rows' lanes)
                state[t] = 1
                md = smaxdt[s, i]
                u = 0
                for w in range(w_lo, w_hi):
                    base = g * bricks_per_sub + wbase[w]
                    for d in range(md + 1):
                        for p in range(planes.shape[1]):
                            for k in range(wpr):
                                q[p, d * wpr + k] = planes[base + rowoff[r + d], p, k] & cov[s, i, d, k]
                    u = max(u, pra_planes(q, (md + 1) * wpr, first_stage_bits, below))
                tub[t] = u
                if u <= best or (first and u < ub):
                    continue
            start = hint[s, i]  # the filter that cost most on the previous unit first
            for ff in range(nfilt[s]):
                f = ff + start
                f -= nfilt[s] * (f >= nfilt[s])
                if rep[s, i, f] != f:
                    continue
                fm = fmaxdt[s, i, f]
                u = 0
                for w in range(w_lo, w_hi):
                    u = max(u, bound[g, w, r, fm])
                u = min(u, tub[t])
                if u <= best or (first and u < ub) or (state[t] == 2 and u >= ub):
                    continue
                for w in range(w_lo, w_hi):
                    v = _pe_cost(g, w, s, i, f, r, opt, planes, bricks_per_sub, wbase, rowoff, dts, dlm, full,
                                 first_stage_bits, q, below, chosen)
                    if v > best:
                        best = v
                        hint[s, i] = f
                        if best >= ub:
                            return best
            if first:
                state[t] = 2
    return best


@njit(cache=True, inline="always")
def _unit_tclp(c, w_lo, w_hi, held, step, sets, sched, act, geo, extra):
    """TCLp cost of a unit: per tile, the precision of the union of its real filters' selected activations."""
    rows, smaxdt, cov, nfilt = sched
    hi, lo, bhi, blo = act
    wbase, rowoff, full, n_l = geo
    if w_hi <= w_lo:
        return 0
    i = step[c]
    wpr = len(full)
    best = 0
    for t in range(held.shape[1]):
        s = held[c, t]
        if s < 0:
            continue
        g = s // sets
        r = rows[s, i]
        hmax = -BIG
        lmin = BIG
        if nfilt[s] > 0:
            for d in range(smaxdt[s, i] + 1):
                whole = True
                some = False
                for k in range(wpr):
                    x = cov[s, i, d, k]
                    if x != full[k]:
                        whole = False
                    if x != 0:
                        some = True
                if not some:
                    continue
                for w in range(w_lo, w_hi):
                    b = wbase[w] + rowoff[r + d]
                    if whole:
                        hmax = max(hmax, bhi[g, b])
                        lmin = min(lmin, blo[g, b])
                        continue
                    for k in range(wpr):
                        x = cov[s, i, d, k]
                        while x:
                            low = x & -x
                            x ^= low
                            v = b * n_l + 64 * k + trailing_zeros(low)
                            hmax = max(hmax, hi[g, v])
                            lmin = min(lmin, lo[g, v])
        best = max(best, unit_cost(hmax, lmin, MODE_PRECISION, extra))
    return best


def _job_table(first, n_ws, cgroups, chunk):
    """Jobs of up to ``chunk`` calls of one (batch, window set): rows (first call, end call, window set, index of
    the job's first unit in the flat loop order (batch, window set, call, column group))."""
    n_calls = np.diff(first)
    per = -(-n_calls // chunk)  # jobs of each (batch, window set)
    b = np.repeat(np.arange(n_calls.size), per * n_ws)
    j = np.arange(b.size) - np.repeat(np.cumsum(per * n_ws) - per * n_ws, per * n_ws)  # the job in its batch
    ws, lo = j // per[b], (j % per[b]) * chunk
    return np.stack([first[b] + lo, first[b] + np.minimum(lo + chunk, n_calls[b]), ws,
                     (n_ws * first[b] + ws * n_calls[b] + lo) * cgroups], axis=1).astype(np.int64)


# The unit costs of jobs part, part + parts, ... for each back end (``nogil`` workers run by :func:`unit_costs`).
# The unit functions are inlined into them (no call, with its array arguments, per unit).

@njit(cache=True, nogil=True)
def _units_tcle(part, parts, k, args):
    (jobs, held, step, n_win, columns, group, sets, rows, opt, fmaxdt, smaxdt, nfilt, rep, cov, count, key, own, masks,
     most, bound, pop, planes, bricks_per_sub, wbase, rowoff, dts, dlm, full, first_stage_bits) = args
    sched = (rows, opt, fmaxdt, smaxdt, nfilt, rep, cov)
    rowinfo = (count, key, own)
    act = (masks, most, bound, pop, planes, bricks_per_sub)
    geo = (wbase, rowoff, dts, dlm, full)
    cgroups = columns // group
    words = (cov.shape[2]) * len(full)  # the lanes of h + 1 rows
    scratch = (np.empty(held.shape[1], dtype=np.int64),  # tile bounds,
               np.empty((planes.shape[1], words), dtype=np.int64), np.empty(words, dtype=np.int64),  # bit planes,
               np.empty((dts.shape[0] + 1, len(full)), dtype=np.int64),  # the slots choosing each map entry,
               np.empty(held.shape[1], dtype=np.int8),  # tile states,
               np.zeros(smaxdt.shape, dtype=np.int16))  # per (set, step) the filter that cost most last
    for jb in range(part, jobs.shape[0], parts):
        c0, c1, ws, j = jobs[jb, 0], jobs[jb, 1], jobs[jb, 2], jobs[jb, 3]
        for c in range(c0, c1):
            for u in range(cgroups):
                w_lo = ws * columns + u * group
                k[j] = _unit_tcle(c, w_lo, min(w_lo + group, n_win), held, step, sets, sched, rowinfo, act, geo,
                                  first_stage_bits, scratch)
                j += 1


@njit(cache=True, nogil=True)
def _units_tclp(part, parts, k, args):
    jobs, held, step, n_win, columns, group, sets, rows, smaxdt, cov, nfilt, hi, lo, bhi, blo, wbase, rowoff, full, \
        n_l, extra = args
    sched = (rows, smaxdt, cov, nfilt)
    act = (hi, lo, bhi, blo)
    geo = (wbase, rowoff, full, n_l)
    cgroups = columns // group
    for jb in range(part, jobs.shape[0], parts):
        c0, c1, ws, j = jobs[jb, 0], jobs[jb, 1], jobs[jb, 2], jobs[jb, 3]
        for c in range(c0, c1):
            for u in range(cgroups):
                w_lo = ws * columns + u * group
                k[j] = _unit_tclp(c, w_lo, min(w_lo + group, n_win), held, step, sets, sched, act, geo, extra)
                j += 1


@njit(cache=True, nogil=True)
def _units_tcl(part, parts, k, args):
    """TCL: a unit costs 1 if it has PEs (a window, and a tile with a step)."""
    jobs, held, n_win, columns, group = args
    cgroups = columns // group
    for jb in range(part, jobs.shape[0], parts):
        c0, c1, ws, j = jobs[jb, 0], jobs[jb, 1], jobs[jb, 2], jobs[jb, 3]
        for c in range(c0, c1):
            some = 0
            for t in range(held.shape[1]):
                if held[c, t] >= 0:
                    some = 1
            for u in range(cgroups):
                k[j] = some if ws * columns + u * group < n_win else 0
                j += 1


def unit_costs(worker, n_units: int, args: tuple) -> np.ndarray:
    """The cost of every unit, flat in loop order (batch, window set, call, column group) (FC: one window, one column
    group: the units are the calls), by ``worker`` (``_units_tcl``, ``_units_tcle`` or ``_units_tclp``); jobs are
    dealt in turn to 4 parts a thread, each writing its own units."""
    k = np.zeros(n_units, dtype=np.int64)
    in_threads(worker, 4 * get_num_threads(), k, args)
    return k


@njit(cache=True)
def _conv_reduce(k, first, rows_on, lanes_on, n_ws, n_win, columns, group, run_ahead):
    """Conv: (cycles, busy PE-cycles, busy lane-cycles) from the unit costs, lockstep or with run-ahead."""
    cgroups = columns // group
    ku = np.zeros(cgroups, dtype=np.int64)
    finish = np.zeros(cgroups, dtype=np.int64)
    ring = np.zeros(max(run_ahead, 1), dtype=np.int64)
    state = np.zeros(2, dtype=np.int64)
    cycles = 0
    busy_pe = 0
    busy_lane = 0
    j = 0
    for b in range(first.shape[0] - 1):
        for ws in range(n_ws):
            for c in range(first[b], first[b + 1]):
                kmax = 0
                for u in range(cgroups):
                    v = np.int64(k[j])
                    j += 1
                    ku[u] = v
                    kmax = max(kmax, v)
                    w_lo = ws * columns + u * group
                    n = min(w_lo + group, n_win) - w_lo
                    if n > 0:
                        busy_pe += v * n * rows_on[c]
                        busy_lane += v * n * lanes_on[c]
                if run_ahead == 0:
                    cycles += kmax
                else:
                    run_ahead_step(finish, ku, ring, state)
    if run_ahead > 0:
        for u in range(cgroups):
            cycles = max(cycles, finish[u])
    return cycles, busy_pe, busy_lane


# --------------------------------------------------------------------------------------------------- layer data

@njit(cache=True)
def _count_nonzero_rows(w2, f_lo, f_hi, lo, hi, out):
    """out[lo:hi] += how many rows f_lo..f_hi-1 of w2 are non-zero in each column."""
    acc = np.zeros(hi - lo, dtype=np.int32)  # a narrow accumulator the compiler vectorizes
    for f in range(f_lo, f_hi):
        row = w2[f, lo:hi]
        for c in range(hi - lo):
            acc[c] += np.int32(row[c] != 0)
    for c in range(hi - lo):
        out[lo + c] += acc[c]


@njit(cache=True, nogil=True)
def _nonzero_per_input(part, parts, w2, groups, out):
    """out (groups, X) for jobs part, part + parts, ... (each: its own columns of one group): how many filters of
    each group have a non-zero weight at each input position; w2 (K, X)."""
    k, x = w2.shape
    kg = k // groups
    chunk = 2048
    n_chunks = (x + chunk - 1) // chunk
    for job in range(part, groups * n_chunks, parts):
        g = job // n_chunks
        lo = (job - g * n_chunks) * chunk
        _count_nonzero_rows(w2, g * kg, (g + 1) * kg, lo, min(lo + chunk, x), out[g])


def _geometry(low, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """Brick offsets inside a sub-conv's (Hp, Wp, channel bricks) activations: of each window's origin, and of each
    buffer row (r, s, brick) from its window's origin."""
    _, cg, hp, wp = low.acts.shape
    kr, ks = low.kernel
    n_cb = -(-cg // lanes)
    w = np.arange(low.windows)
    wbase = ((w // low.out_w) * low.stride * wp + (w % low.out_w) * low.stride) * n_cb
    t = np.arange(kr * ks * n_cb)
    tap, cb = t // n_cb, t % n_cb
    rowoff = ((tap // ks) * wp + tap % ks) * n_cb + cb
    return wbase.astype(np.int64), rowoff.astype(np.int64)


def _act_values(low, lanes: int) -> np.ndarray:
    """Activations (G, Hp * Wp * channel bricks * lanes), channels zero-padded to whole bricks, a brick's lanes
    adjacent."""
    g, cg, hp, wp = low.acts.shape
    n_cb = -(-cg // lanes)
    out = np.zeros((g, hp, wp, n_cb * lanes), dtype=np.int32)
    out[..., :cg] = low.acts.transpose(0, 2, 3, 1)
    return out.reshape(g, -1)


def _effectual_mac_sum(layer, act_cost: np.ndarray, pad_value: int = 0, nonzero: np.ndarray | None = None) -> int:
    """Sum over the layer's MACs whose weight is non-zero of a per-activation cost (padding costs pad_value);
    ``nonzero``: :func:`_nonzero_counts` of the layer, if already known."""
    if nonzero is None:
        nonzero = _nonzero_counts(layer)
    cost = act_cost.astype(np.int64)
    if layer.kind == LayerKind.FC:
        return int(nonzero[0] @ cost)
    if layer.kind == LayerKind.GEMM:
        return int(nonzero[0] @ cost.sum(axis=0))
    pt, pb, pl, pr = layer.padding
    oh, ow = layer.output_hw
    _, cg, kr, ks = layer.weights.shape
    g, st = layer.groups, layer.stride
    padded = np.pad(cost, ((0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
    taps = np.empty((padded.shape[0], kr, ks), dtype=np.int64)  # per channel and tap: the sum over windows
    for r in range(kr):
        for s in range(ks):
            taps[:, r, s] = padded[:, r:r + st * (oh - 1) + 1:st, s:s + st * (ow - 1) + 1:st].sum(axis=(1, 2))
    return int(np.einsum("gcrs,gcrs->", nonzero.reshape(g, cg, kr, ks), taps.reshape(g, cg, kr, ks)))


def _nonzero_counts(layer) -> np.ndarray:
    """(groups, weights per filter): filters of each group with a non-zero weight at each input position."""
    w = np.ascontiguousarray(layer.weights)
    w2 = w.reshape(w.shape[0], -1)
    groups = layer.groups if layer.kind == LayerKind.CONV else 1
    out = np.zeros((groups, w2.shape[1]), dtype=np.int64)
    in_threads(_nonzero_per_input, get_num_threads(), w2, groups, out)
    return out
