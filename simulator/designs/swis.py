"""SWIS (Li, Romaszkan, Graening, Gupta, "SWIS: Shared Weight bIt Sparsity for Efficient Neural Network
Acceleration", arXiv:2103.01308, 2021): weight-serial with shared shift positions.

The lanes of a weight brick are cut into groups of ``group_size`` consecutive lanes. Each cycle the PE
broadcasts one shift position p to a group; every lane of the group whose weight magnitude has bit p set
adds ``sign(w) * (activation << p)``. A group therefore needs one cycle per position of the OR of its
weights' magnitudes, but the hardware holds only N = ``shared_terms`` positions per group: a group costs
``min(popcount(OR |w|), N)`` cycles, a PE (row) costs the max over its groups, at least 1 (an all-zero
brick costs 1).

When a group's OR has more than N positions, the hardware applies the N most significant ones and drops
the rest (the project's reading; the sources we could reach do not state a rule): ``effective_weights``
are the weights restricted to those positions, sign kept. Weights decomposed offline by
``pruning.swis.decompose`` use at most N positions per group and run losslessly.

``value_cost`` (ideal work) is the number of one bits of |w| capped at N: what the weight costs alone in
its own group (zero costs 0). ``terms`` counts the one bits of the effective weights.

Rows are the units of the weight-serial engines, and ``group_size`` groups lanes here (GROUP_AXIS), so the
whole-layer hooks run the engines' brick path with one row per unit instead of ``group_size`` rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit, prange

from ..config import ArchConfig, Design
from ..encodings import msb_index, popcount, to_bricks
from ..mapping import channels_are_bricked_in_order, lower
from .base import BrickStats, Cycle, DesignModel, Operand


@njit(cache=True)
def _kept_positions(union: int, n: int) -> int:
    """Mask of the n most significant set bits of ``union``."""
    keep = 0
    for _ in range(n):
        if union == 0:
            break
        p = msb_index(union)
        keep |= 1 << p
        union ^= 1 << p
    return keep


@njit(cache=True, parallel=True)
def brick_swis_costs(bricks: np.ndarray, group: int, n: int) -> np.ndarray:
    """Cycles of every brick (row of ``bricks``): max over lane groups of min(popcount(OR |w|), n), at least 1."""
    nb, lanes = bricks.shape
    out = np.empty(nb, dtype=np.int32)
    for b in prange(nb):
        cost = 1
        for g0 in range(0, lanes, group):
            union = 0
            for i in range(g0, min(g0 + group, lanes)):
                v = bricks[b, i]
                union |= v if v >= 0 else -v
            c = min(popcount(union), n)
            if c > cost:
                cost = c
        out[b] = cost
    return out


@njit(cache=True)
def restrict_bricks(bricks: np.ndarray, group: int, n: int) -> np.ndarray:
    """Every weight restricted to the n most significant positions of its lane group's OR (sign kept)."""
    nb, lanes = bricks.shape
    out = np.empty_like(bricks)
    for b in range(nb):
        for g0 in range(0, lanes, group):
            g1 = min(g0 + group, lanes)
            union = 0
            for i in range(g0, g1):
                v = bricks[b, i]
                union |= v if v >= 0 else -v
            keep = _kept_positions(union, n)
            for i in range(g0, g1):
                v = bricks[b, i]
                out[b, i] = (v & keep) if v >= 0 else -((-v) & keep)
    return out


@njit(cache=True)
def _capped_popcounts(values: np.ndarray, n: int) -> np.ndarray:
    flat = values.ravel()
    out = np.empty(flat.size, dtype=np.int32)
    for i in range(flat.size):
        v = flat[i]
        out[i] = min(popcount(v if v >= 0 else -v), n)
    return out.reshape(values.shape)


@njit(cache=True, parallel=True)
def swis_work(rows: np.ndarray, group: int, n: int) -> tuple[int, int]:
    """(sum of min(popcount |w|, n), set bits kept by the group rule) over ``rows`` (channels on the last axis,
    lane groups = ``group`` consecutive channels)."""
    ideal = 0
    kept_bits = 0
    nr, c = rows.shape
    for b in prange(nr):
        for g0 in range(0, c, group):
            g1 = min(g0 + group, c)
            union = 0
            for i in range(g0, g1):
                v = rows[b, i]
                m = v if v >= 0 else -v
                union |= m
                ideal += min(popcount(m), n)
            keep = _kept_positions(union, n)
            for i in range(g0, g1):
                v = rows[b, i]
                kept_bits += popcount((v if v >= 0 else -v) & keep)
    return ideal, kept_bits


class Swis(DesignModel):
    design = Design.SWIS

    # ----------------------------------------------------------------- brick path
    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        costs = brick_swis_costs(np.ascontiguousarray(bricks, dtype=np.int32), arch.group_size, arch.shared_terms)
        return BrickStats(costs, np.zeros_like(costs))

    def value_cost(self, values: np.ndarray, op: Operand, arch: ArchConfig) -> np.ndarray:
        return _capped_popcounts(np.ascontiguousarray(values, dtype=np.int64), arch.shared_terms)

    def brick_cycles(self, values: list[int], op: Operand, arch: ArchConfig) -> list[Cycle]:
        """Literal schedule: cycle i broadcasts the i-th most significant kept position of every lane group;
        each lane of the group holding that bit adds sign * 2^position."""
        group, n = arch.group_size, arch.shared_terms
        groups = []
        for g0 in range(0, len(values), group):
            lanes = list(range(g0, min(g0 + group, len(values))))
            union = 0
            for lane in lanes:
                union |= abs(values[lane])
            positions = [p for p in reversed(range(union.bit_length())) if (union >> p) & 1][:n]
            groups.append((lanes, positions))
        length = max([1] + [len(positions) for _, positions in groups])
        cycles: list[Cycle] = []
        for i in range(length):
            cycle = []
            for lanes, positions in groups:
                if i < len(positions):
                    p = positions[i]
                    for lane in lanes:
                        v = values[lane]
                        if (abs(v) >> p) & 1:
                            cycle.append((lane, (1 << p) if v > 0 else -(1 << p)))
            cycles.append(cycle)
        return cycles

    # ----------------------------------------------------------------- lossy weights, ideal work
    def effective_weights(self, arch: ArchConfig, layer) -> np.ndarray:
        """Each weight restricted to the N most significant positions of its hardware lane group (the group
        of ``group_size`` lanes of its brick after lowering: space-to-depth and depthwise included)."""
        low_w = lower(layer, arch).weights  # (G, Kg, Cg, R, S)
        cg = low_w.shape[2]
        bricks = to_bricks(low_w, arch.lanes, channel_axis=2)  # (G, Kg, CB, R, S, lanes)
        shape = bricks.shape
        kept = restrict_bricks(bricks.reshape(-1, arch.lanes), arch.group_size, arch.shared_terms).reshape(shape)
        kept = np.moveaxis(kept, -1, 3).reshape(*shape[:2], shape[2] * arch.lanes, *shape[3:5])[:, :, :cg]
        # where every original weight lands in the lowered tensor: lower a copy whose weights are their indices
        index = np.arange(1, layer.weights.size + 1, dtype=np.int32).reshape(layer.weights.shape)
        where = lower(dataclasses.replace(layer, weights=index), arch).weights
        out = np.zeros(layer.weights.size, dtype=layer.weights.dtype)
        real = where > 0
        out[where[real] - 1] = kept[real]
        return out.reshape(layer.weights.shape)

    def ideal_and_terms(self, arch: ArchConfig, layer) -> tuple[float, int]:
        oh, ow = layer.output_hw
        if channels_are_bricked_in_order(layer, arch):  # lane groups = consecutive channels of one filter
            rows = np.ascontiguousarray(np.moveaxis(layer.weights, 1, -1).reshape(-1, layer.weights.shape[1]))
            ideal, terms = swis_work(rows, arch.group_size, arch.shared_terms)
            return float(ideal * oh * ow), terms * oh * ow
        cost = self.value_cost(layer.weights, Operand(layer.weight_signed, layer.weight_bits), arch)
        terms = _capped_popcounts(self.effective_weights(arch, layer).astype(np.int64), 64)
        return float(cost.astype(np.int64).sum() * oh * ow), int(terms.astype(np.int64).sum()) * oh * ow
