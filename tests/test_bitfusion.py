"""Bit Fusion: cycles equal the authors' closed form (written again here, independently), the fusion unit's
MAC rate per precision pair, and the cycle-by-cycle BitBrick reference computes the exact convolution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import load_arch, simulate_layer
from simulator.designs.bitfusion import bitbrick_digits, bitfusion_cycles, perf_factor, temporal_passes
from simulator.reference import simulate_layer_reference
from workloads import Layer, layer_output

KEEP_LAYOUT = {"first_layer_space_to_depth": False}  # the closed form is for the layer as given


def fused_pes(bits: int) -> int:
    """Fused PEs per fusion unit along one operand: 16 BitBricks = 4 x 4 two-bit slices; an operand of up to 8 bits
    takes the next power-of-two width >= 2; wider operands take 8-bit slices over several cycles."""
    width = 2
    while width < min(bits, 8):
        width *= 2
    return 8 // width


def reference_formula(layer: Layer, n: int, m: int) -> int:
    """ceil(OC/M) * OH * OW * KH * KW * ceil(IC/(N * perf)) * temporal passes, per group (authors accelerator.py)."""
    perf = fused_pes(layer.act_bits) * fused_pes(layer.weight_bits)
    passes = math.ceil(layer.act_bits / 8) * math.ceil(layer.weight_bits / 8)
    if layer.kind == "fc":
        k, c = layer.weights.shape
        return math.ceil(k / m) * math.ceil(c / (n * perf)) * passes
    if layer.kind == "gemm":
        t = layer.activations.shape[0]
        k, c = layer.weights.shape
        return t * math.ceil(k / m) * math.ceil(c / (n * perf)) * passes
    oh, ow = layer.output_hw
    k, cg, r, s = layer.weights.shape
    g = layer.groups
    return g * math.ceil(k // g / m) * oh * ow * r * s * math.ceil(cg / (n * perf)) * passes


def _values(rng, shape, bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return rng.integers(lo, hi + 1, size=shape)


@st.composite
def layers(draw, max_bits=16):
    kind = draw(st.sampled_from(["conv", "conv", "grouped", "fc", "gemm"]))
    ab, wb = draw(st.integers(1, max_bits)), draw(st.integers(2, max_bits))
    act_signed = draw(st.booleans()) and ab >= 2
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "fc":
        c, k = draw(st.integers(1, 60)), draw(st.integers(1, 40))
        return Layer.fc("fc", _values(rng, (c,), ab, act_signed), _values(rng, (k, c), wb, True), act_bits=ab,
                        weight_bits=wb, act_signed=act_signed)
    if kind == "gemm":
        t, c, k = draw(st.integers(1, 4)), draw(st.integers(1, 30)), draw(st.integers(1, 20))
        return Layer.gemm("gemm", _values(rng, (t, c), ab, act_signed), _values(rng, (k, c), wb, True), act_bits=ab,
                          weight_bits=wb, act_signed=act_signed)
    groups = 2 if kind == "grouped" else 1
    c = groups * draw(st.integers(1, 12))
    k = groups * draw(st.integers(1, 10))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad, stride = draw(st.integers(0, 1)), draw(st.integers(1, 2))
    h, w = draw(st.integers(max(1, r - 2 * pad), 6)), draw(st.integers(max(1, s - 2 * pad), 6))
    return Layer.conv(kind, _values(rng, (c, h, w), ab, act_signed), _values(rng, (k, c // groups, r, s), wb, True),
                      stride=stride, padding=pad, groups=groups, act_bits=ab, weight_bits=wb, act_signed=act_signed)


def test_perf_factor_table():
    # (act bits, weight bits) -> MACs per fusion unit per cycle, cycles per fused MAC
    table = {(8, 8): (1, 1), (4, 4): (4, 1), (2, 2): (16, 1), (1, 1): (16, 1), (8, 2): (4, 1), (2, 8): (4, 1),
             (8, 4): (2, 1), (6, 6): (1, 1), (3, 5): (2, 1), (3, 3): (4, 1), (16, 16): (1, 4), (16, 8): (1, 2),
             (16, 2): (4, 2), (9, 4): (2, 2), (12, 1): (4, 2)}
    for (a, w), (pf, t) in table.items():
        assert (perf_factor(a, w), temporal_passes(a, w)) == (pf, t), (a, w)
        assert perf_factor(a, w) == fused_pes(a) * fused_pes(w)


@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 20), st.integers(1, 20), st.integers(1, 5),
       st.integers(1, 5), st.integers(1, 16), st.integers(1, 16), st.integers(1, 32), st.integers(1, 32),
       st.integers(1, 4))
def test_closed_form_function(ic, oc, oh, ow, kh, kw, ab, wb, n, m, batch):
    perf = fused_pes(ab) * fused_pes(wb)
    passes = math.ceil(ab / 8) * math.ceil(wb / 8)
    want = batch * math.ceil(oc / m) * oh * ow * kh * kw * math.ceil(ic / (n * perf)) * passes
    assert bitfusion_cycles(ic, oc, oh, ow, kh, kw, ab, wb, n, m, batch) == want


def test_golden_numbers():
    # 3x3 conv, 64 -> 64 channels, 56x56 outputs on the 16x32 preset
    assert bitfusion_cycles(64, 64, 56, 56, 3, 3, 2, 2, 16, 32) == 2 * 56 * 56 * 9 * 1
    assert bitfusion_cycles(64, 64, 56, 56, 3, 3, 8, 8, 16, 32) == 2 * 56 * 56 * 9 * 4
    assert bitfusion_cycles(64, 64, 56, 56, 3, 3, 16, 16, 16, 32) == 2 * 56 * 56 * 9 * 4 * 4
    # FC 4096 -> 1000 at 4/4 bits: ceil(1000/32) = 32 column tiles, ceil(4096/64) = 64 row tiles
    assert bitfusion_cycles(4096, 1000, 1, 1, 1, 1, 4, 4, 16, 32) == 32 * 64


@given(layers(), st.integers(1, 8), st.integers(1, 8))
def test_simulated_cycles_equal_the_closed_form(layer, n, m):
    arch = load_arch("bitfusion", fusion_rows=n, fusion_columns=m, **KEEP_LAYOUT)
    row = simulate_layer(arch, layer)
    assert row["cycles"] == reference_formula(layer, n, m)
    assert 0 < row["pe_utilization"] <= 1 and 0 < row["lane_utilization"] <= 1


@given(layers(max_bits=10), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_reference_is_exact_and_agrees_with_fast(layer, n, m, s2d):
    arch = load_arch("bitfusion", fusion_rows=n, fusion_columns=m, first_layer_space_to_depth=s2d)
    ref = simulate_layer_reference(arch, layer)
    np.testing.assert_array_equal(ref.output, layer_output(layer))
    assert simulate_layer(arch, layer)["cycles"] == ref.cycles


def test_depthwise_and_first_layer_on_the_preset():
    rng = np.random.default_rng(3)
    arch = load_arch("bitfusion", fusion_rows=2, fusion_columns=4)
    first = Layer.conv("first", rng.integers(0, 256, (3, 9, 9)), rng.integers(-128, 128, (6, 3, 3, 3)), stride=2,
                       padding=1, act_bits=8, weight_bits=8)
    dw = Layer.conv("dw", rng.integers(0, 16, (20, 4, 4)), rng.integers(-2, 2, (20, 1, 3, 3)), padding=1,
                    groups=20, act_bits=4, weight_bits=2)
    for layer in (first, dw):
        ref = simulate_layer_reference(arch, layer)
        np.testing.assert_array_equal(ref.output, layer_output(layer))
        assert simulate_layer(arch, layer)["cycles"] == ref.cycles


@pytest.mark.parametrize("bits", [(2, 2), (4, 4), (8, 2), (8, 8), (16, 16)])
def test_full_array_is_fully_utilized(bits):
    ab, wb = bits
    rng = np.random.default_rng(ab * 17 + wb)
    arch = load_arch("bitfusion")  # 16 x 32 fusion units
    c = 16 * perf_factor(ab, wb)  # one input-channel tile exactly
    layer = Layer.conv("full", _values(rng, (c, 3, 3), ab, False), _values(rng, (64, c, 1, 1), wb, True),
                       act_bits=ab, weight_bits=wb)
    row = simulate_layer(arch, layer)
    assert row["cycles"] == 2 * 9 * temporal_passes(ab, wb)
    assert row["pe_utilization"] == 1 and row["lane_utilization"] == 1
    assert row["ideal_cycles"] == pytest.approx(row["cycles"])


def test_bitbrick_digits_rebuild_the_values():
    for width, signed in ((2, False), (2, True), (4, True), (8, False), (8, True), (16, True)):
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1))) if signed else (0, 1 << width)
        v = np.arange(lo, hi, max(1, (hi - lo) // 997))
        d = bitbrick_digits(v, width, signed)
        assert d.shape == (v.size, width // 2)
        assert d[:, :-1].size == 0 or (d[:, :-1].min() >= 0 and d[:, :-1].max() <= 3)
        assert d[:, -1].min() == (-2 if signed else 0) and d[:, -1].max() == (1 if signed else 3)
        np.testing.assert_array_equal((d << (2 * np.arange(width // 2))).sum(axis=1), v)
    with pytest.raises(ValueError, match="outside the 4-bit signed range"):
        bitbrick_digits(np.array([8]), 4, True)
