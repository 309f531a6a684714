"""Bitlet / BitX: significance-column costs, run-time pruning, float32 alignment, and exact outputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import ConfigError, Design, effective_weights, load_arch, simulate_layer
from simulator.designs import MODELS
from simulator.designs.bitlet import column_costs, serial_weights
from simulator.plan import Operand, plan_layer
from simulator.reference import simulate_layer_reference
from workloads import Layer, layer_output
from workloads.reference_ops import layer_output_exact

OP = Operand(True, 16)


def max_column_popcount(group: list[int], kept: int = 0) -> int:
    """By definition: bit j of every magnitude, counted per column; the kept columns' largest count, >= 1."""
    mags = [abs(v) for v in group]
    top = max(m.bit_length() for m in mags) - 1
    if top < 0:
        return 1
    lowest = max(0, top - kept + 1) if kept else 0
    return max(1, *(sum((m >> j) & 1 for m in mags) for j in range(lowest, top + 1)))


def brick_cost(brick: list[int], group: int, kept: int = 0) -> int:
    return max(max_column_popcount(brick[i:i + group], kept) for i in range(0, len(brick), group))


HAND_MADE = [  # (brick, group_size, kept, cycles)
    ([0, 0, 0, 0], 4, 0, 1),  # all zero: still one cycle
    ([1, 1, 1, 1], 4, 0, 4),  # one column holds four bits
    ([1, 2, 4, 8], 4, 0, 1),  # four columns, one bit each: in parallel
    ([-5, 5, 5, 0], 4, 0, 3),  # columns 0 and 2 hold three bits each; the sign does not matter
    ([7, 7, 0, 0], 2, 0, 2),  # two groups: (7, 7) costs 2, (0, 0) costs 1
    ([7, 0, 7, 0], 2, 0, 1),  # the same values split over the groups
    ([255, 255, 255, 1], 4, 0, 4),
    ([8, 1, 1, 1], 4, 1, 1),  # BitX k=1: only column 3 (the group msb) is kept
    ([8, 1, 1, 1], 4, 4, 3),  # k=4: columns 3..0, column 0 holds three bits
    ([12, 12, 3, 3], 4, 2, 2),  # k=2: columns 3, 2 kept (2 bits each), columns 1, 0 (2 bits each) pruned
    ([-32768, 32767, 1, 1], 4, 0, 3),  # 16-bit magnitudes: column 0 holds 32767, 1, 1
]


@pytest.mark.parametrize(("brick", "group", "kept", "cycles"), HAND_MADE)
def test_hand_made_bricks_cost_the_largest_kept_column(brick, group, kept, cycles):
    assert brick_cost(brick, group, kept) == cycles  # the test's own definition agrees with the hand count
    mags = np.abs(np.array([brick], dtype=np.int64))
    assert column_costs(mags, group, kept)[0] == cycles
    design = MODELS[Design.BITX if kept else Design.BITLET]
    knobs = {"kept_columns": kept} if kept else {}  # Bitlet keeps every column (no kept_columns knob)
    arch = load_arch("bitx" if kept else "bitlet", lanes=len(brick), group_size=group, **knobs)
    assert design.brick_stats(np.array([brick], dtype=np.int32), OP, arch).hi[0] == cycles
    assert len(design.brick_cycles(brick, OP, arch)) == cycles  # the reference's literal schedule


@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 4, 8, 16]), st.integers(0, 17), st.integers(1, 16))
def test_random_bricks_cost_the_largest_kept_column(seed, group, kept, bits):
    rng = np.random.default_rng(seed)
    bricks = rng.integers(-(1 << (bits - 1)) if bits > 1 else 0, 1 << (bits - 1) if bits > 1 else 2, (12, 16))
    bricks[rng.random(bricks.shape) < 0.3] = 0
    got = column_costs(np.abs(bricks).astype(np.int64), group, kept)
    assert got.tolist() == [brick_cost(b.tolist(), group, kept) for b in bricks]
    arch = load_arch("bitx", lanes=16, group_size=group, kept_columns=max(kept, 1))
    design = MODELS[Design.BITX]
    for b in bricks[:4]:
        schedule = design.brick_cycles(b.tolist(), OP, arch)
        assert len(schedule) == brick_cost(b.tolist(), group, max(kept, 1))


# ----------------------------------------------------------------------------- column_schedule: serial
def serial_column_count(group: list[int], kept: int = 0) -> int:
    """By definition: the columns j from the group msb down to msb - kept + 1 (all if kept is 0) in which some
    magnitude has bit j set, counted; at least 1."""
    mags = [abs(v) for v in group]
    top = max(m.bit_length() for m in mags) - 1
    lowest = max(0, top - kept + 1) if kept else 0
    return max(1, sum(1 for j in range(lowest, top + 1) if any((m >> j) & 1 for m in mags)))


SERIAL_HAND_MADE = [  # (brick, group_size, kept (0: all), cycles), counted by hand
    ([0, 0, 0, 0], 4, 0, 1),  # all zero: still one cycle
    ([1, 1, 1, 1], 4, 0, 1),  # one column holding four bits: one cycle (parallel: 4)
    ([1, 2, 4, 8], 4, 0, 4),  # four columns of one bit each: four cycles (parallel: 1)
    ([-5, 5, 5, 0], 4, 0, 2),  # columns 2 and 0; column 1 is empty and skipped
    ([7, 7, 0, 0], 2, 0, 3),  # (7, 7): columns 2, 1, 0; (0, 0): 1 cycle
    ([8, 1, 1, 1], 4, 1, 1),  # k=1: column 3 only
    ([8, 1, 1, 1], 4, 4, 2),  # k=4: columns 3 and 0 (2 and 1 empty)
    ([12, 12, 3, 3], 4, 2, 2),  # k=2: columns 3, 2
    ([255, 3, 0, 0, 0, 0, 0, 1], 4, 3, 3),  # (255, 3, 0, 0): columns 7, 6, 5; (0, 0, 0, 1): 1
    ([-32768, 32767, 1, 1], 4, 0, 16),  # 16-bit magnitudes: every column 15..0 holds a bit
]


@pytest.mark.parametrize(("brick", "group", "kept", "cycles"), SERIAL_HAND_MADE)
def test_serial_columns_cost_the_non_empty_kept_columns(brick, group, kept, cycles):
    assert max(serial_column_count(brick[i:i + group], kept) for i in range(0, len(brick), group)) == cycles
    assert column_costs(np.abs(np.array([brick], dtype=np.int64)), group, kept, True)[0] == cycles
    arch = load_arch("bitx", lanes=len(brick), group_size=group, kept_columns=kept or 32, column_schedule="serial")
    design = MODELS[Design.BITX]
    assert design.brick_stats(np.array([brick], dtype=np.int32), OP, arch).hi[0] == cycles
    assert len(design.brick_cycles(brick, OP, arch)) == cycles


@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 4, 8, 16]), st.integers(0, 17), st.integers(1, 16))
def test_random_bricks_cost_their_non_empty_kept_columns(seed, group, kept, bits):
    rng = np.random.default_rng(seed)
    bricks = rng.integers(-(1 << (bits - 1)) if bits > 1 else 0, 1 << (bits - 1) if bits > 1 else 2, (12, 16))
    bricks[rng.random(bricks.shape) < 0.3] = 0
    want = [max(serial_column_count(b[i:i + group].tolist(), kept) for i in range(0, 16, group)) for b in bricks]
    assert column_costs(np.abs(bricks).astype(np.int64), group, kept, True).tolist() == want
    arch = load_arch("bitx", lanes=16, group_size=group, kept_columns=kept or 32, column_schedule="serial")
    for b, cycles in zip(bricks[:4], want[:4], strict=True):
        assert len(MODELS[Design.BITX].brick_cycles(b.tolist(), OP, arch)) == cycles


def test_serial_schedule_of_a_tiny_group_by_hand():
    """[5, -3]: |5| = 101, |3| = 011. Column 2 holds lane 0 (+4), column 1 lane 1 (-2), column 0 both (+1, -1); one
    whole column per cycle, msb first."""
    design = MODELS[Design.BITX]
    arch = load_arch("bitx", lanes=2, group_size=2, kept_columns=32, column_schedule="serial")
    assert design.brick_cycles([5, -3], OP, arch) == [[(0, 4)], [(1, -2)], [(0, 1), (1, -1)]]
    arch = load_arch("bitx", lanes=2, group_size=2, kept_columns=2, column_schedule="serial")  # column 0 pruned
    assert design.brick_cycles([5, -3], OP, arch) == [[(0, 4)], [(1, -2)]]
    arch = load_arch("bitx", lanes=2, group_size=2, kept_columns=32)  # parallel: columns pop one bit each per cycle
    assert sorted(map(sorted, design.brick_cycles([5, -3], OP, arch))) == [[(0, 1), (0, 4), (1, -2)], [(1, -1)]]


def test_serial_fp32_group_by_hand():
    """Group [1.0, 0.75]: e_max = 0, aligned to 2^-23: 1.0 -> 2^23 (column 23), 0.75 -> 2^22 + 2^21 (columns 22,
    21). Serial: 3 columns, 3 cycles; k=1 keeps column 23: 1 cycle, effective weights [1.0, 0.0]; k=2: [1.0, 0.5].
    Parallel: every column holds one bit, 1 cycle whatever k."""
    layer = Layer.fc("f", np.array([3, 5]), np.array([[1.0, 0.75]], dtype=np.float32), act_bits=4,
                     weight_format="fp32")
    for kept, cycles, eff in ((24, 3, [1.0, 0.75]), (1, 1, [1.0, 0.0]), (2, 2, [1.0, 0.5])):
        geometry = dict(tiles=1, rows=1, columns=1, lanes=2, group_size=2, kept_columns=kept)
        serial = load_arch("bitx", **geometry, column_schedule="serial")
        assert simulate_layer(serial, layer)["cycles"] == simulate_layer_reference(serial, layer).cycles == cycles
        np.testing.assert_array_equal(effective_weights(serial, layer), np.array([eff], dtype=np.float32))
        assert simulate_layer(load_arch("bitx", **geometry), layer)["cycles"] == 1


@pytest.mark.parametrize("kind", ["conv", "fc", "first", "depthwise"])
def test_serial_keeping_every_column_is_the_lane_synchronous_weight_serial_engine(kind):
    """One group per brick, nothing pruned: a group costs its non-empty columns, popcount(OR of the magnitudes),
    which is Pragmatic on weights with one shared shift (weight_serial, first_stage_bits 0, all bricks issued)."""
    layer = _int_layer(np.random.default_rng(3), kind, 9)
    for run_ahead in (0, 2):
        bitx = load_arch("bitx", **SMALL, group_size=SMALL["lanes"], kept_columns=32, column_schedule="serial",
                         run_ahead=run_ahead)
        ws = load_arch("weight_serial", **SMALL, skip_zero_weights=False, first_stage_bits=0, run_ahead=run_ahead)
        assert simulate_layer(bitx, layer)["cycles"] == simulate_layer(ws, layer)["cycles"]


@pytest.mark.parametrize("kind", ["conv", "fc", "first", "depthwise"])
def test_serial_schedule_engines_agree_and_outputs_are_exact(kind):
    layer = _int_layer(np.random.default_rng(13), kind, 12)
    for kept, run_ahead in ((32, 0), (3, 2)):
        arch = load_arch("bitx", **SMALL, group_size=4, kept_columns=kept, run_ahead=run_ahead,
                         column_schedule="serial")
        fast, ref = simulate_layer(arch, layer), simulate_layer_reference(arch, layer)
        assert fast["cycles"] == ref.cycles
        np.testing.assert_array_equal(ref.output, layer_output(layer, effective_weights(arch, layer)))
        # the schedule does not change what is multiplied
        np.testing.assert_array_equal(effective_weights(arch, layer),
                                      effective_weights(arch.replace(column_schedule="parallel"), layer))
        # a serial column is worth one cycle per bit of a value alone: ideal work = the terms
        assert fast["ideal_cycles"] * arch.chip_lanes == fast["terms"]


# ----------------------------------------------------------------------------- fixed point
def _int_layer(rng, kind: str, bits: int) -> Layer:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1))
    if kind == "fc":
        return Layer.fc("fc", rng.integers(0, 200, 37), rng.integers(lo, hi, (9, 37)), act_bits=8, weight_bits=bits)
    if kind == "first":
        return Layer.conv("first", rng.integers(0, 200, (3, 9, 9)), rng.integers(lo, hi, (5, 3, 3, 3)), stride=2,
                          padding=1, act_bits=8, weight_bits=bits)
    if kind == "depthwise":
        return Layer.conv("dw", rng.integers(0, 200, (6, 5, 5)), rng.integers(lo, hi, (6, 1, 3, 3)), groups=6,
                          padding=1, act_bits=8, weight_bits=bits)
    return Layer.conv("conv", rng.integers(0, 200, (11, 5, 5)), rng.integers(lo, hi, (7, 11, 3, 3)), padding=1,
                      act_bits=8, weight_bits=bits)


SMALL = dict(tiles=2, rows=3, columns=4, lanes=8)


@pytest.mark.parametrize("kind", ["conv", "fc", "first", "depthwise"])
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_bitx_keeping_every_column_is_bitlet_and_lossless(kind, bits):
    layer = _int_layer(np.random.default_rng(bits), kind, bits)
    for group in (2, 8):
        bitlet = load_arch("bitlet", **SMALL, group_size=group, run_ahead=1)
        bitx = load_arch("bitx", **SMALL, group_size=group, run_ahead=1, kept_columns=bits)
        np.testing.assert_array_equal(effective_weights(bitx, layer), layer.weights)
        np.testing.assert_array_equal(effective_weights(bitlet, layer), layer.weights)
        fast_x, fast_l = simulate_layer(bitx, layer), simulate_layer(bitlet, layer)
        assert fast_x["cycles"] == fast_l["cycles"] and fast_x["terms"] == fast_l["terms"]
    pruned = load_arch("bitx", **SMALL, group_size=8, run_ahead=1, kept_columns=2)
    assert simulate_layer(pruned, layer)["cycles"] <= fast_l["cycles"]  # pruning never costs cycles


def test_bitx_effective_weights_clear_exactly_the_bits_below_group_msb_minus_k_plus_1():
    rng = np.random.default_rng(5)
    lanes, group = 8, 4
    w = rng.integers(-(1 << 15), 1 << 15, (6, 21, 3, 3))
    w[rng.random(w.shape) < 0.2] = 0
    layer = Layer.conv("c", rng.integers(0, 9, (21, 4, 4)), w, padding=1, act_bits=4, weight_bits=16)
    for k in (1, 3, 7, 15):
        eff = effective_weights(load_arch("bitx", **{**SMALL, "lanes": lanes}, group_size=group, kept_columns=k),
                                layer)
        want = w.copy()
        for f in range(w.shape[0]):
            for r in range(3):
                for s in range(3):
                    for c0 in range(0, 21, lanes):  # a brick: `lanes` channels at one kernel position
                        for g0 in range(c0, min(c0 + lanes, 21), group):  # its groups of `group` lanes
                            members = w[f, g0:min(g0 + group, c0 + lanes, 21), r, s]
                            msb = int(np.abs(members).max()).bit_length() - 1
                            cleared = (1 << max(0, msb - k + 1)) - 1 if msb >= 0 else 0
                            want[f, g0:g0 + len(members), r, s] = np.sign(members) * (np.abs(members) & ~cleared)
        np.testing.assert_array_equal(eff, want)
        row = simulate_layer(load_arch("bitx", **{**SMALL, "lanes": lanes}, group_size=group, kept_columns=k), layer)
        err = np.linalg.norm(want - w) / np.linalg.norm(w)  # the weights' error in place agrees with the hand mask
        assert row["lossless"] == (err == 0) and row["weight_rel_error"] == pytest.approx(err, rel=1e-12)


@pytest.mark.parametrize("kind", ["conv", "fc", "first", "depthwise"])
def test_reference_outputs_are_the_convolution_with_the_effective_weights(kind):
    layer = _int_layer(np.random.default_rng(11), kind, 12)
    arch = load_arch("bitx", **SMALL, group_size=4, kept_columns=3, run_ahead=2)
    eff = effective_weights(arch, layer)
    assert not np.array_equal(eff, layer.weights)  # lossy at k=3 on 12-bit weights
    ref = simulate_layer_reference(arch, layer)
    fast = simulate_layer(arch, layer)
    assert ref.cycles == fast["cycles"]
    np.testing.assert_array_equal(ref.output, layer_output(layer, eff))
    w = layer.weights.astype(float)  # in place (conv, fc) or from eff (first, depthwise): the same error
    assert not fast["lossless"]
    assert fast["weight_rel_error"] == pytest.approx(np.linalg.norm(eff - w) / np.linalg.norm(w), rel=1e-12)


# ----------------------------------------------------------------------------- float32
def naive_fp32_effective(groups: np.ndarray, kept: int) -> np.ndarray:
    """Straightforward float computation, one group (last axis) at a time: align to the largest frexp exponent with
    24 mantissa bits (truncating), keep the top `kept` columns below the group's leading bit, scale back."""
    out = np.zeros_like(groups, dtype=np.float32)
    for idx in np.ndindex(groups.shape[:-1]):
        g = groups[idx].astype(np.float64)
        if not g.any():
            continue
        e_max = np.frexp(g[g != 0])[1].max()  # |w| = m * 2^e, 0.5 <= m < 1: the hidden bit is worth 2^(e-1)
        unit = 2.0 ** (e_max - 24)
        aligned = np.trunc(np.abs(g) / unit).astype(np.int64)
        msb = int(aligned.max()).bit_length() - 1
        aligned &= ~((1 << max(0, msb - kept + 1)) - 1)
        out[idx] = (np.sign(g) * aligned * unit).astype(np.float32)
    return out


def _fp32_weights(rng, shape, spread: int = 12) -> np.ndarray:
    w = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread, shape))
    w[rng.random(shape) < 0.15] = 0
    w = w.astype(np.float32)
    w.flat[0] = np.float32(3e-45)  # subnormals align like any value
    return w


@pytest.mark.parametrize("kept", [1, 5, 12, 24, 30])
def test_fp32_effective_weights_are_the_aligned_truncated_mantissas(kept):
    rng = np.random.default_rng(kept)
    lanes, group = 8, 4
    w = _fp32_weights(rng, (10, 24))  # fc: row f, brick of 8 lanes, groups of 4 consecutive channels
    layer = Layer.fc("fc", rng.integers(0, 100, 24), w, act_bits=7, weight_format="fp32")
    eff = effective_weights(load_arch("bitx", **{**SMALL, "lanes": lanes}, group_size=group, kept_columns=kept), layer)
    assert eff.dtype == np.float32
    np.testing.assert_array_equal(eff, naive_fp32_effective(w.reshape(10, 6, 4), kept).reshape(10, 24))


def test_fp32_groups_sharing_an_exponent_are_lossless_with_24_columns():
    rng = np.random.default_rng(2)
    e = rng.integers(-20, 20, (8, 4, 1))  # fc (8, 16): groups of 4 channels share 2^e
    mant = 1 + rng.integers(0, 1 << 23, (8, 4, 4)) / (1 << 23)
    w = (rng.choice([-1.0, 1.0], (8, 4, 4)) * mant * np.exp2(e)).astype(np.float32).reshape(8, 16)
    layer = Layer.fc("fc", rng.integers(0, 100, 16), w, act_bits=7, weight_format="fp32")
    for kept in (24, 32):
        arch = load_arch("bitx", **SMALL, group_size=4, kept_columns=kept)
        np.testing.assert_array_equal(effective_weights(arch, layer), w)
    # different exponents in a group: the smaller ones lose the bits shifted out by the alignment
    w2 = w.copy()
    w2[:, 1] *= np.float32(2.0 ** -5)
    lossy = effective_weights(load_arch("bitx", **SMALL, group_size=4, kept_columns=24),
                              layer.with_values(weights=w2))
    assert not np.array_equal(lossy, w2)
    np.testing.assert_array_equal(lossy, naive_fp32_effective(w2.reshape(8, 4, 4), 24).reshape(8, 16))


@st.composite
def fp32_layers(draw):
    kind = draw(st.sampled_from(["conv", "first", "depthwise", "fc", "gemm"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([2, 30, 120]))
    if kind == "fc":
        c, k = draw(st.integers(1, 20)), draw(st.integers(1, 9))
        return Layer.fc("fc", rng.integers(-99, 99, c), _fp32_weights(rng, (k, c), spread), act_bits=8,
                        weight_format="fp32")
    if kind == "gemm":
        t, c, k = draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 6))
        return Layer.gemm("gemm", rng.integers(0, 255, (t, c)), _fp32_weights(rng, (k, c), spread), act_bits=8,
                          weight_format="fp32")
    c = 3 if kind == "first" else draw(st.integers(1, 7))
    k = c if kind == "depthwise" else draw(st.integers(1, 5))
    groups = c if kind == "depthwise" else 1
    stride = 2 if kind == "first" else draw(st.integers(1, 2))
    return Layer.conv(kind, rng.integers(0, 255, (c, 5, 5)), _fp32_weights(rng, (k, c // groups, 3, 3), spread),
                      stride=stride, padding=1, groups=groups, act_bits=8, weight_format="fp32")


# mapping.lower casts a depthwise layer's weights to int32 before the hooks re-lower them (harmless here)
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@settings(max_examples=25)
@given(layer=fp32_layers(), lanes_group=st.sampled_from([(1, 1), (2, 1), (2, 2), (4, 2), (6, 3), (4, 4)]),
       kept=st.sampled_from([1, 4, 11, 24]), run_ahead=st.integers(0, 2), rows=st.integers(1, 3),
       columns=st.integers(1, 3), tiles=st.integers(1, 2), schedule=st.sampled_from(["parallel", "serial"]))
def test_fp32_fast_equals_reference_and_reference_is_exact(layer, lanes_group, kept, run_ahead, rows, columns,
                                                           tiles, schedule):
    lanes, group = lanes_group
    arch = load_arch("bitx", tiles=tiles, rows=rows, columns=columns, lanes=lanes, group_size=group,
                     kept_columns=kept, run_ahead=run_ahead, column_schedule=schedule)
    fast = simulate_layer(arch, layer)
    ref = simulate_layer_reference(arch, layer)
    assert fast["cycles"] == ref.cycles
    eff = effective_weights(arch, layer)
    np.testing.assert_array_equal(eff, naive_fp32_effective(
        _lowered_groups(arch, layer), kept).ravel()[_lowered_positions(arch, layer)].reshape(eff.shape))
    assert ref.output.dtype == np.float64
    np.testing.assert_array_equal(ref.output, layer_output(layer, eff))
    # exactly, before rounding: the datapath's integer sums equal the exact convolution with the effective weights
    design = MODELS[Design.BITX]
    plan = plan_layer(arch, layer)
    low = plan.low
    _, psum, unit = design.reference_exact(plan)
    ints, s = layer_output_exact(layer, eff)
    ints = ints.T if layer.kind == "gemm" else ints.reshape(layer.out_channels, -1)  # (K, windows)
    for g in range(psum.shape[0]):
        first, n = int(low.filter_offset[g]), int(low.filters[g])
        for f in range(n):
            for w in range(low.windows):
                assert int(psum[g, f, w]) << (unit - min(unit, s)) == int(ints[first + f, w]) << (s - min(unit, s))


def _lowered_groups(arch, layer) -> np.ndarray:
    """The layer's weights at their lowered brick lanes, grouped (the machine's mapping)."""
    sw = serial_weights(arch, layer)
    return sw.values.reshape(*sw.values.shape[:-1], arch.lanes // arch.group_size, arch.group_size)


def _lowered_positions(arch, layer) -> np.ndarray:
    """For every original weight (flat order), its flat position among the lowered brick lanes."""
    index = serial_weights(arch, layer).index.ravel()
    pos = np.zeros(layer.weights.size, dtype=np.int64)
    pos[index[index > 0] - 1] = np.flatnonzero(index > 0)
    return pos


def test_fp32_layers_are_refused_by_the_other_designs():
    rng = np.random.default_rng(0)
    layer = Layer.fc("f", rng.integers(0, 9, 8), rng.standard_normal((3, 8)).astype(np.float32),
                     weight_format="fp32")
    for name in ("pragmatic", "stripes", "bitlet"):
        with pytest.raises(ConfigError, match=r"layer 'f' has fp32 weights, which .* does not model"):
            simulate_layer(load_arch(name), layer)
    with pytest.raises(ConfigError, match="fp32 weights"):
        effective_weights(load_arch("bitlet"), layer)
    assert simulate_layer(load_arch("bitx"), layer)["cycles"] > 0


def test_presets():
    for name in ("bitlet", "bitx"):
        arch = load_arch(name)
        assert (arch.tiles, arch.rows, arch.columns, arch.lanes, arch.pe_width) == (16, 16, 16, 16, 16)
        assert (arch.serial, arch.encoding, arch.clock_mhz) == ("weight", "interleaved", 980)
    assert load_arch("bitx").kept_columns == 8
    assert load_arch("bitx").column_schedule == "parallel"  # Bitlet's PE, today's behaviour
    with pytest.raises(ConfigError, match=r"column_schedule \('diagonal'\) must be one of: parallel, serial"):
        load_arch("bitx", column_schedule="diagonal")


def test_shared_reference_engine_keeps_fp32_outputs():
    rng = np.random.default_rng(1)
    layer = Layer.fc("f", rng.integers(0, 9, 8), (rng.standard_normal((3, 8)) / 7).astype(np.float32),
                     weight_format="fp32")
    arch = load_arch("bitx", **SMALL, group_size=2)
    np.testing.assert_array_equal(simulate_layer_reference(arch, layer).output,
                                  layer_output(layer, effective_weights(arch, layer)))


@pytest.mark.parametrize("kind", ["conv", "fc", "first", "depthwise"])
def test_whole_layer_runs_agree_with_the_shared_engines_on_integer_layers(kind):
    """The float32 hooks' loops (fast_run, reference_exact) also run integer layers: there the engines' brick path
    is an independent oracle for their mapping, synchronization and accumulation."""
    layer = _int_layer(np.random.default_rng(7), kind, 9)
    design = MODELS[Design.BITX]
    for run_ahead in (0, 2):
        arch = load_arch("bitx", **SMALL, group_size=2, kept_columns=4, run_ahead=run_ahead)
        plan = plan_layer(arch, layer)
        low = plan.low
        fast = simulate_layer(arch, layer)
        assert design.fast_run(plan) == (fast["cycles"], round(
            fast["pe_utilization"] * fast["cycles"] * arch.pes), fast["busy_lane_cycles"])
        cycles, psum, unit = design.reference_exact(plan)
        ref = simulate_layer_reference(arch, layer)
        assert (cycles, unit) == (ref.cycles, 0)
        got = np.zeros((layer.out_channels, low.windows), dtype=np.int64)
        for g in range(psum.shape[0]):
            got[low.filter_offset[g]:low.filter_offset[g] + low.filters[g]] = psum[g, :low.filters[g]].astype(np.int64)
        want = ref.output.T if layer.kind == "gemm" else ref.output.reshape(layer.out_channels, -1)
        np.testing.assert_array_equal(got, want)
