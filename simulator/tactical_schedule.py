"""Bit-Tactical's static weight scheduler (the front end of TCL / TCLe / TCLp; Delmas Lascorz et al., ASPLOS'19).

A filter set (``rows`` filters) is a buffer of ``T`` rows (steps, in the order r, s, channel brick), each row
holding every filter's brick of ``lanes`` weights. Going down the rows, the scheduler fills each zero weight
of the current row with a non-zero weight of the same filter promoted from a later row, chosen from the
slot's candidate set (the *search map*: offsets (dt, dl), 1 <= dt <= h, lanes wrapping within the filter);
the promoted weight keeps multiplying its own activation (the row dt steps ahead, lane l + dl), which the
lane's multiplexer selects. Per filter, the zero slots are filled one at a time until none has a candidate:
``least_flexible`` (the paper) fills the slot with the fewest candidates first, ``most_candidates`` (DNNsim
HEAD) the one with the most; ties go to the lowest lane, and the slot takes its first candidate in map order.
A row all of whose weights (every filter of the set) are zero when reached is skipped, at most ``h`` in a row
(the activation window advances at most h + 1 rows a cycle); a buffer whose rows were all skipped still
issues its last row. The issued rows are the set's steps.

Search maps (DNNsim HEAD, sorted by (dt, dl)): T shape = (1..h, 0) plus d lookaside entries (dt, +k), (dt, -k)
for k = 1, 2, ... with dt cycling 1..h per k, + first; L shape = (1..h, 0) plus (1, -1..-d). With h = 0 nothing
can be promoted (and no row skipped): the dense schedule.

``schedule_layer`` is the numba scheduler the fast engine uses; ``reference_schedule`` is a plain-Python one
written independently for the reference engine (the two are checked against each other by the engines' tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .config import ArchConfig, Promotion, SearchShape


def search_map(shape: SearchShape | str, lookahead: int, lookaside: int) -> np.ndarray:
    """Candidate offsets (dt, dl) in promotion order, shape (n, 2) int64; empty when lookahead is 0."""
    if lookahead == 0:
        return np.zeros((0, 2), dtype=np.int64)
    offsets = [(dt, 0) for dt in range(1, lookahead + 1)]
    if SearchShape(shape) == SearchShape.L:
        offsets += [(1, -k) for k in range(1, lookaside + 1)]
    else:
        for i in range(lookaside):
            k = i // 2 + 1  # lookaside entries come in pairs +k, -k, the pair k at lookahead (k - 1) mod h + 1
            offsets.append(((k - 1) % lookahead + 1, k if i % 2 == 0 else -k))
    return np.array(sorted(offsets), dtype=np.int64).reshape(-1, 2)


@njit(cache=True)
def _schedule_set(vals, dts, dls, lookahead, most, rows_out, src_out, wgt_out):
    """Schedule one filter set in place. vals: (T, R, L) (mutated).

    Writes the issued buffer rows to rows_out (T,), and for every issued step i and slot (f, l) the weight
    (wgt_out, 0 for none) and the source code t * L + l of the activation the slot selects (src_out; an empty
    slot keeps its own position). Returns the number of issued steps.
    """
    n_t, n_r, n_l = vals.shape
    n_map = dts.shape[0]
    # map entries that name the same position as an earlier one once lanes wrap (small L) are not candidates twice
    dup = np.zeros(n_map, dtype=np.bool_)
    for m in range(n_map):
        for m2 in range(m):
            if dts[m2] == dts[m] and (dls[m2] - dls[m]) % n_l == 0:
                dup[m] = True
    pos = np.empty((n_t, n_r, n_l), dtype=np.int64)  # where each held weight came from
    for t in range(n_t):
        for f in range(n_r):
            for lane in range(n_l):
                pos[t, f, lane] = t * n_l + lane
    count = np.zeros(n_l, dtype=np.int64)  # candidates of each zero slot of the current row; -1: not a zero slot
    issued = 0
    skipped = 0
    for t in range(n_t):
        zero = True
        for f in range(n_r):
            for lane in range(n_l):
                if vals[t, f, lane] != 0:
                    zero = False
        if zero and skipped < lookahead and not (t == n_t - 1 and issued == 0):
            skipped += 1
            continue
        skipped = 0
        for f in range(n_r):
            for lane in range(n_l):
                count[lane] = -1
                if vals[t, f, lane] == 0:
                    count[lane] = 0
                    for m in range(n_map):
                        th = t + dts[m]
                        if not dup[m] and th < n_t and vals[th, f, (lane + dls[m]) % n_l] != 0:
                            count[lane] += 1
            while True:
                best = -1
                for lane in range(n_l):
                    c = count[lane]
                    if c > 0 and (best < 0 or (most and c > count[best]) or (not most and c < count[best])):
                        best = lane
                if best < 0:
                    break
                th = 0
                ld = 0
                for m in range(n_map):  # the first candidate in map order
                    th = t + dts[m]
                    ld = (best + dls[m]) % n_l
                    if th < n_t and vals[th, f, ld] != 0:
                        break
                v = vals[t, f, best]
                vals[t, f, best] = vals[th, f, ld]
                vals[th, f, ld] = v
                p = pos[t, f, best]
                pos[t, f, best] = pos[th, f, ld]
                pos[th, f, ld] = p
                count[best] = -1
                for m in range(n_map):  # (th, ld) is empty now: it stops being a candidate of the slots that saw it
                    if not dup[m] and t + dts[m] == th:
                        other = (ld - dls[m]) % n_l
                        if count[other] > 0:
                            count[other] -= 1
        rows_out[issued] = t
        for f in range(n_r):
            for lane in range(n_l):
                w = vals[t, f, lane]
                wgt_out[issued, f, lane] = w
                src_out[issued, f, lane] = pos[t, f, lane] if w != 0 else t * n_l + lane
        issued += 1
    return issued


@njit(cache=True)
def _schedule_sets(bufs, dts, dls, lookahead, most, steps, rows_out, src_out, wgt_out):
    """Every filter set of (S, T, R, L) buffers (mutated)."""
    for s in range(bufs.shape[0]):
        steps[s] = _schedule_set(bufs[s], dts, dls, lookahead, most, rows_out[s], src_out[s], wgt_out[s])


@dataclass(frozen=True)
class LayerSchedule:
    """The schedules of every filter set of a lowered layer; set index s = sub-conv * sets_per_group + filter set."""

    steps: np.ndarray  # (S,) issued steps of each set
    rows: np.ndarray  # (S, T) buffer row (dense step) of each issued step
    weight: np.ndarray  # (S, T, rows, lanes) the weight each slot multiplies (0: none)
    src: np.ndarray  # (S, T, rows, lanes) source t * lanes + lane of the activation each slot selects
    filters: np.ndarray  # (S,) real filters of each set
    sets_per_group: int
    dense_steps: int  # T


def weight_buffers(weights: np.ndarray, rows: int, lanes: int) -> np.ndarray:
    """Lowered weights (G, Kg, Cg, R, S) -> dense buffers (G, sets, T, rows, lanes) in step order (r, s, brick)."""
    g, kg, cg, kr, ks = weights.shape
    n_cb = -(-cg // lanes)
    sets = -(-kg // rows)
    w = np.zeros((g, sets * rows, n_cb * lanes, kr, ks), dtype=np.int32)
    w[:, :kg, :cg] = weights
    # (G, sets, rows, CB, lanes, R, S) -> (G, sets, R, S, CB, rows, lanes)
    w = w.reshape(g, sets, rows, n_cb, lanes, kr, ks).transpose(0, 1, 5, 6, 3, 2, 4)
    return np.ascontiguousarray(w.reshape(g, sets, kr * ks * n_cb, rows, lanes))


def schedule_layer(weights: np.ndarray, arch: ArchConfig, filters: np.ndarray | None = None) -> LayerSchedule:
    """Schedule every filter set of lowered weights (G, Kg, Cg, R, S) for ``arch``'s rows, lanes and search;
    ``filters`` (G,): the real filters of each sub-conv (default Kg)."""
    bufs = weight_buffers(weights, arch.rows, arch.lanes)
    g, sets, n_t, rows, lanes = bufs.shape
    smap = search_map(arch.search_shape, arch.lookahead, arch.lookaside)
    n_sets = g * sets
    steps = np.zeros(n_sets, dtype=np.int64)
    rows_out = np.zeros((n_sets, n_t), dtype=np.int64)
    wgt = np.zeros((n_sets, n_t, rows, lanes), dtype=np.int32)
    src = np.zeros((n_sets, n_t, rows, lanes), dtype=np.int32)
    flat = bufs.reshape(n_sets, n_t, rows, lanes)
    most = arch.promotion == Promotion.MOST_CANDIDATES
    _schedule_sets(flat, smap[:, 0].copy(), smap[:, 1].copy(), arch.lookahead, most, steps, rows_out, src, wgt)
    real = np.full(g, weights.shape[1]) if filters is None else np.asarray(filters)
    per_set = np.clip(real.reshape(-1, 1) - rows * np.arange(sets).reshape(1, -1), 0, rows).reshape(-1)
    return LayerSchedule(steps, rows_out, wgt, src, per_set.astype(np.int64), sets, n_t)


# ----------------------------------------------------------------------------------------------------------------
# Plain-Python scheduler for the reference engine (independent of the numba one above).

def _candidate_offsets(shape: str, h: int, d: int) -> list[tuple[int, int]]:
    """The search map written out from its description: straight ahead 1..h; T: lookaside pairs ±k at lookahead
    cycling 1..h; L: lookaside -1..-d one step ahead. Sorted by (dt, dl)."""
    if h == 0:
        return []
    ahead = {(dt, 0) for dt in range(1, h + 1)}
    if shape == "L":
        aside = {(1, -k) for k in range(1, d + 1)}
    else:
        aside = {((k - 1) % h + 1, sign * k) for n in range(d) for k in [n // 2 + 1] for sign in [(1, -1)[n % 2]]}
    return sorted(ahead | aside)


def reference_schedule(dense: list[list[list[int]]], h: int, d: int, shape: str,
                       least_flexible: bool) -> list[list[list[tuple[int, int, int]]]]:
    """Schedule one filter set given as dense[t][f][lane]. Returns the issued steps; each is [f][lane] ->
    (weight, source step, source lane), an empty slot holding (0, its own step, its own lane)."""
    n_t, n_r, n_l = len(dense), len(dense[0]), len(dense[0][0])
    cell = {(t, f, lane): (dense[t][f][lane], t, lane)
            for t in range(n_t) for f in range(n_r) for lane in range(n_l)}
    offsets = _candidate_offsets(shape, h, d)
    out: list[list[list[tuple[int, int, int]]]] = []
    run = 0
    for t in range(n_t):
        all_zero = all(cell[(t, f, lane)][0] == 0 for f in range(n_r) for lane in range(n_l))
        last_chance = t == n_t - 1 and not out
        if all_zero and run < h and not last_chance:
            run += 1
            continue
        run = 0
        for f in range(n_r):
            while True:
                options = {}
                for lane in range(n_l):
                    if cell[(t, f, lane)][0] != 0:
                        continue
                    found: list[tuple[int, int]] = []
                    for dt, dl in offsets:
                        where = (t + dt, (lane + dl) % n_l)
                        if where[0] < n_t and cell[(where[0], f, where[1])][0] != 0 and where not in found:
                            found.append(where)
                    if found:
                        options[lane] = found
                if not options:
                    break
                pick = (min if least_flexible else max)(len(v) for v in options.values())
                lane = next(lane for lane in sorted(options) if len(options[lane]) == pick)
                t2, l2 = options[lane][0]
                cell[(t, f, lane)], cell[(t2, f, l2)] = cell[(t2, f, l2)], cell[(t, f, lane)]
        step = []
        for f in range(n_r):
            slots = []
            for lane in range(n_l):
                w, st, sl = cell[(t, f, lane)]
                slots.append((w, st, sl) if w != 0 else (0, t, lane))
            step.append(slots)
        out.append(step)
    return out
