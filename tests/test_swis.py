"""SWIS: the design's cost and lossy weights, its two engines, and the offline decomposition (pruning.swis)."""

from __future__ import annotations

import ast
import collections
import itertools
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pruning import decompose, swis
from pruning.swis_decomposition import DECOMPOSITIONS
from simulator import effective_weights, load_arch, simulate_layer
from simulator.config import Design
from simulator.designs import MODELS, Operand
from simulator.reference import simulate_layer_reference
from workloads import Layer, Workload, layer_output
from workloads.bricks import channel_groups

from .conftest import REPO, shared_path

SWIS = MODELS[Design.SWIS]
OP = Operand(True, 8)


def _arch(**knobs):
    return load_arch("swis", **knobs)


def _expected_cost(brick: list[int], group: int, n: int) -> int:
    cost = 1
    for g0 in range(0, len(brick), group):
        union = 0
        for v in brick[g0:g0 + group]:
            union |= abs(v)
        cost = max(cost, min(bin(union).count("1"), n))
    return cost


# ------------------------------------------------------------------------------------------- the design
def test_preset():
    arch = _arch()
    assert (arch.design, arch.serial, arch.encoding) == ("swis", "weight", "shared_shift")
    assert (arch.tiles, arch.rows, arch.columns, arch.lanes, arch.pe_width) == (16, 16, 16, 16, 16)
    assert (arch.shared_terms, arch.group_size, arch.clock_mhz) == (3, 8, 980)
    first = (REPO / "arch_configs" / "swis.yaml").read_text().splitlines()[0]
    assert first.startswith("# SWIS") and "2021" in first


def test_cost_on_hand_made_bricks():
    arch = _arch(lanes=8, group_size=4, shared_terms=3)
    bricks = np.array([
        [0, 0, 0, 0, 0, 0, 0, 0],  # all zero: 1 cycle
        [1, 2, 4, 8, 0, 0, 0, 0],  # OR = 1111: 4 positions, capped at 3
        [1, 1, -1, 1, 2, -2, 2, 0],  # groups: OR 1 (1), OR 10 (1)
        [3, 0, 0, 0, 5, -6, 0, 0],  # OR 11 (2), OR 111 (3)
        [-128, 127, 0, 0, 0, 0, 0, 0],  # OR 11111111: capped at 3
    ], dtype=np.int32)
    assert SWIS.brick_stats(bricks, OP, arch).hi.tolist() == [1, 3, 1, 3, 3]
    assert SWIS.brick_stats(bricks, OP, arch.replace(shared_terms=16)).hi.tolist() == [1, 4, 1, 3, 8]
    assert SWIS.brick_stats(bricks, OP, arch.replace(group_size=8)).hi.tolist() == [1, 3, 2, 3, 3]
    assert [len(SWIS.brick_cycles(b.tolist(), OP, arch)) for b in bricks] == [1, 3, 1, 3, 3]
    assert SWIS.value_cost(np.array([0, 1, -7, 8, -128, 127]), OP, arch).tolist() == [0, 1, 3, 1, 1, 3]


@given(st.lists(st.integers(-300, 300), min_size=8, max_size=8), st.sampled_from([1, 2, 4, 8]), st.integers(1, 5))
def test_cost_is_min_of_or_popcount_and_n_by_groups(brick, group, n):
    arch = _arch(lanes=8, group_size=group, shared_terms=n)
    want = _expected_cost(brick, group, n)
    assert SWIS.brick_stats(np.array([brick], np.int32), OP, arch).hi[0] == want
    cycles = SWIS.brick_cycles(brick, OP, arch)
    assert len(cycles) == want
    # the cycles apply exactly the effective weights: the N most significant positions of each group's OR
    applied = [0] * 8
    for cycle in cycles:
        for lane, coeff in cycle:
            applied[lane] += coeff
    layer = Layer.fc("fc", np.ones(8, np.int32), np.array([brick]), weight_bits=10)
    assert applied == effective_weights(arch, layer)[0].tolist()


def test_effective_weights_keep_the_most_significant_positions_of_the_group():
    arch = _arch(lanes=4, group_size=4, shared_terms=2, rows=1, columns=1, tiles=1)
    layer = Layer.fc("fc", np.ones(8, np.int32), np.array([[5, -3, 8, 0, 1, 1, -1, 0]]), weight_bits=5)
    # group 1: OR = 1111 -> keep 8 and 4; group 2: OR = 1 -> lossless
    assert effective_weights(arch, layer).tolist() == [[4, 0, 8, 0, 1, 1, -1, 0]]


def _random_layer(rng, kind: str, wbits: int = 8) -> Layer:
    hi = 1 << (wbits - 1)
    if kind == "fc":
        return Layer.fc("fc", rng.integers(0, 16, 37), rng.integers(-hi, hi, (11, 37)), act_bits=4, weight_bits=wbits)
    if kind == "gemm":
        return Layer.gemm("gemm", rng.integers(0, 16, (3, 21)), rng.integers(-hi, hi, (7, 21)), act_bits=4,
                          weight_bits=wbits)
    if kind == "first":
        return Layer.conv("first", rng.integers(0, 16, (3, 9, 9)), rng.integers(-hi, hi, (6, 3, 3, 3)), stride=2,
                          padding=1, act_bits=4, weight_bits=wbits)
    if kind == "depthwise":
        return Layer.conv("dw", rng.integers(0, 16, (10, 5, 5)), rng.integers(-hi, hi, (10, 1, 3, 3)), padding=1,
                          groups=10, act_bits=4, weight_bits=wbits)
    if kind == "grouped":
        return Layer.conv("grouped", rng.integers(0, 16, (12, 5, 5)), rng.integers(-hi, hi, (8, 6, 3, 3)), padding=1,
                          groups=2, act_bits=4, weight_bits=wbits)
    return Layer.conv("conv", rng.integers(0, 16, (19, 5, 6)), rng.integers(-hi, hi, (9, 19, 3, 2)), stride=1,
                      padding=(1, 0, 1, 1), act_bits=4, weight_bits=wbits)


KINDS = ["conv", "first", "depthwise", "grouped", "fc", "gemm"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("knobs", [
    dict(tiles=2, rows=3, columns=2, lanes=8, group_size=4, shared_terms=2),  # rows not a multiple of the group
    dict(tiles=1, rows=2, columns=3, lanes=8, group_size=8, shared_terms=3, run_ahead=2),
    dict(tiles=2, rows=4, columns=2, lanes=4, group_size=2, shared_terms=1, depthwise_mapping="spread"),
    dict(tiles=1, rows=1, columns=1, lanes=6, group_size=3, shared_terms=4, first_layer_space_to_depth=False),
])
def test_fast_equals_reference_and_outputs_use_effective_weights(kind, knobs):
    arch = _arch(**knobs)
    layer = _random_layer(np.random.default_rng(KINDS.index(kind)), kind)
    fast, ref = simulate_layer(arch, layer), simulate_layer_reference(arch, layer)
    assert fast["cycles"] == ref.cycles
    eff = effective_weights(arch, layer)
    np.testing.assert_array_equal(ref.output, layer_output(layer, eff))
    assert fast["terms"] == int(sum(bin(abs(int(v))).count("1") for v in eff.ravel())) * np.prod(layer.output_hw)
    assert 0 < fast["lane_utilization"] <= 1 and 0 < fast["pe_utilization"] <= 1
    w = layer.weights.astype(float)  # the error in place (lane groups in order) or from eff agrees with eff's
    assert fast["lossless"] == bool((eff == layer.weights).all())
    assert fast["weight_rel_error"] == pytest.approx(np.linalg.norm(eff - w) / np.linalg.norm(w), rel=1e-12)


def test_run_ahead_units_are_rows_not_groups_of_rows():
    """group_size groups lanes: with run-ahead, each row drifts on its own (two rows, group_size 2)."""
    arch = _arch(tiles=1, rows=2, columns=1, lanes=2, group_size=2, shared_terms=8, run_ahead=4)
    # row 0 is slow on step 0 and fast on step 1, row 1 the reverse: per-row units overlap them
    w = np.zeros((2, 4), np.int32)
    w[0, 0], w[1, 2] = 0b1111, 0b1111
    layer = Layer.fc("fc", np.ones(4, np.int32), w, weight_bits=8)
    conv = Layer.conv("conv", np.ones((4, 1, 1), np.int32), w.reshape(2, 4, 1, 1), weight_bits=8)
    for lyr in (layer, conv):
        assert simulate_layer(arch, lyr)["cycles"] == simulate_layer_reference(arch, lyr).cycles
    assert simulate_layer(arch, conv)["cycles"] == 5  # lockstep would take 4 + 4
    assert simulate_layer(arch.replace(run_ahead=0), conv)["cycles"] == 8


# ------------------------------------------------------------------------------------------- decomposition
def _brute_force(values: list[int], n: int, cap_pos: int, cap_neg: int, nbits: int) -> int:
    """Min squared error over all n-sets of positions and all per-weight bit choices on them."""
    best = None
    for pset in itertools.combinations(range(nbits), min(n, nbits)):
        sums = sorted({sum(c) for k in range(len(pset) + 1) for c in itertools.combinations([1 << p for p in pset], k)})
        err = 0
        for v in values:
            cap = cap_neg if v < 0 else cap_pos
            err += min((abs(v) - s) ** 2 for s in sums if s <= cap)
        best = err if best is None else min(best, err)
    return best


@given(st.integers(1, 3), st.integers(2, 5), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_exhaustive_search_is_optimal(group, bits, n, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (2, 2 * group))
    res = decompose(w, shared_terms=n, group_size=group, weight_bits=bits)
    cap_pos, cap_neg = (1 << (bits - 1)) - 1, 1 << (bits - 1)
    flat = w.ravel()
    for j, idx in enumerate(res.groups):
        vals = [int(flat[i]) for i in idx if i >= 0]
        assert res.group_sse[j] == _brute_force(vals, n, cap_pos, cap_neg, bits)
        got = res.weights.ravel()[idx[idx >= 0]]
        assert res.group_sse[j] == int(((got - flat[idx[idx >= 0]]) ** 2).sum())


@st.composite
def weight_tensors(draw):
    bits = draw(st.integers(2, 8))
    conv = draw(st.booleans())
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 20))) + ((draw(st.integers(1, 3)), 2) if conv else ())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = np.round(rng.laplace(0, draw(st.sampled_from([1, 4, 30])), shape))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(w, lo, hi).astype(np.int32), bits


def _used_positions(res) -> np.ndarray:
    return np.array([bin(int(p)).count("1") for p in res.positions])


@given(weight_tensors(), st.integers(1, 4), st.integers(1, 5))
def test_swis_is_never_worse_than_the_shared_baselines(tensor, n, group):
    w, bits = tensor
    res = {m: decompose(w, shared_terms=n, group_size=group, method=m, weight_bits=bits) for m in DECOMPOSITIONS}
    swis = res["swis"]
    assert (swis.group_sse <= res["shared_msb"].group_sse).all()
    assert (swis.group_sse <= res["fixed"].group_sse).all()
    # per-weight truncation uses up to G*N positions; where it fits in N, SWIS can do it too
    fits = _used_positions(res["truncate"]) <= n
    assert (swis.group_sse[fits] <= res["truncate"].group_sse[fits]).all()
    for r in res.values():
        assert r.weights.shape == w.shape and r.weights.dtype == w.dtype
        assert r.mse == pytest.approx(((r.weights.astype(np.int64) - w) ** 2).mean())
        assert r.max_abs_error == int(np.abs(r.weights.astype(np.int64) - w).max())
        assert (r.weights * np.sign(w) >= 0).all()  # signs kept (or zeroed)
        assert r.weights.min() >= -(1 << (bits - 1)) and r.weights.max() < 1 << (bits - 1)
    for m in ("swis", "shared_msb", "fixed"):
        assert (_used_positions(res[m]) <= n).all()
        # positions = the OR of the group's new magnitudes
        flat = np.abs(res[m].weights.ravel().astype(np.int64))
        for j, idx in enumerate(res[m].groups):
            assert np.bitwise_or.reduce(flat[idx[idx >= 0]]) == res[m].positions[j]


def test_per_weight_truncation_can_beat_shared_positions():
    w = np.array([[1, 2]])
    assert decompose(w, shared_terms=1, group_size=2, method="truncate").mse == 0
    assert decompose(w, shared_terms=1, group_size=2, method="swis").mse == 0.5


@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from([12, 16]))
def test_wide_weights_heuristic_keeps_the_guarantees(seed, n, bits):
    rng = np.random.default_rng(seed)
    w = np.clip(np.round(rng.laplace(0, 1 << (bits - 5), (3, 24))), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    w = w.astype(np.int32)
    res = {m: decompose(w, shared_terms=n, group_size=8, method=m, weight_bits=bits) for m in DECOMPOSITIONS}
    assert (res["swis"].group_sse <= res["shared_msb"].group_sse).all()
    assert (res["swis"].group_sse <= res["fixed"].group_sse).all()
    assert (_used_positions(res["swis"]) <= n).all()


def test_groups_follow_the_hardware_lanes():
    # conv (K, C, R, S): along C at every (k, r, s), zero-padded at the end of the channel range
    g = channel_groups((2, 5, 1, 2), 4)
    idx = np.arange(20).reshape(2, 5, 1, 2)
    assert g[0].tolist() == idx[0, :4, 0, 0].tolist() and g[1].tolist() == [idx[0, 4, 0, 0], -1, -1, -1]
    assert len(g) == 2 * 2 * 2
    # space-to-depth (stride 2): channel ((r % 2) * 2 + s % 2) * 3 + c at tap (r // 2, s // 2)
    g = channel_groups((1, 3, 3, 3), 6, space_to_depth_stride=2)
    idx = np.arange(27).reshape(1, 3, 3, 3)
    assert g[0].tolist() == [idx[0, c, 0, s] for s in (0, 1) for c in range(3)]


def _small_workload(rng) -> Workload:
    return Workload("tiny", [_random_layer(rng, k) for k in KINDS], {"origin": "test"})


@pytest.mark.parametrize("n", [1, 2, 3])
def test_decomposed_workload_runs_losslessly_on_swis(n):
    arch = _arch(tiles=2, rows=3, columns=2, lanes=8, group_size=4, shared_terms=n)
    wl = _small_workload(np.random.default_rng(n))
    res = swis(wl, shared_terms=n, group_size=4)
    new, report = res.workload, res.report
    assert new.meta["origin"] == "test" and new.meta["pruning"][-1]["shared_terms"] == n
    assert list(report["layer"]) == [layer.name for layer in wl.layers]
    for old, layer in zip(wl.layers, new.layers, strict=True):
        assert layer.weights.shape == old.weights.shape
        np.testing.assert_array_equal(effective_weights(arch, layer), layer.weights)  # lossless
        cycles = simulate_layer(arch, layer)["cycles"]
        # the cap of N positions never binds, and every group-step costs at most N cycles
        assert simulate_layer(arch.replace(shared_terms=16), layer)["cycles"] == cycles
        assert cycles <= n * simulate_layer(arch.replace(shared_terms=1), layer)["cycles"]
        ref = simulate_layer_reference(arch, layer)
        assert ref.cycles == cycles
        np.testing.assert_array_equal(ref.output, layer_output(layer))
    row = report.iloc[0]
    assert row["mse_swis_lsb2"] <= row["mse_shared_msb_lsb2"] and row["positions_per_group_swis"] <= n


def test_space_to_depth_grouping_must_match_the_simulator():
    rng = np.random.default_rng(5)
    wl = Workload("first", [_random_layer(rng, "first")])
    arch = _arch(tiles=1, rows=2, columns=2, lanes=8, group_size=8, shared_terms=2)
    matched = swis(wl, shared_terms=2, group_size=8).workload
    np.testing.assert_array_equal(effective_weights(arch, matched.layers[0]), matched.layers[0].weights)
    plain = swis(wl, shared_terms=2, group_size=8, first_layer_space_to_depth=False).workload
    off = arch.replace(first_layer_space_to_depth=False)
    np.testing.assert_array_equal(effective_weights(off, plain.layers[0]), plain.layers[0].weights)


def test_invalid_inputs():
    w = np.array([[1, -2, 3]])
    with pytest.raises(ValueError, match="method"):
        decompose(w, shared_terms=2, group_size=2, method="round")
    with pytest.raises(ValueError, match="shared_terms"):
        decompose(w, shared_terms=0, group_size=2)
    with pytest.raises(ValueError, match="do not fit"):
        decompose(w, shared_terms=2, group_size=2, weight_bits=2)
    with pytest.raises(ValueError, match="integers"):
        decompose(w.astype(float), shared_terms=2, group_size=2)
    with pytest.raises(ValueError, match="shape"):
        decompose(np.ones((2, 2, 2), int), shared_terms=2, group_size=2)


def test_pruning_does_not_import_the_simulator():
    for path in (REPO / "pruning").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "simulator" for n in names), path


# ------------------------------------------------------------------------------------------- real-ish tensors
def quantized_laplace(shape=(64, 64, 3, 3), seed=2021) -> np.ndarray:
    """A deterministic int8 tensor: Laplace samples quantized symmetrically per tensor (scale = max|x| / 127)."""
    x = np.random.default_rng(seed).laplace(0.0, 1.0, shape)
    return np.round(x / (np.abs(x).max() / 127)).astype(np.int32)


def quantize_int8(x: np.ndarray) -> np.ndarray:
    return np.round(x / (np.abs(x).max() / 127)).astype(np.int32)


def read_legacy_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The float tensors of a legacy (pre-zip) ``torch.save`` checkpoint, without torch: a restricted
    unpickler that allows only OrderedDict, tensor rebuilding and storage types."""
    dtypes = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64}
    storages: dict[str, list] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
                return lambda storage, offset, size, stride, *_: ("tensor", storage, offset, tuple(size), tuple(stride))
            if module == "torch" and name in dtypes:
                return dtypes[name]
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed")

        def persistent_load(self, pid):
            _, dtype, key, _location, _size, *_ = pid
            storages.setdefault(key, [dtype, None])
            return key

    with open(path, "rb") as f:
        def load():
            return Unpickler(f, encoding="latin1").load()

        load(), load(), load()  # magic number, protocol version, system info
        obj = load()
        for key in load():
            (count,) = struct.unpack("<q", f.read(8))
            dt = np.dtype(storages[key][0])
            storages[key][1] = np.frombuffer(f.read(count * dt.itemsize), dtype=dt)
    out = {}
    for name, t in obj["state_dict"].items():
        _, key, offset, size, stride = t
        data = storages[key][1]
        out[name.removeprefix("module.")] = np.lib.stride_tricks.as_strided(
            data[offset:], size, [s * data.itemsize for s in stride]).copy()
    return out


def _errors(w: np.ndarray, n: int, group: int = 16) -> dict[str, float]:
    return {m: decompose(w, shared_terms=n, group_size=group, method=m, weight_bits=8).mse for m in DECOMPOSITIONS}


@pytest.mark.parametrize("n", [2, 3, 4])
def test_quantized_laplace_tensor(n):
    w = quantized_laplace()
    err = _errors(w, n)
    assert err["swis"] < err["shared_msb"] < err["fixed"]
    assert err["truncate"] < err["swis"]  # per-weight top-N bits: not a shared-position scheme


def test_real_resnet20_tensor():
    state = read_legacy_torch_state_dict(shared_path("workloads", "cifar10-resnet-akamaster", "resnet20-12fca82f.th"))
    assert state["layer3.2.conv2.weight"].shape == (64, 64, 3, 3) and state["linear.weight"].shape == (10, 64)
    w = quantize_int8(state["layer3.2.conv2.weight"])
    for n in (2, 3, 4):
        err = _errors(w, n)
        assert err["swis"] < err["shared_msb"] < err["fixed"]
