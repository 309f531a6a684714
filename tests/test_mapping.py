"""The mapping of layers onto the machine (docs/design.md §3), checked by cycle counts with closed forms.

Both engines share the layer plan, so fast == reference cannot see a wrong mapping: these tests compute the
expected cycles from docs/design.md's rules alone (window sets x passes x steps, groups outermost, depthwise groups of
m = min(lanes, rows) channels on tile 0 or spread over the tiles, GEMM tokens as windows, the space-to-depth
rewrite, the FC column pipeline), on hand-made layers whose numbers are worked out in the comments, and on a few
randomized ones. DaDianNao costs 1 cycle per step; Stripes costs the layer's act_bits per step.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_arch, simulate_layer
from simulator.reference import simulate_layer_reference
from workloads import Layer

from .closed_form_model import fc_pipeline

GEO = dict(tiles=2, rows=4, columns=4, lanes=8)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def dense_cycles(*, groups=1, windows, kg, cg, r, s, tiles, rows, columns, lanes, per_step=1) -> int:
    """for group: for window set: for pass: for step (R x S x channel bricks), lockstep at a constant cost."""
    window_sets = cdiv(windows, columns)
    passes = cdiv(cdiv(kg, rows), tiles)
    return groups * window_sets * passes * r * s * cdiv(cg, lanes) * per_step


def depthwise_cycles(*, channels, windows, r, s, tiles, rows, columns, lanes, spread, per_step=1) -> int:
    """DNNsim's mapping: ceil(C/m) groups of m = min(lanes, rows) channels, one filter set each, one kernel position
    per step, on tile 0 (``dnnsim``) or ``tiles`` groups at once (``spread``)."""
    m = min(lanes, rows)
    groups = cdiv(channels, m)
    batches = cdiv(groups, tiles) if spread else groups
    return batches * cdiv(windows, columns) * r * s * per_step


def fc_constant_cycles(steps: int, columns: int, k: int) -> int:
    """The column pipeline with every step costing k: step i starts at (i div columns) * max(k, columns)
    + i mod columns (one issue per cycle; a column takes a new step once its last one is done)."""
    last = steps - 1
    return (last // columns) * max(k, columns) + last % columns + k



def cycles(preset: str, layer: Layer, **knobs) -> int:
    return simulate_layer(load_arch(preset, **knobs), layer)["cycles"]


# ----------------------------------------------------------------------------- dense and grouped conv
def test_dense_conv_by_hand():
    # 20 channels 5x5, 18 filters 3x3, padding 1: 25 windows. 4 columns: 7 window sets (the last holds 1 window);
    # 18 filters / 4 rows = 5 filter sets over 2 tiles: 3 passes (tile 1 idle in the last); 9 taps x
    # ceil(20/8) = 3 bricks = 27 steps. DaDianNao: 7 * 3 * 27 = 567; Stripes at 6 bits: 3402.
    rng = np.random.default_rng(1)
    layer = Layer.conv("dense", rng.integers(0, 64, (20, 5, 5)), rng.integers(-8, 8, (18, 20, 3, 3)), padding=1,
                       act_bits=6, weight_bits=4)
    assert dense_cycles(windows=25, kg=18, cg=20, r=3, s=3, **GEO) == 567
    assert cycles("dadiannao", layer, **GEO) == 567
    assert cycles("stripes", layer, **GEO) == 3402
    # one tile: 5 passes; 16 lanes: 2 bricks; 1 column: 25 window sets
    assert cycles("dadiannao", layer, **{**GEO, "tiles": 1}) == 7 * 5 * 27
    assert cycles("dadiannao", layer, **{**GEO, "lanes": 16}) == 7 * 3 * 18
    assert cycles("dadiannao", layer, **{**GEO, "columns": 1}) == 25 * 3 * 27


def test_grouped_conv_by_hand():
    # 12 channels 4x4 in 2 groups of 6, 6 filters (3 per group), 3x3, no padding: 2x2 = 4 windows.
    # Per group: 3 columns -> 2 window sets; 3 filters / 2 rows = 2 filter sets on 2 tiles: 1 pass;
    # 9 taps x ceil(6/4) = 2 bricks = 18 steps. Two groups one after the other: 2 * 2 * 1 * 18 = 72.
    # (As one dense conv it would be 2 window sets x 2 passes x 27 steps = 108.)
    rng = np.random.default_rng(2)
    layer = Layer.conv("grouped", rng.integers(0, 32, (12, 4, 4)), rng.integers(-8, 8, (6, 6, 3, 3)), groups=2,
                       act_bits=5, weight_bits=4)
    geo = dict(tiles=2, rows=2, columns=3, lanes=4)
    assert dense_cycles(groups=2, windows=4, kg=3, cg=6, r=3, s=3, **geo) == 72
    assert cycles("dadiannao", layer, **geo) == 72
    assert cycles("stripes", layer, **geo) == 72 * 5


# ----------------------------------------------------------------------------- depthwise
def _depthwise_layer(channels=18, size=5, seed=3):
    rng = np.random.default_rng(seed)
    return Layer.conv("dw", rng.integers(0, 64, (channels, size, size)),
                      rng.integers(-8, 8, (channels, 1, 3, 3)), padding=1, groups=channels, act_bits=6,
                      weight_bits=4)


def test_depthwise_by_hand():
    # 18 channels 5x5, 3x3, padding 1: 25 windows, 7 window sets of 4 columns; 9 steps (one kernel position each).
    # m = min(8 lanes, 4 rows) = 4: 5 groups (4, 4, 4, 4, 2 channels).
    # dnnsim: one group at a time on tile 0: 5 * 7 * 9 = 315. spread over 2 tiles: 3 batches: 3 * 7 * 9 = 189.
    layer = _depthwise_layer()
    dnnsim, spread = dict(GEO, depthwise_mapping="dnnsim"), dict(GEO, depthwise_mapping="spread")
    assert cycles("dadiannao", layer, **dnnsim) == 315
    assert cycles("dadiannao", layer, **spread) == 189
    assert cycles("stripes", layer, **dnnsim) == 315 * 6
    assert cycles("stripes", layer, **spread) == 189 * 6
    # m = min(2 lanes, 4 rows) = 2: 9 groups; dnnsim 9 * 7 * 9 = 567, spread over 2 tiles 5 * 7 * 9 = 315
    assert cycles("dadiannao", layer, **{**dnnsim, "lanes": 2}) == 567
    assert cycles("dadiannao", layer, **{**spread, "lanes": 2}) == 315
    # dnnsim leaves every tile but tile 0 idle: more tiles change nothing; spread over 5 tiles: one batch
    assert cycles("dadiannao", layer, **{**dnnsim, "tiles": 5}) == 315
    assert cycles("dadiannao", layer, **{**spread, "tiles": 5}) == 7 * 9
    # a single tile: spread is dnnsim
    assert cycles("dadiannao", layer, **{**spread, "tiles": 1}) == 315


# ----------------------------------------------------------------------------- GEMM
def test_gemm_by_hand():
    # 5 tokens are 5 windows (a 1x1 conv over (C, T, 1)): 2 columns -> 3 window sets; 7 filters / 2 rows = 4 filter
    # sets on 2 tiles: 2 passes; ceil(11/4) = 3 steps. DaDianNao 3 * 2 * 3 = 18; Stripes at 5 bits 90.
    rng = np.random.default_rng(4)
    layer = Layer.gemm("gemm", rng.integers(0, 30, (5, 11)), rng.integers(-100, 100, (7, 11)), act_bits=5,
                       weight_bits=8)
    geo = dict(tiles=2, rows=2, columns=2, lanes=4)
    assert dense_cycles(windows=5, kg=7, cg=11, r=1, s=1, **geo) == 18
    assert cycles("dadiannao", layer, **geo) == 18
    assert cycles("stripes", layer, **geo) == 90


# ----------------------------------------------------------------------------- space-to-depth
def _first_layer(stride=2, kernel=3, pad=1, size=9, seed=5):
    rng = np.random.default_rng(seed)
    return Layer.conv("first", rng.integers(0, 256, (3, size, size)), rng.integers(-128, 128, (5, 3, kernel, kernel)),
                      stride=stride, padding=pad, act_bits=8, weight_bits=8)


@pytest.mark.parametrize(("lanes", "on", "off"), [(8, 56, 63), (16, 28, 63), (3, 112, 63), (2, 168, 126)])
def test_space_to_depth_by_hand(lanes, on, off):
    # 3 channels 9x9, 5 filters 3x3, stride 2, padding 1: 5x5 = 25 windows, 7 window sets of 4; 5 filters / 4 rows
    # on 2 tiles: 1 pass. Rewritten: 3 * 2 * 2 = 12 channels, kernel ceil(3/2) = 2 x 2: 4 * ceil(12/lanes) steps
    # (lanes 8: 8 steps -> 56; 16: 4 -> 28; 3: 16 -> 112; 2: 24 -> 168). As given: 9 * ceil(3/lanes) steps (63 or
    # 126).
    layer = _first_layer()
    geo = dict(GEO, lanes=lanes)
    assert cycles("dadiannao", layer, **geo) == on
    assert cycles("dadiannao", layer, **geo, first_layer_space_to_depth=False) == off
    assert cycles("stripes", layer, **geo) == on * 8


def test_space_to_depth_stride_3_and_layers_it_leaves_alone():
    # stride 3, kernel 3, no padding on 9x9: 3x3 windows; rewritten: 27 channels, a 1x1 kernel
    layer = _first_layer(stride=3, pad=0)
    geo = dict(tiles=1, rows=8, columns=2, lanes=8)  # 5 windows sets, 1 pass
    assert cycles("dadiannao", layer, **geo) == 5 * 1 * cdiv(27, 8)
    assert cycles("dadiannao", layer, **geo, first_layer_space_to_depth=False) == 5 * 9
    # stride 1, or more than 3 channels: no rewrite
    assert cycles("dadiannao", _first_layer(stride=1, pad=0), **geo) == cdiv(49, 2) * 9
    rng = np.random.default_rng(6)
    four = Layer.conv("c4", rng.integers(0, 9, (4, 9, 9)), rng.integers(-8, 8, (5, 4, 3, 3)), stride=2, act_bits=4,
                      weight_bits=4)
    assert cycles("dadiannao", four, **geo) == cdiv(16, 2) * 9


@pytest.mark.parametrize(("lanes", "want"), [(4, 24), (3, 32), (12, 8)])
def test_space_to_depth_channel_order(lanes, want):
    # Which channels share a brick follows DNNsim's order (phase-major, channel-minor): channel
    # ((h mod s) s + (w mod s)) 3 + c. Channel 0 holds 255 (8 bits), channels 1, 2 hold 1: Dynamic Stripes costs a
    # brick 8 cycles if it holds some channel 0 value, else 1. 4x4 input, one 2x2 filter, stride 2: 2x2 windows
    # (one window set of 4 columns), rewritten to 12 channels, a 1x1 kernel: one step per brick.
    # lanes 4: bricks [p0c0 p0c1 p0c2 p1c0] [p1c1 p1c2 p2c0 p2c1] [p2c2 p3c0 p3c1 p3c2]: each holds a channel 0:
    # 3 * 8 = 24 (a channel-major order would give [c0 x4] [c1 x4] [c2 x4]: 8 + 1 + 1 = 10).
    # lanes 3: 4 bricks, one per phase, each with channel 0: 32. lanes 12: 1 brick: 8.
    acts = np.stack([np.full((4, 4), 255), np.ones((4, 4), int), np.ones((4, 4), int)])
    layer = Layer.conv("first", acts, np.ones((1, 3, 2, 2), int), stride=2, act_bits=8, weight_bits=2)
    geo = dict(tiles=1, rows=1, columns=4, lanes=lanes, run_ahead=0)
    assert cycles("dynamic_stripes", layer, **geo) == want
    # as given: 4 taps x 1 brick (3 channels, one of them 255): 4 * 8 = 32 at any lanes >= 3
    if lanes >= 3:
        assert cycles("dynamic_stripes", layer, **geo, first_layer_space_to_depth=False) == 32


# ----------------------------------------------------------------------------- randomized convs
@st.composite
def conv_cases(draw):
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise", "first"]))
    r = draw(st.integers(1, 3))
    h = draw(st.integers(r, 7))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 1))
    if kind == "depthwise":
        c = k = groups = draw(st.integers(2, 20))
    elif kind == "grouped":
        groups = draw(st.integers(2, 3))
        c, k = groups * draw(st.integers(1, 6)), groups * draw(st.integers(1, 8))
    elif kind == "first":
        c, k, groups, stride = 3, draw(st.integers(1, 12)), 1, draw(st.integers(2, 3))
    else:
        c, k, groups = draw(st.integers(1, 30)), draw(st.integers(1, 40)), 1
    bits = draw(st.integers(1, 16))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    layer = Layer.conv(kind, rng.integers(0, 1 << bits, (c, h, h)), rng.integers(-8, 8, (k, c // groups, r, r)),
                       stride=stride, padding=pad, groups=groups, act_bits=bits, weight_bits=4)
    geo = dict(tiles=draw(st.integers(1, 4)), rows=draw(st.integers(1, 8)), columns=draw(st.integers(1, 8)),
               lanes=draw(st.integers(1, 16)))
    return layer, geo, draw(st.sampled_from(["dnnsim", "spread"])), draw(st.booleans())


def conv_closed_form(layer: Layer, geo: dict, mapping: str, s2d: bool) -> int:
    oh, ow = layer.output_hw
    k, cg, r, s = layer.weights.shape
    c, g = layer.in_channels, layer.groups
    if layer.is_depthwise:
        return depthwise_cycles(channels=c, windows=oh * ow, r=r, s=s, spread=mapping == "spread", **geo)
    if s2d and g == 1 and c == 3 and layer.stride > 1:
        st_ = layer.stride
        return dense_cycles(windows=oh * ow, kg=k, cg=3 * st_ * st_, r=cdiv(r, st_), s=cdiv(s, st_), **geo)
    return dense_cycles(groups=g, windows=oh * ow, kg=k // g, cg=cg, r=r, s=s, **geo)


@settings(max_examples=25)
@given(conv_cases())
def test_conv_mappings_randomized(case):
    layer, geo, mapping, s2d = case
    want = conv_closed_form(layer, geo, mapping, s2d)
    knobs = dict(geo, depthwise_mapping=mapping, first_layer_space_to_depth=s2d)
    assert cycles("dadiannao", layer, **knobs) == want
    assert cycles("stripes", layer, **knobs) == want * layer.act_bits


# ----------------------------------------------------------------------------- FC: the column pipeline
def test_fc_by_hand():
    # 70 inputs / 8 lanes = 9 steps per pass; 40 filters / 4 rows = 10 filter sets on 2 tiles: 5 passes -> 45
    # steps, issued to 4 columns round-robin (rotating on across passes).
    # DaDianNao: one step per cycle, 45. Stripes at 3 bits (<= 4 columns): 45 - 1 + 3 = 47.
    # At 5 bits (> 4 columns) a column is the bottleneck: step i starts at (i div 4) * 5 + i mod 4; the last
    # (i = 44) at 55, done at 60.
    rng = np.random.default_rng(7)
    fc = Layer.fc("fc", rng.integers(0, 8, 70), rng.integers(-100, 100, (40, 70)), act_bits=5, weight_bits=8)
    assert cycles("dadiannao", fc, **GEO) == 45
    assert cycles("stripes", fc, **GEO) == 60
    assert cycles("stripes", fc.with_values(act_bits=3), **GEO) == 47
    assert fc_constant_cycles(45, 4, 5) == 60 == fc_pipeline([5] * 45, 4)


@settings(max_examples=30)
@given(st.integers(1, 300), st.integers(1, 100), st.integers(1, 16), st.integers(1, 8), st.integers(1, 4),
       st.integers(1, 8), st.integers(1, 16))
def test_fc_constant_cost_randomized(c, k, lanes, columns, tiles, rows, bits):
    rng = np.random.default_rng(c * 1000 + k)
    fc = Layer.fc("fc", rng.integers(0, 1 << bits, c), rng.integers(-5, 5, (k, c)), act_bits=bits)
    geo = dict(tiles=tiles, rows=rows, columns=columns, lanes=lanes)
    steps = cdiv(c, lanes) * cdiv(cdiv(k, rows), tiles)
    assert fc_constant_cycles(steps, columns, bits) == fc_pipeline([bits] * steps, columns)
    assert cycles("stripes", fc, **geo) == fc_constant_cycles(steps, columns, bits)
    assert cycles("dadiannao", fc, **geo) == steps


def _engines(arch, layer) -> tuple[int, int]:
    return simulate_layer(arch, layer)["cycles"], simulate_layer_reference(arch, layer).cycles


def test_fc_zero_cost_steps_are_not_issued_by_hand():
    # Weight-serial engine (binary terms, first stage 0 bits: a brick costs popcount(OR |w|)), 4 lanes, 2 rows,
    # 1 tile, 2 columns. 16 inputs: 4 steps; weights 7 (3 terms) in bricks 0 and 3, zero in bricks 1 and 2:
    # step costs [3, 0, 0, 3]. Skipping: only steps 0 and 3 are issued, to columns 0 and 1: step 0 runs [0, 3),
    # step 3 [1, 4): 4 cycles. Without skipping, costs [3, 1, 1, 3]: step 0 [0, 3) col 0; step 1 [1, 2) col 1;
    # step 2 waits for col 0: [3, 4), issue clock 4; step 3 on col 1: [4, 7): 7 cycles.
    # (Issuing the zero-cost steps would give: step 1 at 1 (col 1, cost 0), step 2 on col 0 at 3 (cost 0), step 3
    # on col 1 at 4: [4, 7): 7.)
    w = np.zeros((2, 16), int)
    w[:, :4] = 7
    w[:, 12:] = 7
    fc = Layer.fc("fc", np.arange(16), w, act_bits=5, weight_bits=4)
    geo = dict(tiles=1, rows=2, columns=2, lanes=4)
    assert _engines(load_arch("weight_serial", **geo), fc) == (4, 4)
    assert _engines(load_arch("weight_serial", **geo, skip_zero_weights=False), fc) == (7, 7)
    # every weight zero: no step is issued, no cycle, nothing utilized
    zero = Layer.fc("zero", np.arange(16), np.zeros((2, 16), int), act_bits=5, weight_bits=4)
    row = simulate_layer(load_arch("weight_serial", **geo), zero)
    assert (row["cycles"], row["pe_utilization"], row["lane_utilization"]) == (0, 0.0, 0.0)
    assert simulate_layer_reference(load_arch("weight_serial", **geo), zero).cycles == 0


def _popcount_or(values) -> int:
    out = 0
    for v in values:
        out |= abs(int(v))
    return bin(out).count("1")


@settings(max_examples=12)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 6), st.integers(1, 4), st.integers(1, 3),
       st.integers(1, 3), st.integers(0, 999))
def test_fc_zero_cost_steps_randomized(c, k, lanes, columns, tiles, rows, seed):
    # weight-serial FC with whole zero bricks: a step costs the max over the pass's rows of popcount(OR |w|) of the
    # row's brick (first stage 0 bits), 0 if every brick is zero (not issued); both engines.
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, (k, c))
    n_cb = cdiv(c, lanes)
    for cb in rng.choice(n_cb, size=rng.integers(0, n_cb + 1), replace=False):
        w[:, cb * lanes:(cb + 1) * lanes] = 0
    w[rng.random(k) < 0.3] = 0  # some filters all zero
    fc = Layer.fc("fc", rng.integers(0, 16, c), w, act_bits=4, weight_bits=4)
    per_pass = tiles * rows
    costs = []
    for p in range(cdiv(cdiv(k, rows), tiles)):
        for cb in range(n_cb):
            bricks = [w[f, cb * lanes:(cb + 1) * lanes] for f in range(p * per_pass, min(k, (p + 1) * per_pass))]
            costs.append(max(_popcount_or(b) if np.any(b) else 0 for b in bricks))
    arch = load_arch("weight_serial", tiles=tiles, rows=rows, columns=columns, lanes=lanes)
    want = fc_pipeline(costs, columns) if any(costs) else 0
    assert _engines(arch, fc) == (want, want)
