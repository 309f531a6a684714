"""The layer plan both engines share (simulator/plan.py): what it refuses up front, and layers every design runs."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import ConfigError, load_arch, preset_names, simulate, simulate_layer
from simulator.plan import LayerTooLargeError, plan_layer
from simulator.reference import simulate_layer_reference
from workloads import Layer, Workload, layer_output


def test_an_oversized_layer_is_refused_before_anything_is_allocated():
    # 3 x 3 channels padded by 2**20 on every side: the padded input alone would be 3 * (2**21 + 3)**2 values
    layer = Layer.conv("huge", np.ones((3, 3, 3), np.int32), np.ones((4, 3, 3, 3), np.int32), padding=2**20,
                       act_bits=8, weight_bits=8)
    with pytest.raises(LayerTooLargeError, match=r"layer 'huge' would need about [\d.]+ TiB .* of memory"):
        plan_layer(load_arch("stripes"), layer)
    with pytest.raises(LayerTooLargeError):
        simulate("pragmatic", Workload("w", [layer]))


def test_simulate_names_what_it_needs():
    with pytest.raises(TypeError, match=r"workload must be a workloads.Workload, not str 'alexnet'"):
        simulate("stripes", "alexnet")
    with pytest.raises(ConfigError, match="unknown architecture 'strips'"):
        simulate("strips", Workload("w", [Layer.fc("f", [1, 2], [[1, 1]])]))


def _zero_weight_layers() -> list[Layer]:
    rng = np.random.default_rng(3)
    return [
        Layer.conv("conv", rng.integers(0, 16, (5, 4, 4)), np.zeros((6, 5, 3, 3), np.int32), padding=1,
                   act_bits=4, weight_bits=4),
        Layer.conv("dw", rng.integers(0, 16, (5, 4, 4)), np.zeros((5, 1, 3, 3), np.int32), padding=1, groups=5,
                   act_bits=4, weight_bits=4),
        Layer.fc("fc", rng.integers(0, 16, 20), np.zeros((7, 20), np.int32), act_bits=4, weight_bits=4),
    ]


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_runs_layers_whose_weights_are_all_zero(preset):
    """What pruning produces: every design runs them, both engines agree, the outputs are zero."""
    arch = load_arch(preset, tiles=2, rows=3, columns=2, lanes=8)
    for layer in _zero_weight_layers():
        fast = simulate_layer(arch, layer)
        ref = simulate_layer_reference(arch, layer)
        assert fast["cycles"] == ref.cycles, layer.name
        assert not np.any(ref.output) and ref.output.shape == layer_output(layer).shape
        # only the designs that skip steps without weights (indexed ones too) skip every step
        skipping = (arch.design == "weight_serial" and arch.skip_zero_weights) or arch.design == "cambricon_x"
        assert (fast["cycles"] == 0) == skipping, layer.name
        assert 0 <= fast["lane_utilization"] <= 1 and 0 <= fast["pe_utilization"] <= 1
