"""The pruning package's contract and its integer methods, on random tensors (pruning/)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pruning
from pruning import METHODS, PruningError, bit_balance, bit_budget, magnitude, n_of_g, prune
from simulator import effective_weights
from workloads import Layer, Workload, layer_output


def _net(seed: int = 0, bits: int = 8) -> Workload:
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)

    def w(shape):
        return np.clip(np.round(rng.laplace(0, hi / 6, shape)), lo + 1, hi - 1).astype(np.int32)  # symmetric

    return Workload("net", [
        Layer.conv("first", rng.integers(0, 256, (3, 9, 9)), w((8, 3, 3, 3)), stride=2, padding=1, act_bits=8,
                   weight_bits=bits),
        Layer.conv("conv", rng.integers(0, 256, (20, 5, 5)), w((12, 20, 3, 3)), padding=1, act_bits=8,
                   weight_bits=bits),
        Layer.conv("dw", rng.integers(0, 256, (12, 5, 5)), w((12, 1, 3, 3)), padding=1, groups=12, act_bits=8,
                   weight_bits=bits),
        Layer.fc("fc", rng.integers(0, 256, 37), w((10, 37)), act_bits=8, weight_bits=bits),
    ], {"builtin": "resnet8-cifar10-int8", "origin": "test"})


CASES = [("magnitude", {"sparsity": 0.6}), ("magnitude", {"sparsity": 0.3, "scope": "global"}),
         ("n_of_g", {"keep": 4, "group": 16}), ("bit_budget", {"max_terms": 2}),
         ("bit_budget", {"max_terms": 1, "encoding": "csd"}), ("bit_balance", {"target": 0.85}),
         ("swis", {"shared_terms": 2, "group_size": 8})]


@pytest.mark.parametrize(("method", "params"), CASES)
def test_the_contract(method, params):
    wl = _net()
    res = prune(wl, method, **params)
    assert isinstance(res, pruning.PruneResult) and res.method == method
    out = res.workload
    assert [layer.name for layer in out] == [layer.name for layer in wl]
    assert out.meta["builtin"] == "resnet8-cifar10-int8" and out.meta["origin"] == "test"
    assert out.meta["pruning"][-1]["method"] == method
    for old, new in zip(wl, out, strict=True):
        assert new.weights.shape == old.weights.shape and new.weights.dtype == np.int32
        np.testing.assert_array_equal(new.activations, old.activations)
        assert new.weight_bits == old.weight_bits and -128 <= new.weights.min() and new.weights.max() <= 127
    rep = res.report
    assert list(rep["layer"]) == [layer.name for layer in wl]
    for col in ("weights", "nonzero", "density", "bit_sparsity", "mean_terms", "rel_error"):
        assert col in rep
    # the report's figures, recomputed from the definitions
    for new, row in zip(out, rep.to_dict("records"), strict=True):
        ones = sum(bin(abs(int(v))).count("1") for v in new.weights.ravel())
        assert row["nonzero"] == np.count_nonzero(new.weights)
        assert row["bit_sparsity"] == pytest.approx(1 - ones / (new.weights.size * 7))
        assert row["mean_terms"] == pytest.approx(ones / new.weights.size)
    again = prune(wl, method, **params)  # deterministic
    for a, b in zip(again.workload, out, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


def test_layers_restricts_a_method_and_unchanged_layers_keep_their_outputs():
    wl = _net()
    res = magnitude(wl, sparsity=0.9, layers=["conv"])
    assert list(res.report["pruned"]) == [False, True, False, False]
    for name in ("first", "dw", "fc"):
        np.testing.assert_array_equal(layer_output(res.workload[name]), layer_output(wl[name]))
    assert np.count_nonzero(res.workload["conv"].weights) == round(0.1 * wl["conv"].weights.size)


@given(st.integers(0, 10**6), st.floats(0, 1), st.sampled_from(["layer", "global"]))
def test_magnitude_zeroes_exactly_the_smallest(seed, sparsity, scope):
    wl = _net(seed)
    res = magnitude(wl, sparsity=sparsity, scope=scope)
    olds = np.concatenate([np.abs(layer.weights.ravel()) for layer in wl])
    news = np.concatenate([layer.weights.ravel() for layer in res.workload])
    zero = news == 0
    assert zero.sum() == max(round(sparsity * olds.size), int((olds == 0).sum())) if scope == "global" else True
    if scope == "global" and zero.any() and (~zero).any():
        assert olds[zero].max() <= olds[~zero].min()  # no unit scale recorded: integer magnitudes compare
    kept = ~zero
    np.testing.assert_array_equal(news[kept], np.concatenate([layer.weights.ravel() for layer in wl])[kept])


@given(st.integers(0, 10**6), st.sampled_from([(1, 4), (2, 4), (4, 16), (8, 16), (3, 8)]))
def test_n_of_g_keeps_the_n_largest_of_every_group(seed, kg):
    keep, group = kg
    layer = Layer.conv("c", np.ones((21, 4, 4), np.int32), np.random.default_rng(seed).integers(-9, 10, (5, 21, 2, 2)),
                       act_bits=2, weight_bits=8)
    out = n_of_g(Workload("w", [layer]), keep=keep, group=group).workload["c"].weights
    # groups written out here: consecutive channels of one filter at one tap, the last one short
    for k, r, s in itertools.product(range(5), range(2), range(2)):
        for c0 in range(0, 21, group):
            old = layer.weights[k, c0:c0 + group, r, s]
            new = out[k, c0:c0 + group, r, s]
            order = sorted(range(len(old)), key=lambda i: (-abs(int(old[i])), i))  # largest first, lower channel
            want = np.zeros_like(old)
            chosen = [i for i in order if old[i] != 0][:keep]
            want[chosen] = old[chosen]
            np.testing.assert_array_equal(new, want)
            assert np.count_nonzero(new) <= keep


def test_n_of_g_groups_the_first_layer_as_the_simulator_bricks_it():
    wl = Workload("w", [_net()["first"]])
    on = n_of_g(wl, keep=1, group=12).workload["first"].weights
    off = n_of_g(wl, keep=1, group=12, first_layer_space_to_depth=False).workload["first"].weights
    # space-to-depth (stride 2): a group of 12 channels holds the 3 channels of 4 kernel taps
    assert np.count_nonzero(on) == 8 * 4  # 8 filters x 2 x 2 rewritten taps
    assert np.count_nonzero(off) == 8 * 9  # 8 filters x 9 taps, one group of 3 channels each
    assert not np.array_equal(on, off)


def _popcount(v: int) -> int:
    return bin(abs(v)).count("1")


@pytest.mark.parametrize("terms", [1, 2])
def test_bit_budget_value_sets_are_the_popcount_enumerations(terms):
    values = np.arange(-128, 128, dtype=np.int32)
    layer = Layer.fc("f", np.ones(256, np.int32), values.reshape(1, -1), act_bits=1, weight_bits=8)
    out = bit_budget(Workload("w", [layer]), max_terms=terms).workload["f"].weights.ravel()
    allowed = sorted({m for m in range(128) if _popcount(m) <= terms})
    assert sorted(set(np.abs(out).tolist())) == allowed
    for v, o in zip(values.tolist(), out.tolist(), strict=True):
        near = min(allowed, key=lambda a: (abs(abs(v) - a), a))  # nearest, ties to the smaller magnitude
        assert o == (near if v >= 0 else -near), v


@given(st.integers(0, 10**6), st.integers(1, 4), st.sampled_from(["csd", "booth"]))
def test_bit_budget_other_encodings_stay_in_range_and_within_budget(seed, terms, encoding):
    from workloads.bits import term_code, terms_table

    res = bit_budget(_net(seed, bits=10), max_terms=terms, encoding=encoding)
    for layer in res.workload:
        assert np.abs(layer.weights).max() <= 511
        assert terms_table(term_code(encoding))[np.abs(layer.weights)].max() <= terms


@given(st.integers(0, 10**6), st.sampled_from([0.5, 0.7, 0.85, 0.95]), st.sampled_from([4, 8, 16]))
def test_bit_balance_reaches_its_target_by_capping_whole_groups(seed, target, lanes):
    wl = _net(seed)
    res = bit_balance(wl, target=target, lanes=lanes, layers=["conv", "fc"])
    for name in ("conv", "fc"):
        row = res.report.set_index("layer").loc[name]
        assert row["bit_sparsity"] >= target - 1e-12
        old, new = wl[name].weights, res.workload[name].weights
        assert np.all(np.sign(new) * np.sign(old) >= 0)  # signs kept (or zero)
        assert np.all(np.abs(new) <= 127)
        pop = np.vectorize(_popcount)
        assert np.all(pop(new) <= np.maximum(pop(old), 1))  # never more bits than the weight had
        assert row["group_cycles_after"] <= row["group_cycles_before"]


def test_bit_balance_leaves_a_layer_already_sparse_enough():
    wl = _net()
    res = bit_balance(wl, target=0.0)
    for a, b in zip(wl, res.workload, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.parametrize(("call", "message"), [
    (lambda wl: n_of_g(wl, keep=17, group=16), r"n_of_g: keep \(17\) must not exceed group \(16\)"),
    (lambda wl: magnitude(wl, sparsity=-0.1), r"magnitude: sparsity \(-0.1\) must be in \[0, 1\]"),
    (lambda wl: bit_budget(wl, max_terms=0), r"bit_budget: max_terms \(0\) must be >= 1"),
    (lambda wl: magnitude(wl, sparsity=0.5, layers=["nope"]), r"magnitude: workload 'net' has no layer 'nope'"),
    (lambda wl: magnitude(wl, sparsity=0.5, scope="row"), r"scope \('row'\) must be one of: layer, global"),
    (lambda wl: prune(wl, "magnitude"), r"magnitude: parameter sparsity is required"),
    (lambda wl: prune(wl, "magnitude", sparsity=0.5, spar=1), r"magnitude: unknown parameter\(s\) spar"),
    (lambda wl: prune(wl, "lottery"), r"unknown pruning method 'lottery'"),
])
def test_bad_parameters_are_one_line_errors(call, message):
    with pytest.raises(PruningError, match=message) as err:
        call(_net())
    assert "\n" not in str(err.value)


def test_fp32_layers_are_refused_by_name():
    rng = np.random.default_rng(0)
    wl = Workload("w", [Layer.fc("f32", rng.integers(0, 9, 8), rng.standard_normal((3, 8)).astype(np.float32),
                                 weight_format="fp32")])
    for name, params in CASES:
        with pytest.raises(PruningError, match=r"layer 'f32' has fp32 weights"):
            prune(wl, name, **params)


def test_every_method_lists_its_parameters():
    for name, method in METHODS.items():
        assert method.name == name and method.summary
        for p in method.params:
            assert p.help and p.name


# ----------------------------------------------------------------------------- pareto
def test_knapsack_is_exact_on_small_instances():
    from pruning.pareto import _knapsack

    rng = np.random.default_rng(0)
    for _ in range(30):
        cost = rng.integers(1, 50, (4, 3)).astype(float)
        loss = np.round(rng.random((4, 3)) * 0.1, 3)
        loss[:, 0] = 0
        budget = float(rng.random() * 0.2)
        picks = _knapsack(cost, loss, budget, resolution=10_000)
        best = min((sum(cost[i, o] for i, o in enumerate(p)), p) for p in itertools.product(range(3), repeat=4)
                   if sum(loss[i, o] for i, o in enumerate(p)) <= budget + 1e-9)
        assert sum(cost[i, o] for i, o in enumerate(picks)) == best[0]
        assert sum(loss[i, o] for i, o in enumerate(picks)) <= budget + 1e-3


def test_pareto_frontier_on_stand_in_objectives():
    wl = _net()
    names = [layer.name for layer in wl]
    ref = {layer.name: layer.weights.astype(float) for layer in wl}
    sens = dict(zip(names, [0.5, 0.1, 0.05, 0.3], strict=True))  # how much each layer's error costs

    def layer_cycles(layer):  # a stand-in for the simulator: the layer's one bits
        return float(np.bitwise_count(np.abs(layer.weights)).sum())

    def accuracy(w):  # a stand-in for evaluate: 1 - weighted relative errors
        return 1 - sum(sens[x.name] * np.linalg.norm(x.weights - ref[x.name]) / np.linalg.norm(ref[x.name])
                       for x in w)

    res = pruning.pareto(wl, layer_cycles=layer_cycles, accuracy=accuracy, method="bit_balance",
                         rates=(0.7, 0.85, 0.95), budgets=8, max_drop=0.05)
    f = res.frontier
    assert len(f) == len(res.points) >= 3
    base = f["baseline_accuracy"].iloc[0]
    for p, row in zip(res.points, f.itertuples(), strict=True):  # the table's figures are measured on the points
        assert row.cycles == pytest.approx(sum(layer_cycles(x) for x in p.workload))
        assert row.accuracy == pytest.approx(accuracy(p.workload))
    front = f[f["on_frontier"]]
    for r in front.itertuples():  # nothing measured dominates a frontier point
        assert not ((f["cycles"] < r.cycles) & (f["accuracy"] >= r.accuracy)).any()
    ok = f[f["accuracy"] >= base - 0.05]
    chosen = sum(layer_cycles(x) for x in res.workload)
    assert chosen == pytest.approx(ok["cycles"].min())
    assert isinstance(res, pruning.PruneResult) and res.method == "pareto"
    # nothing measured within max_drop (each layer alone helps, so every budget prunes them all, and together they
    # hurt): the unpruned network, not the least bad pruned point (the points stay in the frontier table)
    def non_additive(w):
        pruned = sum((x.weights != ref[x.name]).any() for x in w)
        return 1.0 + (0.01 if pruned == 1 else -0.5 if pruned > 1 else 0.0)

    strict = pruning.pareto(wl, layer_cycles=layer_cycles, accuracy=non_additive, method="bit_balance",
                            rates=(0.95,), budgets=3, max_drop=0.1)
    assert not strict.frontier.empty and (strict.frontier["accuracy"] < 1.0 - 0.1).all()
    for a, b in zip(strict.workload, wl, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
    assert strict.params["rates"] == {name: None for name in names}


@pytest.mark.parametrize(("method", "params"), CASES)
def test_pruned_workloads_run_on_every_preset_through_both_engines(method, params):
    from simulator import load_arch, preset_names, simulate_layer
    from simulator.reference import simulate_layer_reference

    rng = np.random.default_rng(4)
    small = Workload("small", [
        Layer.conv("c", rng.integers(0, 64, (16, 4, 4)), rng.integers(-60, 61, (6, 16, 3, 3)), padding=1,
                   act_bits=6, weight_bits=8),
        Layer.fc("f", rng.integers(0, 64, 24), rng.integers(-60, 61, (5, 24)), act_bits=6, weight_bits=8)])
    pruned = prune(small, method, **params).workload
    for preset in preset_names():
        arch = load_arch(preset, tiles=2, rows=3, columns=2, lanes=8)
        for layer in pruned:
            ref = simulate_layer_reference(arch, layer)
            assert simulate_layer(arch, layer)["cycles"] == ref.cycles, (preset, layer.name)
            np.testing.assert_array_equal(ref.output, layer_output(layer, effective_weights(arch, layer)))
