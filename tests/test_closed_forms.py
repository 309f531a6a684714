"""Cycle counts that have closed forms (docs/design.md §7): DaDianNao, Stripes, the FC pipeline, Pragmatic's limits."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from simulator import load_arch, simulate_layer
from workloads import Layer


@st.composite
def conv_case(draw):
    c, k = draw(st.integers(1, 40)), draw(st.integers(1, 70))
    r = draw(st.integers(1, 3))
    h = draw(st.integers(r, 9))
    stride, bits = draw(st.integers(1, 2)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    layer = Layer.conv("c", rng.integers(0, 1 << bits, (c, h, h)), rng.integers(-8, 8, (k, c, r, r)),
                       stride=stride, act_bits=bits, weight_bits=4)
    geometry = dict(tiles=draw(st.integers(1, 4)), rows=draw(st.integers(1, 8)), columns=draw(st.integers(1, 8)),
                    lanes=draw(st.integers(1, 16)))
    return layer, geometry


KEEP_LAYOUT = {"first_layer_space_to_depth": False}  # the closed form is for the layer as given


def dadiannao_conv_cycles(layer: Layer, tiles, rows, columns, lanes) -> int:
    oh, ow = layer.output_hw
    k, c, r, s = layer.weights.shape
    window_sets = math.ceil(oh * ow / columns)
    passes = math.ceil(math.ceil(k / rows) / tiles)
    return window_sets * passes * r * s * math.ceil(c / lanes)


@given(conv_case())
def test_dadiannao_and_stripes_conv(case):
    layer, geo = case
    base = dadiannao_conv_cycles(layer, **geo)
    assert simulate_layer(load_arch("dadiannao", **geo, **KEEP_LAYOUT), layer)["cycles"] == base
    assert simulate_layer(load_arch("stripes", **geo, **KEEP_LAYOUT), layer)["cycles"] == base * layer.act_bits


@given(st.integers(1, 300), st.integers(1, 200), st.integers(1, 16), st.integers(1, 16), st.integers(1, 4),
       st.integers(1, 8))
def test_fc_pipeline_with_constant_cost(c, k, lanes, columns, tiles, rows):
    rng = np.random.default_rng(c * 1000 + k)
    bits = min(columns, 16)  # cost k <= columns: steps - 1 + k
    layer = Layer.fc("fc", rng.integers(0, 1 << bits, c), rng.integers(-5, 5, (k, c)), act_bits=bits)
    geo = dict(tiles=tiles, rows=rows, columns=columns, lanes=lanes)
    steps = math.ceil(c / lanes) * math.ceil(math.ceil(k / rows) / tiles)  # passes rotate on over the columns
    assert simulate_layer(load_arch("stripes", **geo), layer)["cycles"] == steps - 1 + bits
    assert simulate_layer(load_arch("dadiannao", **geo), layer)["cycles"] == steps


def _pragmatic_lockstep_bound(layer: Layer, columns: int, lanes: int, per_brick) -> int:
    """Sum over window sets and steps of the slowest column's per-brick cost (stride 1, no padding, 1 pass)."""
    a = layer.activations
    c, _, _ = a.shape
    _, _, r, s = layer.weights.shape
    oh, ow = layer.output_hw
    windows = [(y, x) for y in range(oh) for x in range(ow)]
    total = 0
    for w0 in range(0, len(windows), columns):
        for dy in range(r):
            for dx in range(s):
                for cb in range(0, c, lanes):
                    total += max(max(1, per_brick(a[cb:cb + lanes, y + dy, x + dx]))
                                 for y, x in windows[w0:w0 + columns])
    return total


@given(st.integers(1, 20), st.integers(2, 6), st.integers(1, 3), st.integers(1, 6), st.integers(1, 8),
       st.integers(0, 99))
def test_pragmatic_limits(c, h, r, columns, lanes, seed):
    rng = np.random.default_rng(seed)
    r = min(r, h)
    layer = Layer.conv("c", rng.integers(0, 1 << 12, (c, h, h)) * (rng.random((c, h, h)) > 0.3),
                       rng.integers(-8, 8, (4, c, r, r)), act_bits=12, weight_bits=4)
    geo = dict(tiles=1, rows=4, columns=columns, lanes=lanes, run_ahead=0, encoding="binary")

    def max_popcount(vals):
        return max(bin(int(v)).count("1") for v in vals)

    def or_popcount(vals):
        return bin(int(np.bitwise_or.reduce(vals))).count("1")

    big_b = simulate_layer(load_arch("pragmatic", first_stage_bits=4, **geo), layer)["cycles"]
    zero_b = simulate_layer(load_arch("pragmatic", first_stage_bits=0, **geo), layer)["cycles"]
    assert big_b == _pragmatic_lockstep_bound(layer, columns, lanes, max_popcount)
    assert zero_b == _pragmatic_lockstep_bound(layer, columns, lanes, or_popcount)
