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

``schedule_compact`` is the numba scheduler the fast engine uses (``schedule_layer`` writes its result out slot by
slot); ``reference_schedule`` is a plain-Python one written independently for the reference engine (the two are
checked against each other by the tests). The numba scheduler holds a filter's rows as lane sets (words of 64 lanes,
any number of lanes; the word count is a compile-time constant, so one word compiles to one-word code) and counts
the candidates of a row's zero slots bit-sliced; how a row's zero slots get filled depends only on them and the
filter's next h rows, so (16 lanes or fewer) each thread remembers recent fillings in a small table. The filter sets
are independent: parallel parts schedule every ``parts``-th set (``workloads.parallel.in_threads``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import get_num_threads, njit
from numba.cpython.unsafe.numbers import trailing_zeros

from workloads.parallel import in_threads

from ...config import ArchConfig
from ...knobs import EmptySlots, Promotion, SearchShape

MEMO_BITS = 16  # entries (2^) of each thread's table of row fillings


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


def map_tables(smap: np.ndarray, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per map entry: its lane offset reduced to 0..lanes-1, and whether it names the same position as an earlier
    entry once lanes wrap (few lanes); such an entry is not a candidate twice."""
    dlm = smap[:, 1] % lanes
    dup = np.array([any(smap[m2, 0] == smap[m, 0] and dlm[m2] == dlm[m] for m2 in range(m)) for m in range(len(smap))],
                   dtype=np.bool_)
    return dlm, dup


# ------------------------------------------------------------------------------------------------ lane sets
#
# A set of lanes is held in words of 64 lanes (lane l: bit l % 64 of word l // 64); ``full[k]`` holds the lanes
# of word k that exist.

def lane_words(lanes: int) -> np.ndarray:
    """``full`` of ``lanes`` lanes: every lane of each word of 64."""
    return np.array([-1 if lanes - 64 * k >= 64 else (1 << (lanes - 64 * k)) - 1 for k in range(-(-lanes // 64))],
                    dtype=np.int64)


@njit(cache=True)
def _popcount(x):
    """Set bits of a 64-bit word."""
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    return ((x * 0x0101010101010101) >> 56) & 0xFF


@njit(cache=True)
def _bits(rows, d, s, n):
    """Bits s .. s + n - 1 (n <= 64) of the words rows[d], as one word."""
    w = s >> 6
    r = s & 63
    x = rows[d, w]
    if r:
        x = (x >> r) & ((np.int64(1) << (64 - r)) - 1)
        if r + n > 64:
            x |= rows[d, w + 1] << (64 - r)
    return x if n == 64 else x & ((np.int64(1) << n) - 1)


@njit(cache=True)
def rotated(y, shift, n_l, full):
    """A lane set of one word (n_l <= 64 lanes) rotated by ``shift`` lanes: lane l of the result is lane
    (l + shift) mod n_l of y."""
    if shift == 0:
        return y
    return (((y >> shift) & ((np.int64(1) << (n_l - shift)) - 1)) | (y << (n_l - shift))) & full


@njit(cache=True)
def rotated_word(rows, d, shift, k, n_l):
    """Word k of the lane set rows[d] (any number of words) rotated by ``shift`` lanes. Hot loops take
    :func:`rotated` for one word (passing arrays to a function costs reference counting)."""
    n = min(64, n_l - 64 * k)
    s = 64 * k + shift
    s -= n_l * (s >= n_l)
    if s + n <= n_l:
        return _bits(rows, d, s, n)
    a = n_l - s  # lanes before the wrap
    return _bits(rows, d, s, a) | (_bits(rows, d, 0, n - a) << a)


# ------------------------------------------------------------------------------------------------ the scheduler

@njit(cache=True)
def _nonzero_rows(flat, kg, cg, taps, g, fs, n_rows, n_l, n_cb, words):
    """(filters, T, words): the buffer rows of set fs of sub-conv g, each filter's as non-zero lane sets."""
    nz = np.zeros((n_rows, taps * n_cb, words), dtype=np.int64)
    for f in range(min(n_rows, kg - fs * n_rows)):
        row = flat[g * kg + fs * n_rows + f]  # (tap, channel) in order
        for tap in range(taps):
            for cb in range(n_cb):
                for k in range(words):
                    c0 = cb * n_l + 64 * k
                    x = np.int64(0)
                    for c in range(min(64, n_l - 64 * k, cg - c0)):  # branch-free: the compiler vectorizes it
                        x |= np.int64(row[tap * cg + c0 + c] != 0) << c
                    nz[f, tap * n_cb + cb, k] = x
    return nz


@njit(cache=True, nogil=True)
def _schedule_part(part, parts, flat, kg, cg, kr, ks, sets, n_rows, n_l, full, n_cb, dts, dlm, dup, lookahead, most,
                   nfilt, channels, diagonal, memo_bits, drop, steps, rows_out, opt_out, fmaxdt_out, smaxdt_out,
                   ident_out, cov_out, busy_out):
    """Schedule filter sets part, part + parts, ... (set s: filter set fs of sub-conv g) of lowered weights
    (G, Kg, Cg, R, S), given as ``flat`` (G * Kg, R * S * Cg); writes each set's issued steps to steps[s].

    The buffer is held as non-zero lane sets (filters, rows, words of 64 lanes): only which slots hold a weight
    matters to the scheduler, and a promoted weight always comes from its own position (a buffer row gains weights
    only while it is the current one). For issued step i of set s, writes the buffer row (rows_out), each slot's choice
    (opt_out: 0 its own weight, -1 empty (its own activation), -2 emptied by a promotion and, with ``drop``
    (DNNsim's rule), not processed, m + 1 the weight of map entry m), each filter's
    farthest promotion dt (fmaxdt_out) and, over the set's nfilt[s] real filters: the farthest dt (smaxdt_out),
    whether one of them promoted nothing (ident_out), the lanes each row r + dt supplies to some real filter
    (cov_out[s, i, dt]: dt = 0 the slots keeping their own position) and the lanes doing a real MAC (busy_out: a slot
    with a weight, or an empty slot at a real channel of the layer; depthwise: its own channel only).

    How a row's zero slots are filled depends only on them and the filter's next ``lookahead`` rows; when those fit
    one word (and the choices another) the filling is remembered in a direct-mapped table (memo rows: key, choices,
    rows ahead after, slots filled; 2^memo_bits rows, one: no table)."""
    words = len(full)  # a compile-time constant: the one-word case compiles to one-word code
    one = np.int64(1)
    n_map = dts.shape[0]
    flip = np.int64(0) if most else np.int64(-1)  # the count search keeps 1 bits (most) or 0 bits (fewest)
    wide = n_map > 7  # counts need more than three slices
    memo = np.zeros((1 << memo_bits, 4), dtype=np.int64)  # key 0 (no zero slot) is never looked up
    remember = memo_bits > 0
    memo_mask = memo.shape[0] - 1
    seen_by = np.zeros((lookahead + 1, words), dtype=np.int64)  # seen_by[dt] lane j: the slot idx - j sees (dt, idx)
    for m in range(dts.shape[0]):
        if not dup[m]:
            j = (n_l - dlm[m]) % n_l
            seen_by[dts[m], j >> 6] |= one << (j & 63)
    ahead = np.zeros((lookahead + 1, words), dtype=np.int64)  # the filter's rows t + dt
    holes = np.empty(words, dtype=np.int64)
    own = np.empty(words, dtype=np.int64)
    cnt = np.empty((words, 6), dtype=np.int64)
    for s in range(part, steps.shape[0], parts):
        g = s // sets
        fs = s - g * sets
        nz = _nonzero_rows(flat, kg, cg, kr * ks, g, fs, n_rows, n_l, n_cb, words)
        nz0 = nz.copy() if drop else np.zeros((1, 1, 1), dtype=np.int64)  # before any promotion (drop only)
        n_t = nz.shape[1]
        issued = 0
        skipped = 0
        for t in range(n_t):
            zero = True
            for f in range(n_rows):
                for k in range(words):
                    zero &= nz[f, t, k] == 0
                if not zero:
                    break
            if zero and skipped < lookahead and not (t == n_t - 1 and issued == 0):
                skipped += 1
                continue
            skipped = 0
            i = issued
            rows_out[s, i] = t
            lo_ch = (t % n_cb) * n_l  # the channel of the row's lane 0
            smax = 0
            ident = False
            busy = 0
            for k in range(words):
                own[k] = 0
            for f in range(n_rows):
                real = f < nfilt[s]
                fmax = 0
                some = False
                for k in range(words):
                    holes[k] = ~nz[f, t, k] & full[k]
                    some |= holes[k] != 0
                if some:
                    for d in range(1, lookahead + 1):
                        for k in range(words):
                            ahead[d, k] = nz[f, t + d, k] if t + d < n_t else 0
                    key = holes[0]
                    slot = 0
                    if remember:  # one word; the row and the rows ahead fit one word (shifts stay below 64)
                        for d in range(1, lookahead + 1):
                            key |= ahead[d, 0] << (d * n_l)
                        slot = ((key * np.int64(-7046029254386353131)) >> 40) & memo_mask
                    if remember and memo[slot, 0] == key:
                        choice = memo[slot, 1]
                        for lane in range(n_l):  # 0 for the slots it leaves as they are
                            opt_out[s, i, f, lane] = (choice >> (4 * lane)) & 15
                        holes[0] &= ~memo[slot, 3]
                        rest = memo[slot, 2]
                        for d in range(1, lookahead + 1):
                            ahead[d, 0] = (rest >> ((d - 1) * n_l)) & full[0]
                    else:
                        for k in range(words):  # count every zero slot's candidates
                            h = holes[k]
                            c0 = c1 = c2 = c3 = c4 = c5 = np.int64(0)
                            for m in range(n_map):
                                if dup[m] or h == 0:
                                    continue
                                carry = h & (rotated(ahead[dts[m], 0], dlm[m], n_l, full[0]) if words == 1 else
                                             rotated_word(ahead, dts[m], dlm[m], k, n_l))
                                nxt = c0 & carry
                                c0 ^= carry
                                carry = nxt
                                nxt = c1 & carry
                                c1 ^= carry
                                carry = nxt
                                if wide:
                                    nxt = c2 & carry
                                    c2 ^= carry
                                    carry = nxt
                                    nxt = c3 & carry
                                    c3 ^= carry
                                    carry = nxt
                                    nxt = c4 & carry
                                    c4 ^= carry
                                    c5 ^= nxt
                                else:
                                    c2 ^= carry
                            cnt[k, 0], cnt[k, 1], cnt[k, 2], cnt[k, 3], cnt[k, 4], cnt[k, 5] = c0, c1, c2, c3, c4, c5
                        choice = np.int64(0)
                        while True:
                            lane = -1  # the fewest (most) candidates, then the lowest lane
                            best = 0
                            for k in range(words):
                                c0, c1, c2 = cnt[k, 0], cnt[k, 1], cnt[k, 2]
                                c3, c4, c5 = cnt[k, 3], cnt[k, 4], cnt[k, 5]
                                cand = (c0 | c1 | c2 | c3 | c4 | c5) & holes[k]
                                if cand == 0:
                                    continue
                                if wide:
                                    y = cand & (c5 ^ flip)
                                    cand = y if y else cand
                                    y = cand & (c4 ^ flip)
                                    cand = y if y else cand
                                    y = cand & (c3 ^ flip)
                                    cand = y if y else cand
                                y = cand & (c2 ^ flip)
                                cand = y if y else cand
                                y = cand & (c1 ^ flip)
                                cand = y if y else cand
                                y = cand & (c0 ^ flip)
                                cand = y if y else cand
                                b = trailing_zeros(cand)
                                if words == 1:
                                    lane = b
                                    break
                                v = (((c0 >> b) & 1) | (((c1 >> b) & 1) << 1) | (((c2 >> b) & 1) << 2)
                                     | (((c3 >> b) & 1) << 3) | (((c4 >> b) & 1) << 4) | (((c5 >> b) & 1) << 5))
                                if lane < 0 or (v > best if most else v < best):
                                    lane = 64 * k + b
                                    best = v
                            if lane < 0:
                                break
                            m = 0
                            idx = 0
                            for m in range(n_map):  # its first candidate in map order
                                idx = lane + dlm[m]
                                idx -= n_l * (idx >= n_l)
                                if (ahead[dts[m], idx >> 6] >> (idx & 63)) & 1:
                                    break
                            dt = dts[m]
                            ahead[dt, idx >> 6] &= ~(one << (idx & 63))
                            holes[lane >> 6] ^= one << (lane & 63)
                            opt_out[s, i, f, lane] = m + 1
                            choice |= np.int64(m + 1) << ((4 * lane) & 63)
                            shift = n_l - idx if idx else 0
                            # (t + dt, idx) is empty now: the zero slots that saw it lose a candidate
                            for k in range(words):
                                borrow = holes[k] & (rotated(seen_by[dt, 0], shift, n_l, full[0]) if words == 1 else
                                                     rotated_word(seen_by, dt, shift, k, n_l))
                                if borrow == 0:
                                    continue
                                c0, c1, c2 = cnt[k, 0], cnt[k, 1], cnt[k, 2]
                                nxt = borrow & ~c0
                                c0 ^= borrow
                                borrow = nxt
                                nxt = borrow & ~c1
                                c1 ^= borrow
                                borrow = nxt
                                if wide:
                                    c3, c4 = cnt[k, 3], cnt[k, 4]
                                    nxt = borrow & ~c2
                                    c2 ^= borrow
                                    borrow = nxt
                                    nxt = borrow & ~c3
                                    c3 ^= borrow
                                    borrow = nxt
                                    nxt = borrow & ~c4
                                    c4 ^= borrow
                                    cnt[k, 5] ^= nxt
                                    cnt[k, 3], cnt[k, 4] = c3, c4
                                else:
                                    c2 ^= borrow
                                cnt[k, 0], cnt[k, 1], cnt[k, 2] = c0, c1, c2
                        if remember:
                            rest = np.int64(0)
                            for d in range(1, lookahead + 1):
                                rest |= ahead[d, 0] << ((d - 1) * n_l)
                            memo[slot, 0] = key
                            memo[slot, 1] = choice
                            memo[slot, 2] = rest
                            memo[slot, 3] = key & full[0] & ~holes[0]
                    for d in range(1, min(lookahead, n_t - 1 - t) + 1):
                        for k in range(words):
                            taken = nz[f, t + d, k] & ~ahead[d, k]  # the weights promoted from row t + d
                            if taken:
                                fmax = d
                                if real:
                                    cov_out[s, i, d, k] |= taken
                            nz[f, t + d, k] = ahead[d, k]
                    for k in range(words):
                        x = holes[k]
                        while x:  # slots left empty
                            low = x & -x
                            x ^= low
                            opt_out[s, i, f, 64 * k + trailing_zeros(low)] = -1
                            if drop and nz0[f, t, k] & low:  # its weight went to an earlier step: skipped
                                opt_out[s, i, f, 64 * k + trailing_zeros(low)] = -2
                fmaxdt_out[s, i, f] = fmax
                if real:
                    if fmax > smax:
                        smax = fmax
                    dropped_any = False
                    if drop and some:
                        for k in range(words):
                            dropped_any |= (holes[k] & nz0[f, t, k]) != 0
                    if fmax == 0 and not dropped_any:  # its slots select exactly its own row's activations
                        ident = True
                    for k in range(words):
                        promoted = ~nz[f, t, k] & full[k] & ~holes[k]  # (no zero slot: none)
                        dropped = holes[k] & nz0[f, t, k] if drop and some else np.int64(0)
                        x = nz[f, t, k] | promoted
                        own[k] |= full[k] & ~promoted & ~dropped
                        lo = lo_ch + 64 * k  # the channel of the word's lane 0
                        n_real = min(max(channels[g] - lo, 0), min(64, n_l - 64 * k))
                        if diagonal:
                            d = fs * n_rows + f - lo
                            real_ch = one << d if 0 <= d < n_real else np.int64(0)
                        else:
                            real_ch = np.int64(-1) if n_real == 64 else (one << n_real) - 1
                        busy += _popcount(x | (real_ch & ~dropped))
            for k in range(words):
                cov_out[s, i, 0, k] = own[k]
            smaxdt_out[s, i] = smax
            ident_out[s, i] = ident
            busy_out[s, i] = busy
            issued += 1
        steps[s] = issued


@dataclass(frozen=True)
class CompactSchedule:
    """The fast engine's form of every filter set's schedule (set index s = sub-conv * sets_per_group + set).

    ``opt[s, i, f, l]`` says what slot (f, l) of issued step i holds: 0 its own weight, -1 nothing (it keeps its
    own activation), -2 nothing because its weight was promoted to an earlier step (``empty_slots: dnnsim`` only:
    not processed), m + 1 the weight from map entry m (dt, dl) of ``smap``, i.e. buffer row rows[s, i] + dt and
    lane (l + dl) mod lanes, whose activation it selects."""

    steps: np.ndarray  # (S,) issued steps of each set
    rows: np.ndarray  # (S, T) buffer row (dense step) of each issued step
    opt: np.ndarray  # (S, T, rows, lanes) int8
    fmaxdt: np.ndarray  # (S, T, rows) farthest promotion of each filter (0: none)
    smaxdt: np.ndarray  # (S, T) farthest promotion over the set's real filters
    ident: np.ndarray  # (S, T) some real filter promoted nothing
    cov: np.ndarray  # (S, T, h + 1, words) lanes of row rows + dt selected by some real filter (64 lanes a word)
    slot_busy: np.ndarray  # (S, T) lanes doing a real MAC over the real filters
    filters: np.ndarray  # (S,) real filters of each set
    smap: np.ndarray  # (n, 2) the search map
    sets_per_group: int
    dense_steps: int  # T


def schedule_compact(weights: np.ndarray, arch: ArchConfig, filters: np.ndarray | None = None,
                     channels: np.ndarray | None = None, diagonal: bool = False) -> CompactSchedule:
    """Schedule every filter set of lowered weights (G, Kg, Cg, R, S); ``filters`` / ``channels`` (G,): the real
    filters / input channels of each sub-conv (default Kg / Cg); ``diagonal``: depthwise (filter i multiplies
    only channel i)."""
    g, kg, cg, kr, ks = weights.shape
    rows, lanes = arch.rows, arch.lanes
    n_cb = -(-cg // lanes)
    sets = -(-kg // rows)
    n_t = kr * ks * n_cb
    n_sets = g * sets
    smap = search_map(arch.search_shape, arch.lookahead, arch.lookaside)
    real = np.full(g, kg) if filters is None else np.asarray(filters)
    per_set = np.clip(real.reshape(-1, 1) - rows * np.arange(sets).reshape(1, -1), 0, rows).reshape(-1)
    per_set = per_set.astype(np.int64)
    chans = np.full(g, cg, dtype=np.int64) if channels is None else np.asarray(channels, dtype=np.int64)
    steps = np.zeros(n_sets, dtype=np.int64)
    rows_out = np.zeros((n_sets, n_t), dtype=np.int32)
    opt = np.zeros((n_sets, n_t, rows, lanes), dtype=np.int8)
    fmaxdt = np.zeros((n_sets, n_t, rows), dtype=np.int8)
    smaxdt = np.zeros((n_sets, n_t), dtype=np.int8)
    ident = np.zeros((n_sets, n_t), dtype=np.bool_)
    cov = np.zeros((n_sets, n_t, arch.lookahead + 1, (lanes + 63) // 64), dtype=np.int64)
    busy = np.zeros((n_sets, n_t), dtype=np.int64)
    most = arch.promotion == Promotion.MOST_CANDIDATES
    w = weights if weights.dtype == np.int32 else weights.astype(np.int32)
    # a row's filling is remembered when it and the rows ahead fit one word, and its choices another (4 bits a lane)
    memo = lanes * (arch.lookahead + 1) <= 64 and lanes <= 16 and len(smap) <= 14 and arch.lookahead > 0
    # a filter's weights, (tap, channel) in order: a brick's channels are adjacent
    flat = np.ascontiguousarray(w.reshape(g * kg, cg, kr * ks).transpose(0, 2, 1)).reshape(g * kg, kr * ks * cg)
    dlm, dup = map_tables(smap, lanes)
    in_threads(_schedule_part, get_num_threads(), flat, kg, cg, kr, ks, sets, rows, lanes,
               tuple(int(x) for x in lane_words(lanes)), n_cb, smap[:, 0].copy(), dlm, dup, arch.lookahead, most,
               per_set, chans, diagonal, MEMO_BITS if memo else 0, arch.empty_slots == EmptySlots.DNNSIM, steps,
               rows_out, opt, fmaxdt, smaxdt, ident, cov,
               busy)
    return CompactSchedule(steps, rows_out, opt, fmaxdt, smaxdt, ident, cov, busy, per_set, smap, sets, n_t)


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
    skipped: np.ndarray  # (S, T, rows, lanes) slots a promotion emptied that are not processed (empty_slots: dnnsim)


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
    ``filters`` (G,): the real filters of each sub-conv (default Kg). The fast engine's scheduler
    (:func:`schedule_compact`), written out slot by slot: each slot's weight and the source t * lanes + lane of
    the activation it selects (an empty slot keeps its own position)."""
    cs = schedule_compact(weights, arch, filters)
    lanes = arch.lanes
    n_sets, n_t = cs.rows.shape
    dense = weight_buffers(weights, arch.rows, lanes).reshape(n_sets, n_t, arch.rows, lanes)
    dts = np.concatenate([[0, 0], cs.smap[:, 0]])  # opt + 1 -> (dt, dl): -1 and 0 keep their own position
    dls = np.concatenate([[0, 0], cs.smap[:, 1]])
    opt = np.maximum(cs.opt.astype(np.int64), -1) + 1  # an emptied slot (-2) keeps its own position too
    lane = np.arange(lanes).reshape(1, 1, 1, -1)
    src = (cs.rows[:, :, None, None] + dts[opt]) * lanes + (lane + dls[opt]) % lanes
    f = np.arange(arch.rows).reshape(1, 1, -1, 1)
    weight = dense[np.arange(n_sets).reshape(-1, 1, 1, 1), src // lanes, f, src % lanes]
    weight = np.where(opt == 0, 0, weight).astype(np.int32)
    valid = np.arange(n_t).reshape(1, -1, 1, 1) < cs.steps.reshape(-1, 1, 1, 1)
    src = np.where(valid, src, 0).astype(np.int32)
    weight = np.where(valid, weight, 0)
    skipped = valid & (cs.opt == -2)
    return LayerSchedule(cs.steps, cs.rows.astype(np.int64), weight, src, cs.filters, cs.sets_per_group, n_t, skipped)


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
                       least_flexible: bool, drop_emptied: bool = False) -> list[list[list[tuple[int, int, int]]]]:
    """Schedule one filter set given as dense[t][f][lane]. Returns the issued steps; each is [f][lane] ->
    (weight, source step, source lane), an empty slot holding (0, its own step, its own lane), or with
    ``drop_emptied`` (DNNsim) (0, -1, -1) if its own weight was non-zero (promoted to an earlier step): not
    processed."""
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
                if w != 0:
                    slots.append((w, st, sl))
                elif drop_emptied and dense[t][f][lane] != 0:
                    slots.append((0, -1, -1))
                else:
                    slots.append((0, t, lane))
            step.append(slots)
        out.append(step)
    return out
