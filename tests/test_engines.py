"""The fast engine agrees with the cycle-by-cycle reference engine, and the reference engine computes the
exact integer convolution, for every preset and knob combination on random small layers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import effective_weights, load_arch, preset_names, simulate_layer
from simulator.config import design_knobs
from simulator.designs import MODELS
from simulator.knobs import Design, Serial
from simulator.reference import simulate_layer_reference
from workloads import Layer, conv2d, layer_output
from workloads.bricks import space_to_depth

BITS = [2, 3, 4, 5, 6, 7, 8, 9, 12, 16]  # operand widths; wide ones too (16-bit terms, Bit Fusion's temporal passes)


def _values(draw, shape, bits, signed, zero_p):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    v = rng.integers(lo, hi + 1, size=shape)
    v[rng.random(shape) < zero_p] = 0
    return v


def _weights(draw, shape, bits):
    """Weights with scattered zeros, or whole zero channel ranges and taps (all-zero weight bricks and steps), or
    none at all (a layer a zero-skipping design skips entirely)."""
    w = _values(draw, shape, bits, True, draw(st.sampled_from([0.2, 0.6])))
    pattern = draw(st.sampled_from(["scattered", "scattered", "zero channels", "zero taps", "all zero"]))
    if pattern == "zero channels":
        w[:, : w.shape[1] // 2] = 0
    elif pattern == "zero taps" and w.ndim == 4:
        w[..., 0, :] = 0
    elif pattern == "all zero":
        w[...] = 0
    return w


@st.composite
def small_layers(draw):
    kind = draw(st.sampled_from(["conv", "conv", "depthwise", "first", "fc", "gemm"]))
    act_signed = draw(st.booleans())
    ab, wb = draw(st.sampled_from(BITS)), draw(st.sampled_from(BITS))
    zero_p = draw(st.sampled_from([0.0, 0.3, 0.7]))
    if kind == "fc":
        c, k = draw(st.integers(1, 40)), draw(st.integers(1, 30))
        return Layer.fc("fc", _values(draw, (c,), ab, act_signed, zero_p), _weights(draw, (k, c), wb),
                        act_bits=ab, weight_bits=wb, act_signed=act_signed)
    if kind == "gemm":
        t, c, k = draw(st.integers(1, 5)), draw(st.integers(1, 20)), draw(st.integers(1, 12))
        return Layer.gemm("gemm", _values(draw, (t, c), ab, act_signed, zero_p), _weights(draw, (k, c), wb),
                          act_bits=ab, weight_bits=wb, act_signed=act_signed)
    stride = draw(st.integers(1, 2))
    if kind == "first":
        c, stride = 3, draw(st.integers(2, 3))
    else:
        c = draw(st.integers(1, 12))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = draw(st.sampled_from([0, 1, (0, 1, 1, 0)]))
    pmin = (pad, pad) if isinstance(pad, int) else (pad[0] + pad[1], pad[2] + pad[3])
    h = draw(st.integers(max(1, r - (pmin[0] if isinstance(pad, tuple) else 2 * pad)), 6))
    w = draw(st.integers(max(1, s - (pmin[1] if isinstance(pad, tuple) else 2 * pad)), 6))
    groups, k = 1, draw(st.integers(1, 10))
    if kind == "depthwise":
        groups = k = c
    elif c % 2 == 0 and draw(st.booleans()):
        groups, k = 2, 2 * draw(st.integers(1, 4))
    acts = _values(draw, (c, h, w), ab, act_signed, zero_p)
    wgts = _weights(draw, (k, c // groups, r, s), wb)
    return Layer.conv(kind, acts, wgts, stride=stride, padding=pad, groups=groups, act_bits=ab, weight_bits=wb,
                      act_signed=act_signed)


# small values for the knobs whose full range would make the reference engine crawl
SMALL_INTS = {"tiles": (1, 3), "rows": (1, 4), "columns": (1, 4), "lanes": (1, 5), "run_ahead": (0, 2),
              "lookahead": (0, 3), "lookaside": (0, 3), "kept_columns": (1, 8), "shared_terms": (1, 4),
              "fusion_rows": (1, 4), "fusion_columns": (1, 4), "xbar_columns": (1, 6), "cell_bits": (1, 3),
              "input_bits": (1, 3), "adc_bits": (12, 16), "adcs_per_crossbar": (1, 3)}  # reram: no ADC clipping
FIXED = {"pe_width", "clock_mhz", "group_size", "dram_gb_per_s", "tech_node_nm"}  # drawn separately (group_size)
# or irrelevant to the cycles


@st.composite
def archs(draw, design):
    """A configuration of ``design`` with every knob it declares drawn (small geometries)."""
    knobs = {}
    for name, knob in design_knobs(design).items():
        if name in FIXED:
            continue
        if knob.type is bool:
            knobs[name] = draw(st.booleans())
        elif knob.choices is not None:
            knobs[name] = draw(st.sampled_from(knob.choices))
        elif knob.type is int:
            knobs[name] = draw(st.integers(*SMALL_INTS.get(name, (knob.lo, knob.hi))))
        else:
            knobs[name] = draw(st.sampled_from(knob.choices or list(knob.type)))
    if "group_size" in design_knobs(design):  # group_size divides the units it groups
        model = MODELS[design]
        axis = model.group_axis or ("rows" if model.serial(knobs) == Serial.WEIGHT else "columns")
        knobs[axis] = draw(st.integers(1, 4))
        knobs["group_size"] = draw(st.sampled_from([g for g in (1, 2, 4) if knobs[axis] % g == 0]))
    if "adcs_per_crossbar" in knobs:  # reram: no more ADCs than a crossbar's columns
        knobs["adcs_per_crossbar"] = min(knobs["adcs_per_crossbar"], knobs["xbar_columns"])
    return load_arch(design.value, **knobs)


def test_every_design_has_a_model_and_a_preset():
    assert set(MODELS) == set(Design)
    assert {load_arch(name).design for name in preset_names()} == set(Design)


@pytest.mark.parametrize("design", sorted(MODELS))
@given(data=st.data())
def test_fast_engine_equals_reference_engine_and_convolution(design, data):
    arch = data.draw(archs(design))
    layer = data.draw(small_layers())
    fast = simulate_layer(arch, layer)
    ref = simulate_layer_reference(arch, layer)
    assert fast["cycles"] == ref.cycles, (arch, layer.name)
    # lossy designs multiply their effective weights; exact ones the layer's own
    np.testing.assert_array_equal(ref.output, layer_output(layer, effective_weights(arch, layer)))
    if fast["cycles"]:
        assert 0 < fast["lane_utilization"] <= 1 and 0 < fast["pe_utilization"] <= 1
    else:  # every step skipped (all-zero weights on a zero-skipping design): nothing ran
        assert not layer.weights.any() and fast["lane_utilization"] == fast["pe_utilization"] == 0


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_agrees_on_a_fixed_network(name):
    rng = np.random.default_rng(7)
    layers = [
        Layer.conv("first", rng.integers(0, 256, (3, 9, 9)), rng.integers(-128, 128, (20, 3, 3, 3)), stride=2,
                   padding=1, act_bits=8, weight_bits=8),
        Layer.conv("dense", rng.integers(0, 64, (20, 5, 5)), rng.integers(-8, 8, (18, 20, 3, 3)), padding=1,
                   act_bits=6, weight_bits=4),
        Layer.conv("dw", rng.integers(0, 64, (18, 5, 5)), rng.integers(-8, 8, (18, 1, 3, 3)), padding=1,
                   groups=18, act_bits=6, weight_bits=4),
        Layer.fc("fc", rng.integers(0, 30, 70), rng.integers(-100, 100, (40, 70)), act_bits=5, weight_bits=8),
    ]
    arch = load_arch(name, tiles=2, rows=4, columns=4, lanes=8)
    for layer in layers:
        ref = simulate_layer_reference(arch, layer)
        assert simulate_layer(arch, layer)["cycles"] == ref.cycles, layer.name
        np.testing.assert_array_equal(ref.output, layer_output(layer, effective_weights(arch, layer)))


@given(data=st.data())
def test_more_run_ahead_registers_never_cost_cycles(data):
    layer = data.draw(small_layers())
    arch = data.draw(archs(Design.PRAGMATIC))
    cycles = [simulate_layer(arch.replace(run_ahead=r), layer)["cycles"] for r in range(4)]
    assert cycles == sorted(cycles, reverse=True)


@given(st.integers(1, 5), st.integers(5, 12), st.integers(1, 11), st.integers(2, 4), st.integers(0, 3))
def test_space_to_depth_preserves_the_convolution(k, size, kernel, stride, pad):
    rng = np.random.default_rng(size * 31 + kernel)
    kernel = min(kernel, size + 2 * pad)
    a = rng.integers(0, 50, (3, size, size))
    w = rng.integers(-9, 9, (k, 3, kernel, kernel))
    want = conv2d(a, w, stride=stride, padding=pad)
    a2, w2 = space_to_depth(a, w, (pad,) * 4, stride)
    assert a2.shape[0] == 3 * stride * stride and w2.shape[2] == -(-kernel // stride)
    got = conv2d(a2, w2)[:, :want.shape[1], :want.shape[2]]
    np.testing.assert_array_equal(got, want)


def test_space_to_depth_channel_order_is_dnnsim():
    a = np.arange(3 * 4 * 4).reshape(3, 4, 4)
    a2, _ = space_to_depth(a, np.zeros((1, 3, 2, 2), int), (0, 0, 0, 0), 2)
    for c in range(3):
        for h in range(4):
            for w in range(4):
                assert a2[((h % 2) * 2 + w % 2) * 3 + c, h // 2, w // 2] == a[c, h, w]
