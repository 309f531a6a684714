"""The Cambricon-X-style indexed sparse PE (simulator/designs/cambricon_x.py) against hand-computed cycles."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pruning
from simulator import load_arch, simulate_layer
from simulator.reference import simulate_layer_reference
from workloads import Layer, Workload, layer_output


def _chunk_cost(w_rows: np.ndarray, lanes: int, chunk: int) -> list[int]:
    """Lockstep rows over the flattened weights (channels innermost): per chunk of ``chunk`` weights, the slowest
    row's ceil(non-zeros / lanes); chunks with no non-zero weight in any row are skipped."""
    out = []
    for c0 in range(0, w_rows.shape[1], chunk):
        k = max(math.ceil(np.count_nonzero(row[c0:c0 + chunk]) / lanes) for row in w_rows)
        if k:
            out.append(k)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_fc_and_1x1_conv_cycles_by_hand(seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-5, 6, (3, 40)) * (rng.random((3, 40)) < 0.4)
    w[:, 8:16] = 0  # a chunk no row uses
    arch = load_arch("cambricon_x", tiles=1, rows=3, columns=1, lanes=4, fetch_bricks=2)
    costs = _chunk_cost(w, 4, 8)
    fc = Layer.fc("fc", rng.integers(0, 9, 40), w, act_bits=4, weight_bits=4)
    assert simulate_layer(arch, fc)["cycles"] == sum(costs)  # one column: the FC pipeline runs step after step
    conv = Layer.conv("conv", rng.integers(0, 9, (40, 2, 3)), w.reshape(3, 40, 1, 1), act_bits=4, weight_bits=4)
    row = simulate_layer(arch, conv)
    assert row["cycles"] == 6 * sum(costs)  # 6 windows, one column
    assert row["terms"] == np.count_nonzero(w) * 6 and row["busy_lane_cycles"] == np.count_nonzero(w) * 6
    for layer in (fc, conv):
        ref = simulate_layer_reference(arch, layer)
        assert ref.cycles == simulate_layer(arch, layer)["cycles"]
        np.testing.assert_array_equal(ref.output, layer_output(layer))


def test_chunks_cross_kernel_taps_in_step_order():
    """A 3x3 conv over 4 channels with 4 lanes: bricks are taps; a chunk of 3 bricks is one kernel row."""
    w = np.zeros((1, 4, 3, 3), np.int32)
    w[0, :, 0, :] = 1  # kernel row 0: 12 weights -> 3 cycles
    w[0, 0, 1, 1] = 1  # kernel row 1: 1 weight -> 1 cycle; kernel row 2: nothing -> skipped
    layer = Layer.conv("c", np.ones((4, 3, 3), np.int32), w, act_bits=2, weight_bits=2)
    arch = load_arch("cambricon_x", rows=1, lanes=4, fetch_bricks=3)
    assert simulate_layer(arch, layer)["cycles"] == 3 + 1


def test_balanced_sparsity_turns_into_speedup_and_unbalanced_shows_its_imbalance():
    rng = np.random.default_rng(0)
    layer = Layer.conv("c", rng.integers(0, 99, (64, 6, 6)), rng.integers(-99, 100, (16, 64, 3, 3)), padding=1,
                       act_bits=8, weight_bits=8)
    wl = Workload("w", [layer])
    arch = load_arch("cambricon_x")  # 16 rows in lockstep, 16 multipliers, chunks of 64 activations
    dense = simulate_layer(arch, layer)["cycles"]
    balanced = simulate_layer(arch, pruning.n_of_g(wl, keep=4, group=16).workload["c"])["cycles"]
    unstructured = simulate_layer(arch, pruning.magnitude(wl, sparsity=0.75).workload["c"])["cycles"]
    assert dense == 4 * balanced  # every row has exactly 16 weights per 64-activation chunk: one cycle, not four
    assert unstructured >= 1.5 * balanced  # the same density, but the slowest row sets the pace
