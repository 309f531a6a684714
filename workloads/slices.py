"""Weight bit slices as ReRAM crossbar cells store them, and the ADC resolution a crossbar column needs.

A signed integer weight is stored differentially: its magnitude goes to a positive or a negative array (the other
holds 0), each cut into ``cell_bits``-bit slices, lowest significance first (slice j weighs ``2**(j * cell_bits)``).
An unsigned weight uses the positive array only. ``slice_count`` slices cover ``weight_bits`` magnitude bits: a
signed weight's magnitude reaches ``2**(weight_bits - 1)`` (the most negative value), which needs them all.

A crossbar column sums, per read, ``cell value x input digit`` over the rows it holds; with ``input_bits`` bits of
the input applied per read the largest sum is ``sum of the column's cells x (2**input_bits - 1)``, and an ADC
converts it exactly when it has ``adc_bits_for(that sum)`` bits (at least 1). Bit-slice sparsity (zero cells) lowers
that sum, which is what bit-slice L1 regularization (Zhang et al., 2019) exploits.
"""

from __future__ import annotations

import numpy as np


def magnitude_bits(weight_bits: int, signed: bool) -> int:
    """Bits the cells must hold for a weight's magnitude: ``weight_bits`` (the sign is not stored, differential
    arrays, but a signed weight's magnitude reaches ``2**(weight_bits - 1)``)."""
    return weight_bits


def slice_count(weight_bits: int, signed: bool, cell_bits: int) -> int:
    """Slices (cells) per weight and array: ceil(magnitude bits / cell_bits), at least 1."""
    if cell_bits < 1:
        raise ValueError(f"cell_bits ({cell_bits}) must be >= 1")
    return max(1, -(-magnitude_bits(weight_bits, signed) // cell_bits))


def signed_planes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) arrays of a differential pair: max(v, 0) and max(-v, 0), int64."""
    v = np.asarray(values, dtype=np.int64)
    return np.maximum(v, 0), np.maximum(-v, 0)


def weight_slices(magnitudes: np.ndarray, n_slices: int, cell_bits: int) -> np.ndarray:
    """Slices of non-negative integers, lowest first, on a new last axis: ``magnitudes == sum(s_j << j*cell_bits)``
    (uint8). Raises if a magnitude does not fit in ``n_slices`` slices."""
    m = np.asarray(magnitudes, dtype=np.int64)
    if m.size and (int(m.min()) < 0 or int(m.max()) >> (n_slices * cell_bits)):
        raise ValueError(f"magnitudes span [{int(m.min())}, {int(m.max())}], outside the {n_slices} slices of "
                         f"{cell_bits} bits")
    shifts = cell_bits * np.arange(n_slices)
    return ((m[..., None] >> shifts) & ((1 << cell_bits) - 1)).astype(np.uint8)


def adc_bits_for(max_sum) -> np.ndarray:
    """Bits an ADC needs to convert every sum in [0, max_sum] exactly: ceil(log2(max_sum + 1)), at least 1."""
    s = np.asarray(max_sum, dtype=np.int64)
    if s.size and int(s.min()) < 0:
        raise ValueError(f"a column sum cannot be negative (got {int(s.min())})")
    bits = np.zeros(s.shape, dtype=np.int64)
    rest = s.copy()
    while rest.any():  # bit length, exact for int64 (float log2 rounds near powers of two)
        nz = rest > 0
        bits[nz] += 1
        rest >>= 1
    return np.maximum(bits, 1)


def column_adc_bits(cells: np.ndarray, block_rows: int, input_bits: int) -> np.ndarray:
    """ADC bits each column of each row block needs: ``cells`` (rows, columns) of non-negative cell values, cut into
    blocks of ``block_rows`` rows (one crossbar each); returns (blocks, columns)."""
    c = np.asarray(cells, dtype=np.int64)
    if c.ndim != 2:
        raise ValueError(f"cells must be (rows, columns), got shape {c.shape}")
    if block_rows < 1 or input_bits < 1:
        raise ValueError(f"block_rows ({block_rows}) and input_bits ({input_bits}) must be >= 1")
    blocks = -(-c.shape[0] // block_rows)
    padded = np.zeros((blocks * block_rows, c.shape[1]), dtype=np.int64)
    padded[:c.shape[0]] = c
    sums = padded.reshape(blocks, block_rows, -1).sum(axis=1) * ((1 << input_bits) - 1)
    return adc_bits_for(sums)
