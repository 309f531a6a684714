"""Value -> terms and brick statistics, in numba (the fast engine's primitives).

A *term* is a signed power of two; an encoding turns a magnitude into a positive-term mask and a
negative-term mask (bit i set = a term of weight 2^i). Bricks are rows of a 2-D array ``(n, lanes)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .config import Encoding

ENC_BINARY, ENC_BOOTH, ENC_CSD = 0, 1, 2
ENCODING_CODE = {Encoding.BINARY: ENC_BINARY, Encoding.BOOTH: ENC_BOOTH, Encoding.CSD: ENC_CSD,
                 Encoding.FIXED: ENC_BINARY, Encoding.DYNAMIC: ENC_BINARY, Encoding.NONE: ENC_BINARY}

NO_LSB = 1 << 20  # "no set bit" marker for minimum-lsb reductions


@njit(cache=True)
def popcount(x: int) -> int:
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n


@njit(cache=True)
def msb_index(x: int) -> int:
    """Index of the highest set bit of x >= 0; -1 for 0."""
    i = -1
    while x:
        x >>= 1
        i += 1
    return i


@njit(cache=True)
def lsb_index(x: int) -> int:
    """Index of the lowest set bit of x != 0 (two's complement); NO_LSB for 0."""
    if x == 0:
        return NO_LSB
    i = 0
    while (x & 1) == 0:
        x >>= 1
        i += 1
    return i


@njit(cache=True)
def booth_masks(n: int) -> tuple[int, int]:
    """DNNsim's Booth-like recoding of a magnitude n <= 2^15 (DESIGN §4): (positive, negative) term masks."""
    x = n << 2
    pos = 0
    neg = 0
    in_run = False
    for i in range(16):
        w = (x >> (15 - i)) & 7
        pos <<= 1
        neg <<= 1
        if w == 2 or w == 3:
            if in_run:
                neg |= 1
        elif w == 4:
            if in_run:
                neg |= 1
            else:
                pos |= 1
            in_run = False
        elif w == 5 or w == 6:
            if not in_run:
                pos |= 1
        elif w == 7:
            if not in_run:
                pos |= 2
                in_run = True
    return pos, neg


@njit(cache=True)
def csd_masks(n: int) -> tuple[int, int]:
    """Canonical signed digit (non-adjacent form) of n >= 0: (positive, negative) term masks."""
    pos = 0
    neg = 0
    bit = 1
    while n:
        if n & 1:
            if (n & 3) == 3:
                neg |= bit
                n += 1
            else:
                pos |= bit
                n -= 1
        n >>= 1
        bit <<= 1
    return pos, neg


@njit(cache=True)
def term_masks(v: int, enc: int) -> tuple[int, int]:
    """Term masks of |v| under encoding code ``enc`` (the sign of v is applied by the datapath)."""
    m = v if v >= 0 else -v
    if enc == ENC_BOOTH:
        return booth_masks(m)
    if enc == ENC_CSD:
        return csd_masks(m)
    return m, 0


TABLE_SIZE = 1 << 16  # magnitudes 0 .. 2^16 - 1 (16-bit unsigned, or |v| of 16-bit signed)


@njit(cache=True)
def _mask_table(enc: int) -> np.ndarray:
    out = np.empty(TABLE_SIZE, dtype=np.int64)
    for n in range(TABLE_SIZE):
        p, q = term_masks(n, enc)
        out[n] = p | q
    return out


@njit(cache=True)
def _bit_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(msb index, lsb index, popcount) of every x < 2^17."""
    size = 1 << 17
    msb = np.empty(size, dtype=np.int8)
    lsb = np.empty(size, dtype=np.int8)
    pop = np.empty(size, dtype=np.int8)
    for x in range(size):
        msb[x] = msb_index(x)
        lsb[x] = lsb_index(x) if x else 64
        pop[x] = popcount(x)
    return msb, lsb, pop


_TABLES: dict = {}


def mask_table(enc: int) -> np.ndarray:
    """Term-position mask (positive | negative terms) of every magnitude < 2^16 under encoding ``enc``."""
    if enc not in _TABLES:
        _TABLES[enc] = _mask_table(enc)
    return _TABLES[enc]


def bit_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if "bits" not in _TABLES:
        _TABLES["bits"] = _bit_tables()
    return _TABLES["bits"]


@njit(cache=True)
def pra_cycles(masks: np.ndarray, first_stage_bits: int) -> int:
    """Pragmatic's two-stage shifting (DESIGN §4) over the lanes' term-position masks (zero masks allowed); at least 1.

    Each cycle the lowest pending term over the lanes sets the second stage's offset o, and every lane whose next
    (lowest) term lies within the first stage's reach, ``<= o + 2^B - 1``, consumes it. Mutates ``masks``.
    """
    reach = (1 << first_stage_bits) - 1
    cycles = 0
    while True:
        lows = 0
        for i in range(masks.shape[0]):
            m = masks[i]
            lows |= m & -m  # every lane's next term
        if lows == 0:
            break
        limit = (lows & -lows) << reach  # the offset's reach
        for i in range(masks.shape[0]):
            m = masks[i]
            low = m & -m
            if low != 0 and low <= limit:
                masks[i] = m ^ low
        cycles += 1
    return max(cycles, 1)


@njit(cache=True)
def pra_planes(planes: np.ndarray, words: int, first_stage_bits: int, below: np.ndarray) -> int:
    """:func:`pra_cycles` over lanes held as bit planes: ``planes[p, k]`` = the lanes (64 a word, the first ``words``
    words) with a term at position p (mutated); ``below``: scratch of ``words``. Faster than the lane layout over
    many lanes (a union of bricks): each cycle, in the planes from the lowest non-empty one o up to o + 2^B - 1,
    every lane clears its lowest term there."""
    nb = planes.shape[0]
    reach = (1 << first_stage_bits) - 1
    cycles = 0
    lo = 0
    while True:
        while lo < nb:
            empty = True
            for k in range(words):
                if planes[lo, k] != 0:
                    empty = False
                    break
            if not empty:
                break
            lo += 1
        if lo == nb:
            break
        for k in range(words):
            below[k] = 0
        for p in range(lo, min(lo + reach + 1, nb)):
            for k in range(words):
                x = planes[p, k]
                planes[p, k] = x & below[k]  # a lane clears p if p is its lowest term in reach
                below[k] |= x
        cycles += 1
    return max(cycles, 1)


CHUNKS = 64  # parallel loops over bricks / values run in this many contiguous chunks (scratch allocated per chunk)


@njit(cache=True)
def _brick_pra_cost(brick, table, first_stage_bits, pop, masks):
    """PRA cycles of one brick (its lanes' values); ``masks`` is scratch of the brick's length."""
    union = 0
    most = 0
    for i in range(brick.shape[0]):
        v = brick[i]
        m = table[v if v >= 0 else -v]
        masks[i] = m
        union |= m
        if pop[m] > most:
            most = pop[m]
    if first_stage_bits == 0:  # one position per cycle: the OR's popcount
        return max(1, pop[union])
    if (1 << first_stage_bits) > 16:  # every lane reaches its next term: the max popcount
        return max(1, most)
    return pra_cycles(masks, first_stage_bits)


@njit(cache=True, parallel=True)
def _brick_pra_costs(bricks, table, first_stage_bits, pop):
    n, lanes = bricks.shape
    out = np.empty(n, dtype=np.int32)
    for chunk in prange(CHUNKS):
        masks = np.empty(lanes, dtype=np.int64)
        for b in range(chunk * n // CHUNKS, (chunk + 1) * n // CHUNKS):
            out[b] = _brick_pra_cost(bricks[b], table, first_stage_bits, pop, masks)
    return out


def brick_pra_costs(bricks: np.ndarray, enc: int, first_stage_bits: int) -> np.ndarray:
    """PRA cycles of every brick (row) of ``bricks`` under encoding ``enc``."""
    return _brick_pra_costs(bricks, mask_table(enc), first_stage_bits, bit_tables()[2])


@njit(cache=True, parallel=True)
def _brick_msb_lsb(bricks, minor_bit, msb, lsb):
    n, lanes = bricks.shape
    hi = np.empty(n, dtype=np.int32)
    lo = np.empty(n, dtype=np.int32)
    for b in prange(n):
        h = -1
        low = NO_LSB
        for i in range(lanes):
            a = bricks[b, i]
            m = msb[a if a >= 0 else ~a]
            if m > h:
                h = m
            if a != 0:
                t = lsb[a if a > 0 else -a] if minor_bit else 0
                if t < low:
                    low = t
        hi[b] = h
        lo[b] = low
    return hi, lo


def brick_msb_lsb(bricks: np.ndarray, minor_bit: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per brick: max msb over lanes of v (a, or ~a for negative a), -1 if all zero;
    min lsb over non-zero lanes if ``minor_bit`` else 0 (NO_LSB if all zero)."""
    msb, lsb, _ = bit_tables()
    return _brick_msb_lsb(bricks, minor_bit, msb, lsb)


def terms_table(enc: int) -> np.ndarray:
    """Number of non-zero terms of every magnitude < 2^16 under encoding ``enc`` (int8)."""
    key = ("terms", enc)
    if key not in _TABLES:
        _TABLES[key] = bit_tables()[2][mask_table(enc)].astype(np.int8)
    return _TABLES[key]


@njit(cache=True, parallel=True)
def _value_terms(flat, table):
    out = np.empty(flat.size, dtype=np.int32)
    for i in prange(flat.size):
        v = flat[i]
        out[i] = table[v if v >= 0 else -v]
    return out


@njit(cache=True, parallel=True)
def _terms_sum(flat, table):
    total = 0
    for i in prange(flat.size):
        v = flat[i]
        total += table[v if v >= 0 else -v]
    return total


@njit(cache=True, parallel=True)
def _filter_terms(values2d, table):
    nk, nj = values2d.shape
    out = np.zeros(nj, dtype=np.int64)
    for chunk in prange(CHUNKS):  # each chunk owns a contiguous range of columns j
        j0, j1 = chunk * nj // CHUNKS, (chunk + 1) * nj // CHUNKS
        for k in range(nk):
            for j in range(j0, j1):
                v = values2d[k, j]
                out[j] += table[v if v >= 0 else -v]
    return out


def filter_term_sums(weights: np.ndarray, enc: int, groups: int) -> np.ndarray:
    """Sum over each group's filters of the weights' term counts: (groups, C/groups, ...) int64."""
    w = np.ascontiguousarray(weights)
    g, kg = groups, w.shape[0] // groups
    flat = w.reshape(g, kg, -1)
    out = np.stack([_filter_terms(flat[i], terms_table(enc)) for i in range(g)])
    return out.reshape(g, *w.shape[1:])


def value_terms(values: np.ndarray, enc: int) -> np.ndarray:
    """Number of non-zero terms of every value under encoding ``enc`` (same shape, int32)."""
    values = np.ascontiguousarray(values)
    return _value_terms(values.ravel(), terms_table(enc)).reshape(values.shape)


def terms_sum(values: np.ndarray, enc: int) -> int:
    """Total number of non-zero terms of ``values`` under encoding ``enc``."""
    return int(_terms_sum(np.ascontiguousarray(values).ravel(), terms_table(enc)))


@njit(cache=True)
def value_widths(values: np.ndarray, signed: bool, minor_bit: bool) -> np.ndarray:
    """Dynamic precision of every value alone: msb + 1 (- lsb) (+1 if signed); 0 for zero."""
    flat = values.ravel()
    out = np.empty(flat.size, dtype=np.int32)
    for i in range(flat.size):
        a = flat[i]
        if a == 0:
            out[i] = 0
            continue
        v = a if a >= 0 else ~a
        w = msb_index(v) + 1 + (1 if signed else 0)
        if minor_bit:
            w -= lsb_index(a)
        out[i] = max(1, w)
    return out.reshape(values.shape)


def to_bricks(values: np.ndarray, lanes: int, channel_axis: int = 0) -> np.ndarray:
    """Cut ``values`` along ``channel_axis`` into bricks of ``lanes`` channels (zero-padded at the end).

    Returns an array shaped like ``values`` with the channel axis replaced by the brick index and a
    trailing lane axis: e.g. (C, H, W) -> (CB, H, W, lanes).
    """
    c = values.shape[channel_axis]
    cb = -(-c // lanes)
    v = values
    if cb * lanes != c:
        pad = [(0, 0)] * values.ndim
        pad[channel_axis] = (0, cb * lanes - c)
        v = np.pad(values, pad)
    shape = list(v.shape)
    shape[channel_axis:channel_axis + 1] = [cb, lanes]
    v = v.reshape(shape)
    return np.ascontiguousarray(np.moveaxis(v, channel_axis + 1, -1))


@njit(cache=True, parallel=True)
def zero_bricks(bricks: np.ndarray) -> np.ndarray:
    """True for every all-zero brick (row)."""
    n, lanes = bricks.shape
    out = np.ones(n, dtype=np.bool_)
    for b in prange(n):
        for i in range(lanes):
            if bricks[b, i] != 0:
                out[b] = False
                break
    return out
