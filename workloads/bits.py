"""Bits of integer values: popcount, msb / lsb, top bits, and signed-power-of-two *terms* (numba).

One home for the bit arithmetic the simulator's cost models and the pruning methods share. A *term* is a
signed power of two; a term encoding turns a magnitude into a positive-term mask and a negative-term mask (bit
i set = a term of weight 2^i):

- ``binary``: the one bits of the magnitude (its essential bits);
- ``booth``: DNNsim's Booth-like recoding (docs/design.md §4): runs of three or more ones collapse to two terms;
- ``csd``: canonical signed digit (non-adjacent form), the fewest terms.

Every function takes magnitudes or signed integers as documented; the sign of a value is applied by whoever
multiplies it. Tables cover magnitudes below ``TABLE_SIZE`` (16-bit values).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .parallel import kernel, parts

ENC_BINARY, ENC_BOOTH, ENC_CSD = 0, 1, 2
TERM_ENCODINGS = {"binary": ENC_BINARY, "booth": ENC_BOOTH, "csd": ENC_CSD}  # name -> numba code

NO_LSB = 1 << 20  # "no set bit" marker for minimum-lsb reductions
TABLE_SIZE = 1 << 16  # magnitudes 0 .. 2^16 - 1 (16-bit unsigned, or |v| of 16-bit signed)


def term_code(encoding: str) -> int:
    """The numba code of a term encoding name (``binary``, ``booth`` or ``csd``)."""
    try:
        return TERM_ENCODINGS[str(encoding)]
    except KeyError:
        raise ValueError(f"encoding ({encoding!r}) must be one of: {', '.join(TERM_ENCODINGS)}") from None


# ----------------------------------------------------------------------------- scalars
@njit(cache=True)
def popcount(x: int) -> int:
    """Set bits of x >= 0."""
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
def top_bits(x: int, n: int) -> int:
    """Mask of the n most significant set bits of x >= 0 (all of them if x has fewer)."""
    keep = 0
    for _ in range(n):
        if x == 0:
            break
        p = msb_index(x)
        keep |= 1 << p
        x ^= 1 << p
    return keep


@njit(cache=True)
def magnitude_union(row: np.ndarray, g0: int, g1: int) -> int:
    """OR of |row[g0:g1]|: the bit columns a group of lanes occupies."""
    union = 0
    for i in range(g0, g1):
        v = row[i]
        union |= v if v >= 0 else -v
    return union


@njit(cache=True)
def kept_low(union: int, kept: int) -> int:
    """The lowest column BitX keeps in a group whose magnitudes OR to ``union``: its msb - kept + 1 (0 when every
    column is kept, ``kept`` <= 0, or the group is empty)."""
    if kept <= 0 or union == 0:
        return 0
    return max(0, msb_index(union) - kept + 1)


@njit(cache=True)
def booth_masks(n: int) -> tuple[int, int]:
    """DNNsim's Booth-like recoding of a magnitude n <= 2^15 (docs/design.md §4): (positive, negative) term
    masks. The 18-bit string of n << 2 is scanned from its most significant end with a 3-bit window."""
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


# ----------------------------------------------------------------------------- tables
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
    """(msb index, lsb index (64 for 0), popcount) of every x < 2^17, int8."""
    if "bits" not in _TABLES:
        _TABLES["bits"] = _bit_tables()
    return _TABLES["bits"]


def terms_table(enc: int) -> np.ndarray:
    """Number of non-zero terms of every magnitude < 2^16 under encoding ``enc`` (int8)."""
    key = ("terms", enc)
    if key not in _TABLES:
        _TABLES[key] = bit_tables()[2][mask_table(enc)].astype(np.int8)
    return _TABLES[key]


# ----------------------------------------------------------------------------- arrays
@njit(cache=True)
def _value_terms_into(flat, table, out):
    for i in range(flat.size):
        v = flat[i]
        out[i] = table[v if v >= 0 else -v]


@kernel
def _terms_sum(n_parts, flat, table):
    total = 0
    for i in prange(flat.size):
        v = flat[i]
        total += table[v if v >= 0 else -v]
    return total


@njit(cache=True)
def _filter_terms(values2d, table):
    nk, nj = values2d.shape
    out = np.zeros(nj, dtype=np.int64)
    for k in range(nk):  # rows streamed in memory order (faster on one thread than column chunks on several)
        for j in range(nj):
            v = values2d[k, j]
            out[j] += table[v if v >= 0 else -v]
    return out


def value_terms(values: np.ndarray, enc: int, dtype=np.int32) -> np.ndarray:
    """Number of non-zero terms of every value under encoding ``enc`` (same shape; int32, or int16 for arrays the
    both-serial kernels stream)."""
    values = _int32(values)
    out = np.empty(values.shape, dtype=dtype)  # numpy's allocator: huge pages for large arrays, fewer page faults
    _value_terms_into(values.ravel(), terms_table(enc), out.reshape(-1))
    return out


def terms_sum(values: np.ndarray, enc: int) -> int:
    """Total number of non-zero terms of ``values`` under encoding ``enc``."""
    flat = _int32(values).ravel()
    return int(_terms_sum(parts(flat.size), flat, terms_table(enc)))


def filter_term_sums(weights: np.ndarray, enc: int, groups: int) -> np.ndarray:
    """Sum over each group's filters of the weights' term counts: (groups, C/groups, ...) int64."""
    w = _int32(weights)
    g, kg = groups, w.shape[0] // groups
    flat = w.reshape(g, kg, -1)
    out = np.stack([_filter_terms(flat[i], terms_table(enc)) for i in range(g)])
    return out.reshape(g, *w.shape[1:])


@njit(cache=True)
def _value_widths(flat, signed, minor_bit):
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
    return out


def value_widths(values: np.ndarray, signed: bool, minor_bit: bool) -> np.ndarray:
    """Dynamic precision of every value alone, in bits: msb + 1 (- lsb with ``minor_bit``) (+1 if signed), msb of
    v or of ~v for negative v; 0 for zero. Same shape, int32."""
    values = _int32(values)
    return _value_widths(values.ravel(), bool(signed), bool(minor_bit)).reshape(values.shape)


def _int32(values) -> np.ndarray:
    """Values as a contiguous int32 array (one numba specialization for every caller)."""
    return np.ascontiguousarray(values, dtype=np.int32)
