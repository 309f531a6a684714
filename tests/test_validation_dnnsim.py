"""Reproduce DNNsim's compute cycles on ../shared/validation/dnnsim_synth: the DaDianNao, Stripes, ShapeShifter,
Pragmatic and Laconic rows (Bit-Tactical's are in test_tactical.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import load_arch, simulate
from simulator.reference import simulate_reference
from workloads import Layer, Workload, layer_output

from .conftest import shared_path

# (preset, knob overrides) -> (conv1, fc1) cycles, from the table in the folder's README.md
ROWS = [
    ("dadiannao", {"columns": 16}, (126, 16)),
    ("dadiannao", {}, (1800, 16)),
    ("stripes", {}, (1008, 23)),
    ("dynamic_stripes", {"group_size": 1, "run_ahead": 0}, (966, 23)),
    ("pragmatic", {"first_stage_bits": 0, "run_ahead": 0, "encoding": "binary"}, (966, 23)),
    ("pragmatic", {"first_stage_bits": 2, "run_ahead": 0, "encoding": "binary"}, (882, 22)),
    ("pragmatic", {"first_stage_bits": 4, "run_ahead": 0, "encoding": "binary"}, (882, 22)),
    ("pragmatic", {"first_stage_bits": 0, "run_ahead": 0, "encoding": "booth"}, (1086, 24)),
    ("pragmatic", {"first_stage_bits": 2, "run_ahead": 0, "encoding": "booth"}, (673, 20)),
    ("pragmatic", {"first_stage_bits": 2, "run_ahead": 1, "encoding": "binary"}, (755, 22)),
    ("pragmatic", {"first_stage_bits": 2, "run_ahead": 1, "encoding": "booth"}, (565, 20)),
    ("laconic", {"encoding": "binary", "sync": "lockstep"}, (5495, 63)),
    ("laconic", {"encoding": "booth", "sync": "lockstep"}, (3100, 40)),
]
MACHINE = {"tiles": 16, "rows": 16, "lanes": 16, "pe_width": 16}


@pytest.fixture(scope="module")
def synth() -> Workload:
    d = shared_path("validation", "dnnsim_synth")
    # DNNsim's (N, C, X, Y) with X fastest -> our (C, H, W): swap the spatial axes (see the README)
    act = np.load(d / "act-conv1-0.npy", allow_pickle=False)[0].transpose(0, 2, 1)
    wgt = np.load(d / "wgt-conv1.npy", allow_pickle=False).transpose(0, 1, 3, 2)
    fc_act = np.load(d / "act-fc1-0.npy", allow_pickle=False)[0]
    fc_wgt = np.load(d / "wgt-fc1.npy", allow_pickle=False)
    return Workload("dnnsim_synth", [
        Layer.conv("conv1", act, wgt, stride=1, padding=1, act_bits=8, weight_bits=8),
        Layer.fc("fc1", fc_act, fc_wgt, act_bits=8, weight_bits=8),
    ])


@pytest.mark.parametrize(("preset", "knobs", "expected"), ROWS, ids=[f"{p}-{k}" for p, k, _ in ROWS])
def test_fast_engine_reproduces_dnnsim(synth, preset, knobs, expected):
    result = simulate(load_arch(preset, **MACHINE, **knobs), synth)
    assert tuple(result.layers["cycles"]) == expected


@pytest.mark.parametrize(("preset", "knobs", "expected"), ROWS[::2], ids=[f"{p}-{k}" for p, k, _ in ROWS[::2]])
def test_reference_engine_reproduces_dnnsim_and_the_convolution(synth, preset, knobs, expected):
    results = simulate_reference(load_arch(preset, **MACHINE, **knobs), synth)
    assert tuple(r.cycles for r in results) == expected
    for r, layer in zip(results, synth.layers, strict=True):
        np.testing.assert_array_equal(r.output, layer_output(layer))
