"""The lane-group designs' shortcut for ideal work and terms (channel groups read straight from layer.weights)
agrees with their general path through the machine's lowering."""

from __future__ import annotations

import numpy as np
import pytest

import simulator.designs.bitlet as bitlet
import simulator.designs.swis as swis
from simulator import load_arch
from simulator.plan import plan_layer
from workloads import Layer


def _layers():
    rng = np.random.default_rng(3)
    return [
        Layer.conv("dense", rng.integers(0, 256, (13, 6, 6)), rng.integers(-128, 128, (7, 13, 3, 3)), padding=1,
                   act_bits=8, weight_bits=8),
        Layer.conv("grouped", rng.integers(0, 256, (12, 5, 5)), rng.integers(-2000, 2000, (6, 6, 3, 3)),
                   groups=2, act_bits=8, weight_bits=12),
        Layer.fc("fc", rng.integers(0, 256, 37), rng.integers(-128, 128, (9, 37)), act_bits=8, weight_bits=8),
    ]


@pytest.mark.parametrize(("preset", "module"), [("bitlet", bitlet), ("bitx", bitlet), ("swis", swis)])
@pytest.mark.parametrize("kept", [2, 4])
def test_shortcut_equals_the_lowered_path(preset, module, kept, monkeypatch):
    own = {"bitlet": {}, "bitx": {"kept_columns": kept}, "swis": {"shared_terms": kept}}[preset]
    arch = load_arch(preset, lanes=8, group_size=4, **own)
    design = arch.model
    for layer in _layers():
        fast = design.ideal_and_terms(plan_layer(arch, layer))
        with monkeypatch.context() as m:
            m.setattr(module, "channels_are_bricked_in_order", lambda *_: False)
            slow = design.ideal_and_terms(plan_layer(arch, layer))
        assert fast == slow, layer.name
