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
``pruning.swis`` use at most N positions per group and run losslessly.

``value_cost`` (ideal work) is the number of one bits of |w| capped at N: what the weight costs alone in
its own group (zero costs 0). ``terms`` counts the one bits of the effective weights.

Rows are the units of the weight-serial engines; ``group_size`` groups lanes here (``group_axis``), so every row
is its own unit.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from workloads.bits import magnitude_union, popcount, top_bits
from workloads.bricks import channel_rows, channels_are_bricked_in_order, weight_brick_index
from workloads.parallel import kernel, parts

from .. import components as hw
from ..config import ArchConfig
from ..knobs import ENCODING, GROUP_SIZE, RUN_AHEAD, SERIAL, Design, Encoding, Knob, Serial
from ..plan import LayerPlan, Operand
from .base import BrickStats, Cycle, DesignModel, weight_error_fields


def brick_swis_costs(bricks: np.ndarray, group: int, n: int) -> np.ndarray:
    """Cycles of every brick (row of ``bricks``): max over lane groups of min(popcount(OR |w|), n), at least 1."""
    out = np.empty(bricks.shape[0], dtype=np.int32)
    _brick_swis_costs(parts(bricks.size), bricks, group, n, out)
    return out


@kernel
def _brick_swis_costs(n_parts, bricks, group, n, out):
    nb, lanes = bricks.shape
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


@njit(cache=True)
def restrict_indexed(index: np.ndarray, flat: np.ndarray, group: int, n: int, out: np.ndarray) -> None:
    """Every weight restricted to the n most significant positions of its lane group's OR (sign kept), in place in
    ``out``: ``index`` (bricks, lanes) holds 1 + the flat position of each lane's weight (0: an empty lane)."""
    nb, lanes = index.shape
    for b in range(nb):
        for g0 in range(0, lanes, group):
            g1 = min(g0 + group, lanes)
            union = 0
            for i in range(g0, g1):
                k = index[b, i]
                if k > 0:
                    v = flat[k - 1]
                    union |= v if v >= 0 else -v
            keep = top_bits(union, n)
            for i in range(g0, g1):
                k = index[b, i]
                if k > 0:
                    v = flat[k - 1]
                    out[k - 1] = (v & keep) if v >= 0 else -((-v) & keep)


@njit(cache=True)
def _capped_popcounts(values: np.ndarray, n: int) -> np.ndarray:
    flat = values.ravel()
    out = np.empty(flat.size, dtype=np.int32)
    for i in range(flat.size):
        v = flat[i]
        out[i] = min(popcount(v if v >= 0 else -v), n)
    return out.reshape(values.shape)


def swis_stats(rows: np.ndarray, group: int, n: int) -> tuple[int, int, float, float]:
    """Over ``rows`` (channels on the last axis, lane groups = ``group`` consecutive channels), in one pass:
    (sum of min(popcount |w|, n), set bits kept by the group rule, ||w' - w||^2, ||w||^2), w' the weights restricted
    to their group's n most significant positions (not built)."""
    ideal, kept_bits, err2, norm2 = _swis_stats(parts(rows.size), rows, group, n)
    return int(ideal), int(kept_bits), float(err2), float(norm2)


@kernel
def _swis_stats(n_parts, rows, group, n):
    ideal = 0
    kept_bits = 0
    err2 = 0.0
    norm2 = 0.0
    nr, c = rows.shape
    for b in prange(nr):
        row = rows[b]
        for g0 in range(0, c, group):
            g1 = min(g0 + group, c)
            keep = top_bits(magnitude_union(row, g0, g1), n)
            for i in range(g0, g1):
                v = row[i]
                m = v if v >= 0 else -v
                ideal += min(popcount(m), n)
                kept_bits += popcount(m & keep)
                d = float(m - (m & keep))  # |w' - w|: the bits the group rule drops
                err2 += d * d
                norm2 += float(v) * float(v)
    return ideal, kept_bits, err2, norm2


class Swis(DesignModel):
    design = Design.SWIS
    knobs = (SERIAL.but(default=Serial.WEIGHT, choices=(Serial.WEIGHT,)),
             ENCODING.but(default=Encoding.SHARED_SHIFT, choices=(Encoding.SHARED_SHIFT,),
                          help="weights as N shift positions shared by a group of lanes"),
             Knob("shared_terms", int, 3, "shared shift positions per group (N)", 1, 16),
             # 8 is the project's choice (the paper's group size could not be checked); it must divide lanes
             GROUP_SIZE.but(default=8, help="lanes of a weight brick that share the shift positions"), RUN_AHEAD)
    group_axis = "lanes"

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
        index = weight_brick_index(layer, lanes=arch.lanes, rows=arch.rows,
                                   space_to_depth_enabled=arch.first_layer_space_to_depth)  # (..., lanes)
        flat = np.ascontiguousarray(layer.weights).ravel()
        out = np.zeros(flat.size, dtype=flat.dtype)
        restrict_indexed(np.ascontiguousarray(index).reshape(-1, arch.lanes), flat, arch.group_size,
                         arch.shared_terms, out)
        return out.reshape(layer.weights.shape)

    def fidelity(self, arch: ArchConfig, layer, row: dict) -> dict | None:
        """From the weights in place (one pass, no effective-weight tensor) when lane groups are consecutive
        channels; else None: from ``effective_weights``."""
        if not channels_are_bricked_in_order(layer, arch.first_layer_space_to_depth):
            return None
        return weight_error_fields(*swis_stats(channel_rows(layer), arch.group_size, arch.shared_terms)[2:])

    def ideal_and_terms(self, plan: LayerPlan) -> tuple[float, int]:
        arch, layer = plan.arch, plan.layer
        oh, ow = layer.output_hw
        # lane groups = consecutive channels of one filter
        if channels_are_bricked_in_order(layer, arch.first_layer_space_to_depth):
            ideal, terms, _, _ = swis_stats(channel_rows(layer), arch.group_size, arch.shared_terms)
            return float(ideal * oh * ow), terms * oh * ow
        cost = self.value_cost(layer.weights, Operand(layer.weight_signed, layer.weight_bits), arch)
        terms = _capped_popcounts(self.effective_weights(arch, layer).astype(np.int64), 64)
        return float(cost.astype(np.int64).sum() * oh * ow), int(terms.astype(np.int64).sum()) * oh * ow

    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Per lane the activation ANDed with the weight's bit at the shared position; per PE the tree, one shifter
        to the shared position and the accumulator; the group's N shift positions in registers per row."""
        w, lanes, pes = arch.pe_width, arch.lanes, arch.pes
        groups = arch.tiles * arch.rows * (lanes // arch.group_size)
        return (hw.lane_and_gates(arch, w) + hw.adder_tree("adder trees", pes, lanes, w)
                + hw.shifter("shared-position shifters", pes, w + hw.log2_ceil(lanes), w, "busy_pe_cycles")
                + hw.accumulators(pes, hw.acc_bits(w))
                + [hw.Part("shift-position registers", "register", arch.shared_terms * hw.log2_ceil(w), groups, "write",
                           "weight_brick_reads", lanes // arch.group_size)])
