"""Every results column (docs/design.md §6) against numbers computed from the definitions, not by the simulator.

Hand-worked layers (numbers derived in the comments), then the test's own model of the machine
(``tests/closed_form_model.py``: its own lowering, encodings, cost rules and a literal walk over every PE of every
step) on small layers of every mapping, for DaDianNao, Stripes, Dynamic Stripes, Pragmatic, the weight-serial
engine, Loom and Laconic. What each counter means is stated in ``closed_form_model``'s docstring; briefly:

- busy_lane_cycles: per step, every PE holding a real window and a real filter is busy for its unit's cost, on the
  lanes holding a real input channel (depthwise: its one diagonal lane); idle = cycles * chip lanes - busy;
- act_brick_reads: passes x steps x windows (per sub-convolution); weight_brick_reads: window sets x steps x real
  filters; psum_writes: outputs (FC: filters x the columns their steps visit);
- ideal_cycles: sum over the layer's MACs of what the MAC costs alone (padding positions are zero activations
  that still cost e.g. Stripes' fixed precision) / chip lanes; terms: the serial operand's effectual terms.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_arch, preset_names, simulate_layer
from workloads import Layer

from .closed_form_model import expected_row, terms

GEO = dict(tiles=2, rows=4, columns=4, lanes=8)  # 32 PEs, 256 chip lanes
CHIP_LANES, PES = 256, 32
COUNTERS = ["cycles", "act_brick_reads", "weight_brick_reads", "psum_writes", "busy_lane_cycles",
            "idle_lane_cycles", "pe_utilization", "lane_utilization", "ideal_cycles", "terms"]


def run(preset: str, layer: Layer, **knobs) -> dict:
    return simulate_layer(load_arch(preset, **knobs), layer)


def check(row: dict, want: dict) -> None:
    got = {k: row[k] for k in want}
    assert got == pytest.approx(want, rel=1e-12, abs=0), {k: (got[k], want[k]) for k in want if got[k] != want[k]}


# ----------------------------------------------------------------------------- a dense conv, by hand
# 20 channels 5x5, 18 filters 3x3, padding 1: 25 windows; 7 window sets of 4 (the last holds 1 window); 5 filter
# sets over 2 tiles: 3 passes (18 filters in all); 27 steps (9 taps x bricks of 8, 8, 4 channels).
# MACs = 18 * 20 * 9 * 25 = 81000, of which 18 * 20 * 13^2 = 60840 meet a real input (per output row / column, the
# in-range taps are 2 + 3 + 3 + 3 + 2 = 13) and 20160 a padding zero.
MACS, REAL_MACS = 81000, 60840


def _dense(act_value: int, weight_value: int | None = None, act_bits: int = 6) -> Layer:
    rng = np.random.default_rng(1)
    w = rng.integers(-8, 8, (18, 20, 3, 3)) if weight_value is None else np.full((18, 20, 3, 3), weight_value)
    return Layer.conv("dense", np.full((20, 5, 5), act_value), w, padding=1, act_bits=act_bits, weight_bits=4)


def test_dadiannao_dense_conv_by_hand():
    # 567 cycles (7 x 3 x 27). Activation bricks: 3 passes x 27 steps x 25 windows = 2025; weight bricks: 7 window
    # sets x 27 steps x 18 filters = 3402; one partial sum per output: 25 x 18 = 450. Busy PE-cycles: every
    # (window, filter) pair for 27 steps: 25 x 18 x 27 = 12150; busy lanes: the MACs, 81000.
    check(run("dadiannao", _dense(5), **GEO), {
        "cycles": 567, "act_brick_reads": 2025, "weight_brick_reads": 3402, "psum_writes": 450,
        "busy_lane_cycles": MACS, "idle_lane_cycles": 567 * CHIP_LANES - MACS,
        "pe_utilization": 12150 / (567 * PES), "lane_utilization": MACS / (567 * CHIP_LANES),
        "ideal_cycles": MACS / CHIP_LANES, "terms": MACS})


def test_stripes_dense_conv_by_hand_padding_costs_the_precision():
    # 6 bits per step: 3402 cycles, every busy figure x 6 (utilizations unchanged). Ideal: every MAC at 6 bits,
    # the padding ones too (a padding position is a zero that still costs the fixed precision): 81000 x 6 / 256
    # (not 60840 x 6 / 256). Terms: 5 has 2 essential bits; padding zeros none: 2 x 60840.
    check(run("stripes", _dense(5), **GEO), {
        "cycles": 3402, "act_brick_reads": 2025, "weight_brick_reads": 3402, "psum_writes": 450,
        "busy_lane_cycles": 6 * MACS, "idle_lane_cycles": 3402 * CHIP_LANES - 6 * MACS,
        "pe_utilization": 6 * 12150 / (3402 * PES), "lane_utilization": 6 * MACS / (3402 * CHIP_LANES),
        "ideal_cycles": 6 * MACS / CHIP_LANES, "terms": 2 * REAL_MACS})


# Which (window set, tap) pairs see only padding: windows in row-major sets of 4: {(0,0..3)}, {(0,4),(1,0..2)},
# {(1,3..4),(2,0..1)}, {(2,2..4),(3,0)}, {(3,1..4)}, {(4,0..3)}, {(4,4)}. Set 0 (output row 0): the 3 taps of kernel
# row 0 read input row -1; set 5 (row 4): the 3 taps of kernel row 2; set 6 (window (4,4)): the 5 taps with r = 2 or
# s = 2. Every other set has a window whose tap is real. So 11 of the 63 (set, tap) pairs are all padding, 52 not.
ALL_PAD, SOME_REAL = 11, 52
PAD_TAPS = 225 - 169  # (window, tap) pairs at a padding position, per channel


def test_dynamic_stripes_dense_conv_by_hand():
    # Every real activation is 5 (unsigned, 3 bits); an all-zero (padding) brick costs 1. Lockstep over the
    # columns: a (set, tap, brick) step costs 3 unless all its windows are padding (1). 3 passes x 3 bricks x
    # (52 x 3 + 11 x 1) = 1503. Busy: every filter (18) x window x tap x brick at its own column's cost, on 8 + 8 + 4
    # lanes: 18 x 20 x (169 x 3 + 56 x 1) = 202680 lane-cycles, 18 x 3 x 563 = 30402 PE-cycles.
    # Ideal: 3 bits per real MAC, 0 for a zero: 3 x 60840 / 256.
    cycles = 3 * 3 * (SOME_REAL * 3 + ALL_PAD)
    assert cycles == 1503
    busy_pe, busy_lane = 18 * 3 * (169 * 3 + PAD_TAPS), 18 * 20 * (169 * 3 + PAD_TAPS)
    check(run("dynamic_stripes", _dense(5), **GEO, run_ahead=0), {
        "cycles": cycles, "act_brick_reads": 2025, "weight_brick_reads": 3402,
        "psum_writes": 450, "busy_lane_cycles": busy_lane, "idle_lane_cycles": cycles * CHIP_LANES - busy_lane,
        "pe_utilization": busy_pe / (cycles * PES), "lane_utilization": busy_lane / (cycles * CHIP_LANES),
        "ideal_cycles": 3 * REAL_MACS / CHIP_LANES, "terms": 2 * REAL_MACS})


@pytest.mark.parametrize(("encoding", "t", "bits"), [("binary", 3, 0), ("binary", 3, 2), ("booth", 2, 0),
                                                     ("booth", 2, 2), ("csd", 2, 4)])
def test_pragmatic_dense_conv_by_hand(encoding, t, bits):
    # Every real activation is 7: 3 binary terms (1+2+4), 2 Booth / CSD terms (8-1). Every lane holds the same
    # value, so a brick costs t whatever the first stage; all-padding bricks cost 1. Cycles 3 x 3 x (52 t + 11).
    # Ideal = terms = t per real MAC (a zero has none): t x 60840 (/ 256).
    cycles = 3 * 3 * (SOME_REAL * t + ALL_PAD)
    busy_lane = 18 * 20 * (169 * t + PAD_TAPS)
    check(run("pragmatic", _dense(7, act_bits=3), **GEO, run_ahead=0, encoding=encoding, first_stage_bits=bits), {
        "cycles": cycles, "busy_lane_cycles": busy_lane, "idle_lane_cycles": cycles * CHIP_LANES - busy_lane,
        "pe_utilization": 18 * 3 * (169 * t + PAD_TAPS) / (cycles * PES),
        "ideal_cycles": t * REAL_MACS / CHIP_LANES, "terms": t * REAL_MACS})


def test_weight_serial_dense_conv_by_hand():
    # Every weight 3 (2 binary terms; first stage 0 bits: popcount(OR |w|) = 2): every step costs 2 for every
    # row. 7 x 3 x 27 x 2 = 1134 cycles. Busy: each (window, filter, step) for 2 cycles: 25 x 18 x 27 x 2 = 24300
    # PE-cycles, on the lanes that hold a channel (8, 8, 4): 2 x 81000 = 162000 lane-cycles (not x 8 lanes, nor
    # x 1). Ideal = terms: 2 per weight, every weight meets all 25 windows (padding included): 2 x 81000.
    check(run("weight_serial", _dense(5, weight_value=3), **GEO), {
        "cycles": 1134, "act_brick_reads": 2025, "weight_brick_reads": 3402, "psum_writes": 450,
        "busy_lane_cycles": 2 * MACS, "idle_lane_cycles": 1134 * CHIP_LANES - 2 * MACS,
        "pe_utilization": 24300 / (1134 * PES), "lane_utilization": 2 * MACS / (1134 * CHIP_LANES),
        "ideal_cycles": 2 * MACS / CHIP_LANES, "terms": 2 * MACS})


def test_weight_serial_skips_all_zero_bricks_by_hand():
    # Channels 16..19 (the third brick) have zero weights: that step costs 0 for every row and is skipped:
    # 7 x 3 x 18 x 2 = 756 cycles; busy lanes 2 x 25 x 18 x 9 x 16; without skipping the zero brick costs 1.
    layer = _dense(5, weight_value=3)
    w = layer.weights.copy()
    w[:, 16:] = 0
    layer = layer.with_values(weights=w)
    busy = 2 * 25 * 18 * 9 * 16
    check(run("weight_serial", layer, **GEO), {
        "cycles": 756, "busy_lane_cycles": busy, "lane_utilization": busy / (756 * CHIP_LANES),
        "ideal_cycles": 2 * 25 * 18 * 9 * 16 / CHIP_LANES})
    check(run("weight_serial", layer, **GEO, skip_zero_weights=False), {
        "cycles": 7 * 3 * (18 * 2 + 9), "busy_lane_cycles": busy + 25 * 18 * 9 * 4})


# ----------------------------------------------------------------------------- both operands serial, by hand
# 20 channels 5x5, 18 filters 3x3, no padding: 3x3 = 9 windows, 3 window sets (4, 4, 1), 3 passes, 27 steps.
# Activations 5 (unsigned: width 3, 2 terms), weights 3 (signed, weight_bits 4: width 3, 2 terms).
# MACs = 18 * 20 * 9 * 9 = 29160.
BOTH_MACS = 29160


def _unpadded() -> Layer:
    return Layer.conv("both", np.full((20, 5, 5), 5), np.full((18, 20, 3, 3), 3), act_bits=3, weight_bits=4)


@pytest.mark.parametrize(("knobs", "per_mac"), [({}, 3 * 4), ({"serial_bits": 2}, 2 * 4),
                                                 ({"dynamic_weights": True}, 3 * 3),
                                                 ({"serial_bits": 4, "dynamic_weights": True}, 1 * 3)])
def test_loom_by_hand(knobs, per_mac):
    # A PE costs ceil(act width 3 / serial_bits) x (weight_bits 4, or with dynamic weights the detected width of
    # the signed 3s: msb + 1 + 1 = 3) on every step: cycles 3 x 3 x 27 x per_mac; busy PE-cycles 9 x 18 x 27 x
    # per_mac; busy lanes per_mac x MACs; ideal per_mac x MACs / 256 (every value alone costs as its brick does);
    # terms 2 x 2 per MAC. 3 passes x 27 steps x 9 windows activation bricks, 3 sets x 27 x 18 weight bricks.
    cycles = 3 * 3 * 27 * per_mac
    check(run("loom", _unpadded(), **GEO, **knobs), {
        "cycles": cycles, "act_brick_reads": 3 * 27 * 9, "weight_brick_reads": 3 * 27 * 18, "psum_writes": 9 * 18,
        "busy_lane_cycles": per_mac * BOTH_MACS, "idle_lane_cycles": cycles * CHIP_LANES - per_mac * BOTH_MACS,
        "pe_utilization": 9 * 18 * 27 * per_mac / (cycles * PES),
        "ideal_cycles": per_mac * BOTH_MACS / CHIP_LANES, "terms": 4 * BOTH_MACS})


def test_laconic_by_hand():
    # Binary terms: 2 x 2 = 4 term pairs per lane: 4 cycles a step; busy lanes 4 per MAC; ideal = terms = 4 per MAC.
    cycles = 3 * 3 * 27 * 4
    check(run("laconic", _unpadded(), **GEO, encoding="binary"), {
        "cycles": cycles, "busy_lane_cycles": 4 * BOTH_MACS, "pe_utilization": 9 * 18 * 27 * 4 / (cycles * PES),
        "ideal_cycles": 4 * BOTH_MACS / CHIP_LANES, "terms": 4 * BOTH_MACS})
    # a lane whose product has fewer term pairs is busy for fewer cycles than its PE: activations 1 on channels
    # 0..9 (1 term), 5 elsewhere (2 terms): lanes of channels 0..9 busy 2 cycles a step, the others 4. The bricks
    # (channels 0-7, 8-15, 16-19) cost 2, 4, 4: 3 x 3 x 9 taps x 10 = 810 cycles.
    layer = _unpadded()
    acts = layer.activations.copy()
    acts[:10] = 1
    busy = 18 * 9 * 9 * (10 * 2 + 10 * 4)
    check(run("laconic", layer.with_values(activations=acts), **GEO, encoding="binary"), {
        "cycles": 810, "busy_lane_cycles": busy, "terms": busy, "ideal_cycles": busy / CHIP_LANES})


# ----------------------------------------------------------------------------- depthwise and FC, by hand
def test_depthwise_counters_by_hand():
    # 18 channels 5x5, 3x3, padding 1; m = min(8, 4) = 4: 5 groups. DaDianNao, dnnsim: 315 cycles; spread: 189.
    # Activation bricks: 1 pass x 9 steps x 25 windows x 5 groups = 1125; weight bricks: 7 window sets x 9 steps x
    # 18 filters = 1134; psum writes 25 x 18 = 450. Busy: every (window, channel) pair 9 steps on its one diagonal
    # lane: 18 x 25 x 9 = 4050 PE-cycles = lane-cycles = MACs.
    rng = np.random.default_rng(3)
    layer = Layer.conv("dw", rng.integers(0, 64, (18, 5, 5)), rng.integers(-8, 8, (18, 1, 3, 3)), padding=1,
                       groups=18, act_bits=6, weight_bits=4)
    for mapping, cycles in (("dnnsim", 315), ("spread", 189)):
        check(run("dadiannao", layer, **GEO, depthwise_mapping=mapping), {
            "cycles": cycles, "act_brick_reads": 1125, "weight_brick_reads": 1134, "psum_writes": 450,
            "busy_lane_cycles": 4050, "idle_lane_cycles": cycles * CHIP_LANES - 4050,
            "pe_utilization": 4050 / (cycles * PES), "lane_utilization": 4050 / (cycles * CHIP_LANES),
            "ideal_cycles": 4050 / CHIP_LANES, "terms": 4050})
        check(run("stripes", layer, **GEO, depthwise_mapping=mapping), {
            "cycles": 6 * cycles, "busy_lane_cycles": 6 * 4050, "ideal_cycles": 6 * 4050 / CHIP_LANES,
            "pe_utilization": 4050 / (cycles * PES)})


def test_fc_counters_by_hand():
    # 70 inputs, 40 filters: 9 steps per pass (bricks of 8 x 8 + 6), 5 passes; DaDianNao 45 cycles.
    # Activation bricks: 5 passes x 9 = 45; weight bricks: 9 x 40 = 360; partial sums: 40 filters x min(4
    # columns, 9 steps) = 160. Busy PE-cycles: each step keeps its pass's 8 rows busy: 45 x 8 = 360; lanes: the
    # MACs, 2800. Stripes at 5 bits: 60 cycles (see test_mapping), busy x 5, ideal 5 x 2800 / 256.
    rng = np.random.default_rng(7)
    fc = Layer.fc("fc", rng.integers(0, 8, 70), rng.integers(-100, 100, (40, 70)), act_bits=5, weight_bits=8)
    common = {"act_brick_reads": 45, "weight_brick_reads": 360, "psum_writes": 160}
    check(run("dadiannao", fc, **GEO), {**common, "cycles": 45, "busy_lane_cycles": 2800,
                                         "idle_lane_cycles": 45 * CHIP_LANES - 2800,
                                         "pe_utilization": 360 / (45 * PES), "lane_utilization": 2800 / (45 * 256),
                                         "ideal_cycles": 2800 / CHIP_LANES, "terms": 2800})
    act_terms = sum(terms(int(a)) for a in fc.activations) * 40
    check(run("stripes", fc, **GEO), {**common, "cycles": 60, "busy_lane_cycles": 5 * 2800,
                                       "pe_utilization": 5 * 360 / (60 * PES), "ideal_cycles": 5 * 2800 / CHIP_LANES,
                                       "terms": act_terms})
    # 16 lanes, 8 columns: 5 steps per pass (fewer than the columns), 25 in all: a filter's steps visit 5 columns,
    # 40 x 5 = 200 partial sums; 25 activation bricks, 5 x 40 = 200 weight bricks; DaDianNao 25 cycles.
    wide = dict(GEO, lanes=16, columns=8)
    check(run("dadiannao", fc, **wide), {"cycles": 25, "act_brick_reads": 25, "weight_brick_reads": 200,
                                          "psum_writes": 200, "busy_lane_cycles": 2800})


# ----------------------------------------------------------------------------- the model, on every mapping
def _small_layers() -> dict[str, Layer]:
    rng = np.random.default_rng(11)

    def vals(shape, lo, hi, zero_p=0.3):
        v = rng.integers(lo, hi, shape)
        v[rng.random(shape) < zero_p] = 0
        return v

    w_fc = vals((7, 19), -8, 8)
    w_fc[:, 4:8] = 0  # an all-zero weight brick (lanes 4): a skipped FC step on the weight-serial engine
    w_conv = vals((5, 10, 3, 2), -8, 8)
    w_conv[:, 8:] = 0
    return {
        # 10 channels (bricks 4, 4, 2), uneven padding, 3x5 = 15 windows (4 sets, last 3), 5 filters / 2 rows = 3
        # filter sets on 2 tiles (2 passes, tile 1 idle in the second)
        "conv": Layer.conv("conv", vals((10, 4, 5), 0, 64), w_conv, padding=(1, 0, 0, 1), act_bits=6, weight_bits=4),
        "grouped": Layer.conv("grouped", vals((8, 5, 5), -32, 32), vals((4, 4, 2, 2), -8, 8), stride=2, groups=2,
                              padding=1, act_bits=6, weight_bits=4, act_signed=True),
        # 7 channels, m = min(4, 2) = 2: 4 groups (2, 2, 2, 1)
        "depthwise": Layer.conv("depthwise", vals((7, 4, 4), 0, 64), vals((7, 1, 3, 3), -8, 8), padding=1, groups=7,
                                act_bits=6, weight_bits=4),
        "first": Layer.conv("first", vals((3, 7, 7), 0, 256), vals((3, 3, 3, 3), -128, 128), stride=2, padding=1,
                            act_bits=8, weight_bits=8),
        "fc": Layer.fc("fc", vals(19, 0, 32), w_fc, act_bits=5, weight_bits=4),
        "fc_short": Layer.fc("fc_short", vals(7, 0, 32), vals((5, 7), -8, 8), act_bits=5, weight_bits=4),  # 2 steps
        "gemm": Layer.gemm("gemm", vals((5, 9), -16, 16), vals((5, 9), -8, 8), act_bits=5, weight_bits=4,
                           act_signed=True),
    }


SMALL = dict(tiles=2, rows=2, columns=4, lanes=4)
DESIGNS = [  # (preset, knobs, group_size)
    ("dadiannao", {}, 1),
    ("stripes", {}, 1),
    ("dynamic_stripes", {}, 1),
    ("dynamic_stripes", {"minor_bit": True}, 2),
    ("pragmatic", {"encoding": "binary", "first_stage_bits": 0}, 1),
    ("pragmatic", {"encoding": "booth", "first_stage_bits": 2}, 2),
    ("pragmatic", {"encoding": "csd", "first_stage_bits": 1, "serial": "weight"}, 1),
    ("weight_serial", {}, 1),
    ("weight_serial", {"skip_zero_weights": False, "first_stage_bits": 4}, 2),
    ("loom", {}, 1),
    ("loom", {"serial_bits": 2, "dynamic_weights": True}, 1),
    ("laconic", {}, 1),
    ("laconic", {"encoding": "csd"}, 1),
]
CASES = [("conv", {}), ("grouped", {}), ("depthwise", {"spread": False}), ("depthwise", {"spread": True}),
         ("first", {"space_to_depth_on": True}), ("first", {"space_to_depth_on": False}), ("fc", {}), ("fc_short", {}),
         ("gemm", {})]


def simulate_and_model(preset: str, knobs: dict, group: int, layer: Layer, geo: dict, spread=False,
                       space_to_depth_on=True) -> tuple[dict, dict]:
    arch_knobs = dict(knobs, **geo, depthwise_mapping="spread" if spread else "dnnsim",
                      first_layer_space_to_depth=space_to_depth_on)
    if preset in ("dynamic_stripes", "pragmatic", "weight_serial"):
        arch_knobs.update(run_ahead=0, group_size=group)
    got = simulate_layer(load_arch(preset, **arch_knobs), layer)
    want = expected_row(preset, layer, **geo, group=group, spread=spread, space_to_depth_on=space_to_depth_on,
                        **knobs)
    keys = list(COUNTERS)
    if preset == "loom" and any(layer.padding):
        keys.remove("ideal_cycles")  # padding positions: see test_explicit_zero_padding_is_padding (a known bug)
    return {k: got[k] for k in keys}, {k: want[k] for k in keys}


def _id(preset, knobs, group=1):
    return "-".join([preset, *(f"{k}={v}" for k, v in knobs.items()), *([f"group={group}"] if group > 1 else [])])


@pytest.mark.parametrize(("preset", "knobs", "group"), [pytest.param(*d, id=_id(*d)) for d in DESIGNS])
@pytest.mark.parametrize(("name", "mapping"), [pytest.param(*c, id=_id(*c)) for c in CASES])
def test_every_counter_against_the_model(preset, knobs, group, name, mapping):
    layer = _small_layers()[name]
    got, want = simulate_and_model(preset, knobs, group, layer, SMALL, **mapping)
    assert got == pytest.approx(want, rel=1e-12, abs=0)


@st.composite
def random_cases(draw):
    kind = draw(st.sampled_from(["conv", "conv", "depthwise", "fc", "gemm"]))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    signed = draw(st.booleans())
    lo = -32 if signed else 0
    if kind == "fc":
        c, k = draw(st.integers(1, 24)), draw(st.integers(1, 9))
        layer = Layer.fc("fc", rng.integers(lo, 32, c), rng.integers(-8, 8, (k, c)), act_bits=6, weight_bits=4,
                         act_signed=signed)
    elif kind == "gemm":
        t, c, k = draw(st.integers(1, 5)), draw(st.integers(1, 12)), draw(st.integers(1, 6))
        layer = Layer.gemm("gemm", rng.integers(lo, 32, (t, c)), rng.integers(-8, 8, (k, c)), act_bits=6,
                           weight_bits=4, act_signed=signed)
    else:
        c = draw(st.integers(1, 9))
        r = draw(st.integers(1, 3))
        h = draw(st.integers(r, 5))
        groups, k = (c, c) if kind == "depthwise" else (1, draw(st.integers(1, 6)))
        w = rng.integers(-8, 8, (k, c // groups, r, r))
        w[rng.random(w.shape) < 0.4] = 0
        layer = Layer.conv(kind, rng.integers(lo, 32, (c, h, h)), w, stride=draw(st.integers(1, 2)),
                           padding=draw(st.integers(0, 1)), groups=groups, act_bits=6, weight_bits=4,
                           act_signed=signed)
    preset, knobs, group = draw(st.sampled_from(DESIGNS))
    geo = dict(tiles=draw(st.integers(1, 3)), rows=2 * draw(st.integers(1, 2)), columns=2 * draw(st.integers(1, 2)),
               lanes=draw(st.integers(1, 5)))
    return preset, knobs, group, layer, geo, draw(st.booleans())


@settings(max_examples=15)
@given(random_cases())
def test_every_counter_against_the_model_randomized(case):
    preset, knobs, group, layer, geo, spread = case
    got, want = simulate_and_model(preset, knobs, group, layer, geo, spread=spread)
    assert got == pytest.approx(want, rel=1e-12, abs=0)


# ----------------------------------------------------------------------------- ideal work over padding
@pytest.mark.parametrize("preset", preset_names())
def test_explicit_zero_padding_is_padding(preset):
    # The same MACs: a conv with padding 1, and the same conv over the input zero-padded by hand. The machine sees
    # the same bricks, so every column must agree, ideal work included (a padding position is a zero activation).
    rng = np.random.default_rng(0)
    a, w = rng.integers(0, 64, (6, 4, 4)), rng.integers(-8, 8, (5, 6, 3, 3))
    padded = Layer.conv("p", a, w, padding=1, act_bits=6, weight_bits=4)
    explicit = Layer.conv("p", np.pad(a, ((0, 0), (1, 1), (1, 1))), w, act_bits=6, weight_bits=4)
    arch = load_arch(preset, tiles=2, rows=4, columns=4, lanes=8)
    got, want = simulate_layer(arch, padded), simulate_layer(arch, explicit)
    assert {k: got[k] for k in COUNTERS} == {k: want[k] for k in COUNTERS}


def test_the_models_term_encodings_match_design_averages():
    # docs/design.md §4: on 15-bit magnitudes, 7.50 binary terms, 5.66 Booth-like, 5.44 CSD (the test model)
    n = 1 << 15
    means = {enc: sum(terms(v, enc) for v in range(n)) / n for enc in ("binary", "booth", "csd")}
    assert means == pytest.approx({"binary": 7.50, "booth": 5.66, "csd": 5.44}, abs=0.005)
