"""Brick statistics in numba (the fast engine's primitives): a brick is a row of a 2-D array ``(n, lanes)``.

Value-level bit arithmetic (term encodings, popcounts, tables) lives in ``workloads.bits``, shared with the
pruning package; this module adds what a brick costs: Pragmatic's two-stage shifting over a brick's term masks,
the precision range of a brick, all-zero bricks.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from workloads.bits import ENC_BINARY, NO_LSB, TERM_ENCODINGS, bit_tables, mask_table
from workloads.parallel import kernel, parts

from .knobs import Encoding

# the numba code of every encoding's terms (fixed and dynamic precisions count binary terms)
ENCODING_CODE = {**{Encoding(name): code for name, code in TERM_ENCODINGS.items()},
                 Encoding.FIXED: ENC_BINARY, Encoding.DYNAMIC: ENC_BINARY, Encoding.NONE: ENC_BINARY}


@njit(cache=True)
def pra_cycles(masks: np.ndarray, first_stage_bits: int) -> int:
    """Pragmatic's two-stage shifting (docs/design.md §4) over the lanes' term-position masks (zero masks allowed);
    at least 1.

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


@kernel
def _brick_pra_costs(n_parts, bricks, table, first_stage_bits, pop, out):
    n, lanes = bricks.shape
    for part in prange(n_parts):
        masks = np.empty(lanes, dtype=np.int64)
        for b in range(part * n // n_parts, (part + 1) * n // n_parts):
            out[b] = _brick_pra_cost(bricks[b], table, first_stage_bits, pop, masks)


def brick_pra_costs(bricks: np.ndarray, enc: int, first_stage_bits: int) -> np.ndarray:
    """PRA cycles of every brick (row) of ``bricks`` under encoding ``enc``."""
    out = np.empty(bricks.shape[0], dtype=np.int32)
    _brick_pra_costs(parts(bricks.size), bricks, mask_table(enc), first_stage_bits, bit_tables()[2], out)
    return out


@kernel
def _brick_msb_lsb(n_parts, bricks, minor_bit, msb, lsb, hi, lo):
    n, lanes = bricks.shape
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


def brick_msb_lsb(bricks: np.ndarray, minor_bit: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per brick: max msb over lanes of v (a, or ~a for negative a), -1 if all zero;
    min lsb over non-zero lanes if ``minor_bit`` else 0 (NO_LSB if all zero)."""
    msb, lsb, _ = bit_tables()
    n = bricks.shape[0]
    hi, lo = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
    _brick_msb_lsb(parts(bricks.size), bricks, bool(minor_bit), msb, lsb, hi, lo)
    return hi, lo


@kernel
def _zero_bricks(n_parts, bricks, out):
    n, lanes = bricks.shape
    for b in prange(n):
        zero = True
        for lane in range(lanes):
            if bricks[b, lane] != 0:
                zero = False
                break
        out[b] = zero


def zero_bricks(bricks: np.ndarray) -> np.ndarray:
    """True for every all-zero brick (row)."""
    out = np.empty(bricks.shape[0], dtype=np.bool_)
    _zero_bricks(parts(bricks.size), bricks, out)
    return out
