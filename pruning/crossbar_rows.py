"""Crossbar-row pruning: zero whole input rows of a layer's unrolled weight matrix, block by block of outputs.

A ReRAM crossbar holds a (rows x columns) tile of a layer's weight matrix unrolled per group: rows are the input
positions (c, r, s) of one group (``C/g x R x S``, in that order; fc and GEMM layers: the ``C`` inputs), columns
the group's output channels. The outputs are cut into blocks of ``block_outputs`` consecutive output channels of
the group (128 by default: one crossbar's columns; the simulator maps each bit slice of ``block_outputs`` outputs
onto one crossbar's columns), the last block of a group possibly shorter. Within each block, the ``ratio``
fraction of rows with the smallest L2 norm over the block's outputs is zeroed across the block: exactly
``round(ratio x rows)`` rows per block (rows already zero count, having norm 0), ties to the lower row index.
Norms use real magnitudes (|w| x the recorded weight scale, ``base.real_magnitudes``), so output channels
quantized with different scales weigh fairly. A crossbar mapping that stores only the non-zero rows of each
block (AUTO-PRUNE's compact mapping) then needs fewer crossbars, as long as the design's column blocks fall within
one block of outputs (a group's outputs at most ``block_outputs``, or a multiple of it).

Report column ``rows_freed``: the all-zero rows of the pruned layer, summed over its blocks (at least the rows
the method zeroed); ``rows``: the rows of the unrolled matrix summed over the blocks (so ``rows_freed / rows`` is
the fraction freed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from workloads import Layer, Workload

from .base import METHODS, Param, PruneResult, assemble, check_layers_param, real_magnitudes, register, selected
from .magnitude import smallest


def unrolled_blocks(layer: Layer, block_outputs: int) -> Iterator[tuple[slice, int]]:
    """The output blocks of a layer: (slice of output channels, rows of the unrolled matrix) per block, group by
    group (a block never spans two groups)."""
    k = layer.out_channels
    g = layer.groups
    per_group = k // g
    rows = int(np.prod(layer.weights.shape[1:]))
    for gi in range(g):
        for k0 in range(0, per_group, block_outputs):
            start = gi * per_group + k0
            yield slice(start, min(start + block_outputs, (gi + 1) * per_group)), rows


def prune_rows(layer: Layer, weights: np.ndarray, ratio: float, block_outputs: int = 128) -> tuple[np.ndarray, int]:
    """``weights`` (shaped like the layer's) with, in every block of outputs, the ``round(ratio x rows)`` rows of
    smallest L2 norm zeroed; and the all-zero rows of the result summed over the blocks."""
    k = weights.shape[0]
    mat = weights.reshape(k, -1)  # (outputs, rows)
    mags = real_magnitudes(layer, weights).reshape(k, -1)
    out = mat.copy()
    freed = 0
    for block, rows in unrolled_blocks(layer, block_outputs):
        norms = np.sqrt((mags[block] ** 2).sum(axis=0))
        zero = smallest(norms, round(ratio * rows))
        out[block, zero] = 0
        freed += int((~out[block].any(axis=0)).sum())
    return out.reshape(weights.shape), freed


def kept_rows(layer: Layer, weights: np.ndarray, block_outputs: int = 128) -> np.ndarray:
    """A bool array shaped like ``weights``: True at every weight whose row holds a non-zero weight in its block of
    outputs (the rows a compact crossbar mapping stores); False on the freed rows. Fine-tuning that keeps the
    False entries at zero never makes the compact mapping occupy more crossbars."""
    k = weights.shape[0]
    mat = weights.reshape(k, -1)
    keep = np.zeros(mat.shape, dtype=bool)
    for block, _ in unrolled_blocks(layer, block_outputs):
        keep[block] = mat[block].any(axis=0)[None, :]
    return keep.reshape(weights.shape)


@register("crossbar_rows",
          Param("ratio", float, "fraction of the rows of every block of outputs set to zero", lo=0.0, hi=1.0),
          Param("block_outputs", int, "output channels per block (one crossbar's columns)", 128, lo=1),
          summary="zero the rows (input positions) of smallest L2 norm in every crossbar-wide block of outputs")
def crossbar_rows(workload: Workload, *, ratio: float, block_outputs: int = 128, layers: Sequence[str] | None = None,
                  seed: int = 0) -> PruneResult:
    """Zero the ``ratio`` fraction of rows of smallest L2 norm of every block of ``block_outputs`` outputs of the
    unrolled weight matrices (see the module docstring)."""
    check_layers_param(layers)
    params = METHODS["crossbar_rows"].bind({"ratio": ratio, "block_outputs": block_outputs})
    new, extra = {}, {}
    for layer in selected(workload, layers, "crossbar_rows"):
        w, freed = prune_rows(layer, layer.weights, params["ratio"], params["block_outputs"])
        new[layer.name] = w
        extra[layer.name] = {"rows_freed": freed,
                             "rows": sum(rows for _, rows in unrolled_blocks(layer, params["block_outputs"]))}
    return assemble(workload, "crossbar_rows", params, new, extra)
