"""Reproduce DNNsim's compute cycles on ../shared/validation/dnnsim_synth: the DaDianNao, Stripes, ShapeShifter,
Pragmatic and Laconic rows (Bit-Tactical's are in test_tactical.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import load_arch, simulate
from simulator.reference import simulate_reference
from workloads import layer_output

# (preset, knob overrides) -> (conv1, fc1) cycles, from the table in the folder's README.md; the dnnsim_* presets are
# DNNsim's own configurations (arch_configs/dnnsim_*.yaml), the overrides select each row's variant
ROWS = [
    ("dnnsim_dadiannao", {"columns": 16}, (126, 16)),
    ("dnnsim_dadiannao", {}, (1800, 16)),
    ("dnnsim_stripes", {}, (1008, 23)),
    ("dnnsim_dynamic_stripes", {"group_size": 1, "run_ahead": 0}, (966, 23)),
    ("dnnsim_pragmatic", {"first_stage_bits": 0, "run_ahead": 0, "encoding": "binary"}, (966, 23)),
    ("dnnsim_pragmatic", {"first_stage_bits": 2, "run_ahead": 0, "encoding": "binary"}, (882, 22)),
    ("dnnsim_pragmatic", {"first_stage_bits": 4, "run_ahead": 0, "encoding": "binary"}, (882, 22)),
    ("dnnsim_pragmatic", {"first_stage_bits": 0, "run_ahead": 0, "encoding": "booth"}, (1086, 24)),
    ("dnnsim_pragmatic", {"first_stage_bits": 2, "run_ahead": 0, "encoding": "booth"}, (673, 20)),
    ("dnnsim_pragmatic", {"first_stage_bits": 2, "run_ahead": 1, "encoding": "binary"}, (755, 22)),
    ("dnnsim_pragmatic", {"first_stage_bits": 2, "run_ahead": 1, "encoding": "booth"}, (565, 20)),
    ("dnnsim_laconic", {"encoding": "binary", "sync": "lockstep"}, (5495, 63)),
    ("dnnsim_laconic", {"encoding": "booth", "sync": "lockstep"}, (3100, 40)),
]
MACHINE = {"tiles": 16, "rows": 16, "lanes": 16, "pe_width": 16}



@pytest.mark.parametrize(("preset", "knobs", "expected"), ROWS, ids=[f"{p}-{k}" for p, k, _ in ROWS])
def test_fast_engine_reproduces_dnnsim(dnnsim_synth, preset, knobs, expected):
    result = simulate(load_arch(preset, **MACHINE, **knobs), dnnsim_synth)
    assert tuple(result.layers["cycles"]) == expected


# the reference engine is literal and slow: Laconic's Booth row (about 40 s) runs with the slow tests
REFERENCE_ROWS = [pytest.param(*row, id=f"{row[0]}-{row[1]}",
                               marks=[pytest.mark.slow] * (row[0] == "dnnsim_laconic"
                                                           and row[1]["encoding"] == "booth"))
                  for row in ROWS[::2]]


@pytest.mark.parametrize(("preset", "knobs", "expected"), REFERENCE_ROWS)
def test_reference_engine_reproduces_dnnsim_and_the_convolution(dnnsim_synth, preset, knobs, expected):
    results = simulate_reference(load_arch(preset, **MACHINE, **knobs), dnnsim_synth)
    assert tuple(r.cycles for r in results) == expected
    for r, layer in zip(results, dnnsim_synth.layers, strict=True):
        np.testing.assert_array_equal(r.output, layer_output(layer))
