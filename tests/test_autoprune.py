"""AUTO-PRUNE: crossbar-row pruning (pruning/crossbar_rows.py) and the RL search over per-layer ratios
(pruning/autoprune.py), on hand-made layers and a toy problem whose optimum is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pruning
from pruning import PruneResult, PruningError, autoprune, crossbar_rows, prune, uniform_search
from pruning.autoprune import LAYER_FUNCTIONS, Agent, episode_reward
from pruning.crossbar_rows import prune_rows
from workloads import Layer, Workload, synthetic


def _fc(weights, scale=None) -> Workload:
    w = np.asarray(weights, dtype=np.int32)
    meta = {} if scale is None else {"weight_scale": list(scale)}
    return Workload("w", [Layer.fc("f", np.ones(w.shape[1], np.int32), w, act_bits=4, weight_bits=8, meta=meta)],
                    {"builtin": "x"})


W = [[1, 5, 0, 2],
     [1, -5, 3, 2],
     [4, 0, 1, 1]]


# ----------------------------------------------------------------------------- crossbar_rows by hand
def test_crossbar_rows_zeroes_the_smallest_rows_of_every_block_by_hand():
    # blocks of 2 outputs: {0, 1} and {2}; squared row norms: block {0, 1}: 2, 50, 9, 8 -> rows 0 and 3 go;
    # block {2}: 16, 0, 1, 1 -> rows 1 and 2 go (rows 2 and 3 tie: the lower index goes)
    res = crossbar_rows(_fc(W), ratio=0.5, block_outputs=2)
    np.testing.assert_array_equal(res.workload["f"].weights, [[0, 5, 0, 0], [0, -5, 3, 0], [4, 0, 0, 1]])
    row = res.report.iloc[0]
    assert row["rows_freed"] == 4 and row["rows"] == 8 and row["nonzero"] == 5
    # one block of all 3 outputs (the default 128): squared norms 18, 50, 10, 9 -> rows 3 and 2 go
    res = crossbar_rows(_fc(W), ratio=0.5)
    np.testing.assert_array_equal(res.workload["f"].weights, [[1, 5, 0, 0], [1, -5, 0, 0], [4, 0, 0, 0]])
    assert res.report.iloc[0]["rows_freed"] == 2 and res.report.iloc[0]["rows"] == 4
    # round(0.3 x 4) = 1 row: the smallest, row 3
    out = crossbar_rows(_fc(W), ratio=0.3).workload["f"].weights
    np.testing.assert_array_equal(out[:, 3], 0)
    assert np.count_nonzero(out[:, :3]) == np.count_nonzero(np.asarray(W)[:, :3])


def test_crossbar_rows_weighs_rows_with_the_recorded_scales():
    # block {0, 1} with output scales 10 and 1: squared norms 101, 2525, 9, 404 -> rows 2 and 0 go
    out = crossbar_rows(_fc(W, scale=[10, 1, 1]), ratio=0.5, block_outputs=2).workload["f"].weights
    np.testing.assert_array_equal(out[:2], [[0, 5, 0, 2], [0, -5, 0, 2]])


def test_crossbar_rows_unrolls_each_group_of_a_conv_over_c_r_s():
    # 2 groups of 2 channels, one output each, a 1x2 kernel: the rows of a group are (c0 s0, c0 s1, c1 s0, c1 s1)
    w = np.array([[[[3, -1]], [[2, 7]]],  # group 0: rows 3, -1, 2, 7 -> the two smallest |w|: -1 and 2
                  [[[1, 1]], [[9, 1]]]],  # group 1: rows 1, 1, 9, 1 -> ties: the lower two rows
                 dtype=np.int32)
    layer = Layer.conv("c", np.ones((4, 2, 3), np.int32), w, groups=2, act_bits=4, weight_bits=8)
    res = crossbar_rows(Workload("w", [layer]), ratio=0.5)
    np.testing.assert_array_equal(res.workload["c"].weights, [[[[3, 0]], [[0, 7]]], [[[0, 0]], [[9, 1]]]])
    assert res.report.iloc[0]["rows_freed"] == 4 and res.report.iloc[0]["rows"] == 8


def test_crossbar_rows_follows_the_contract():
    wl = synthetic.build("resnet20", value_model="laplace", weight_bits=8, act_bits=8, max_layers=3)
    res = prune(wl, "crossbar_rows", ratio=0.4, layers=["conv1", "layer1.0.conv2"])
    assert list(res.report["pruned"]) == [True, False, True]
    np.testing.assert_array_equal(res.workload["layer1.0.conv1"].weights, wl["layer1.0.conv1"].weights)
    for name in ("conv1", "layer1.0.conv2"):
        old, new = wl[name].weights, res.workload[name].weights
        kept = new != 0
        np.testing.assert_array_equal(new[kept], old[kept])  # only zeroes
        rows = old[0].size
        zero_rows = (~new.reshape(len(new), -1).any(axis=0)).sum()  # one block: whole rows go
        assert zero_rows == round(0.4 * rows) == res.report.set_index("layer").loc[name, "rows_freed"]
    assert res.workload.meta["pruning"][-1] == {"method": "crossbar_rows", "ratio": 0.4, "block_outputs": 128}
    again = prune(wl, "crossbar_rows", ratio=0.4, layers=["conv1", "layer1.0.conv2"])
    for a, b in zip(again.workload, res.workload, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.parametrize(("method", "params"), [("crossbar_rows", {"ratio": 0.35, "block_outputs": 5}),
                                                ("magnitude", {"sparsity": 0.35})])
def test_the_search_prunes_a_layer_as_the_method_does(method, params):
    wl = _toy(3)
    bound = pruning.METHODS[method].bind(params)
    for layer in wl:
        np.testing.assert_array_equal(LAYER_FUNCTIONS[method](layer, bound),
                                      prune(wl, method, **params).workload[layer.name].weights)


def test_pareto_searches_crossbar_rows():
    wl = _toy(4)
    res = pruning.pareto(wl, layer_cycles=lambda layer: float(np.count_nonzero(layer.weights)),
                         accuracy=_accuracy(wl), method="crossbar_rows", rates=(0.2, 0.5), budgets=4, max_drop=0.02)
    assert res.params["method"] == "crossbar_rows" and len(res.frontier) >= 2
    assert _accuracy(wl)(res.workload) >= _accuracy(wl)(wl) - 0.02


# ----------------------------------------------------------------------------- the search on a toy problem
SENS = np.random.default_rng(1).uniform(0.02, 0.3, 20)


def _toy(n_layers: int) -> Workload:
    return synthetic.build("resnet20", value_model="laplace", weight_bits=8, act_bits=8, max_layers=n_layers)


def _cost(w: Workload) -> float:
    return float(sum(np.count_nonzero(layer.weights) for layer in w))


def _accuracy(reference: Workload):
    """A smooth known accuracy: 1 - sum_l s_l (1 - density_l)^2, each layer with its own sensitivity s_l."""
    sens = {layer.name: s for layer, s in zip(reference, SENS, strict=False)}

    def accuracy(w: Workload) -> float:
        return 1 - sum(sens[x.name] * (1 - np.count_nonzero(x.weights) / x.weights.size) ** 2 for x in w)

    return accuracy


def _optimum(wl: Workload, max_drop: float, max_ratio: float) -> float:
    """The best reward of the toy, continuous ratios: minimise sum n_l (1 - p_l) s.t. sum s_l p_l^2 <= max_drop
    (Lagrange: p_l = n_l / (2 lambda s_l), clipped)."""
    n = np.array([x.weights.size for x in wl], float)
    s = SENS[:len(n)]
    lo, hi = 1e-9, 1e9
    for _ in range(200):
        lam = np.sqrt(lo * hi)
        p = np.clip(n / (2 * lam * s), 0, max_ratio)
        lo, hi = (lam, hi) if (s * p**2).sum() > max_drop else (lo, lam)
    return -(1 - (n * p).sum() / n.sum())


def _random_search(wl: Workload, episodes: int, max_drop: float, max_ratio: float, seed: int) -> float:
    """The best reward of ``episodes`` uniformly random ratio vectors in [0, max_ratio]."""
    rng = np.random.default_rng(seed)
    acc, base, floor = _accuracy(wl), _cost(wl), _accuracy(wl)(wl) - max_drop
    best = -1.0
    for _ in range(episodes):
        ratios = rng.uniform(0, max_ratio, len(wl.layers))
        pruned = Workload("p", [x.with_values(weights=prune_rows(x, x.weights, float(r))[0])
                                for x, r in zip(wl, ratios, strict=True)])
        if acc(pruned) >= floor:
            best = max(best, -_cost(pruned) / base)
    return best


def test_the_reward():
    assert episode_reward(0.4, 0.90, 0.91, 0.01) == pytest.approx(-0.4)  # feasible, on the floor
    assert episode_reward(0.4, 0.89, 0.91, 0.01) == pytest.approx(-1 - np.log(2))  # violation = max_drop
    assert episode_reward(0.1, 0.10, 0.91, 0.01) == pytest.approx(-1 - np.log1p(80))
    assert episode_reward(0.4, 0.5, 0.5, 0.0) == pytest.approx(-0.4)
    assert episode_reward(0.4, 0.49, 0.5, 0.0) == pytest.approx(-1 - np.log(2))  # max_drop 0: violations / 0.01


def test_centered_ranks_share_ties():
    from pruning.autoprune import centered_ranks

    np.testing.assert_allclose(centered_ranks(np.array([-1, -1, -0.5, -2])), [0, 0, 0.5, -0.5])
    np.testing.assert_allclose(centered_ranks(np.array([-1.0] * 4)), 0)


def test_a_plateau_of_equal_rewards_moves_nothing():
    """Every episode feasible at the same cost (a staircase cost between its steps): the policy stays as it was, as
    the same agent that never learns."""
    wl = _toy(3)
    runs = [autoprune(wl, cost=lambda w: 1.0, accuracy=lambda w: 0.5, episodes=16, seed=2, agent=Agent(lr=lr))
            for lr in (0.03, 1e-12)]
    assert (runs[0].history["reward"] == -1).all()
    pd_equal = runs[0].history.equals(runs[1].history)
    assert pd_equal


def test_the_agent_is_deterministic_for_a_seed():
    wl = _toy(5)
    runs = [autoprune(wl, cost=_cost, accuracy=_accuracy(wl), episodes=12, max_drop=0.03, seed=s) for s in (3, 3, 4)]
    pd_equal = runs[0].history.equals(runs[1].history)
    assert pd_equal and not runs[0].history.equals(runs[2].history)
    for a, b in zip(runs[0].workload, runs[1].workload, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


def test_the_search_returns_its_best_feasible_episode():
    wl, max_drop, episodes = _toy(6), 0.02, 40
    calls = []
    res = autoprune(wl, cost=_cost, accuracy=_accuracy(wl), episodes=episodes, max_drop=max_drop, seed=0,
                    progress=lambda *a: calls.append(a))
    h = res.history
    assert len(h) == episodes + 1 and h["episode"].tolist() == list(range(episodes + 1))
    assert h.iloc[0]["cost_ratio"] == 1 and h.iloc[0]["reward"] == -1 and h["feasible"].iloc[0]
    assert [c[1] for c in calls] == list(range(1, episodes + 1)) and calls[-1][2] == episodes
    best = h[h["feasible"]].sort_values(["reward", "episode"], ascending=[False, True]).iloc[0]
    assert best["episode"] > 0 and best["reward"] > -1
    # the figures are measured on the returned workload
    assert _cost(res.workload) == pytest.approx(best["cost"]) and res.baseline_cost == _cost(wl)
    assert _accuracy(wl)(res.workload) == pytest.approx(best["accuracy"])
    assert best["accuracy"] >= res.baseline_accuracy - max_drop
    assert res.params["ratios"] == {x.name: best[f"ratio:{x.name}"] for x in wl}
    assert list(res.report["ratio"]) == [best[f"ratio:{x.name}"] for x in wl]
    assert res.workload.meta["pruning"][-1]["method"] == "autoprune" and res.method == "autoprune"
    base = res.baseline_accuracy
    assert base == _accuracy(wl)(wl) and h.iloc[0]["accuracy"] == base
    assert h["reward"].tolist() == [episode_reward(c, a, base, max_drop)
                                    for c, a in zip(h["cost_ratio"], h["accuracy"], strict=True)]


def test_the_agent_learns_on_a_toy_problem():
    """10 layers of ResNet-20's shapes, cost = non-zero weights, accuracy = a known smooth function of the layer
    densities, within 2 points of the unpruned 1.0; 120 episodes, three seeds."""
    wl, max_drop, max_ratio, episodes, k = _toy(10), 0.02, 0.9, 120, 24
    first, last, best, frozen, rand = [], [], [], [], []
    for seed in range(3):
        h = autoprune(wl, cost=_cost, accuracy=_accuracy(wl), episodes=episodes, max_drop=max_drop,
                      max_ratio=max_ratio, seed=seed).history
        r = h["reward"].to_numpy()[1:]
        first.append(r[:k].max())
        last.append(r[-k:].max())
        best.append(h.query("feasible")["reward"].max())
        # the same agent without learning (its initial policy, the same noise)
        frozen.append(autoprune(wl, cost=_cost, accuracy=_accuracy(wl), episodes=episodes, max_drop=max_drop,
                                max_ratio=max_ratio, seed=seed, agent=Agent(lr=1e-9)).history.query("feasible")[
            "reward"].max())
        rand.append(_random_search(wl, episodes, max_drop, max_ratio, seed))
    # it learns: the best reward of the last fifth beats the first fifth's
    assert np.mean(last) > np.mean(first) + 0.02
    # ... and beats random search, the same agent without learning and the best uniform ratio, at equal budget
    assert np.mean(best) > np.mean(rand) + 0.05
    assert np.mean(best) > np.mean(frozen) + 0.02
    uni = uniform_search(wl, cost=_cost, accuracy=_accuracy(wl), ratios=np.linspace(0, max_ratio, episodes)[1:],
                         max_drop=max_drop)
    assert np.mean(best) > uni.history.query("feasible")["reward"].max() + 0.02
    assert max(best) <= _optimum(wl, max_drop, max_ratio) + 0.01  # a check of the toy itself


def test_grid_rounds_the_actions_down():
    wl = _toy(4)
    res = autoprune(wl, cost=_cost, accuracy=_accuracy(wl), episodes=10, max_drop=0.05, grid=[0.25, 0.5], seed=1)
    ratios = res.history[[c for c in res.history if c.startswith("ratio:")]].to_numpy()
    assert set(np.unique(ratios)) <= {0.0, 0.25, 0.5}


def test_uniform_search_takes_the_highest_feasible_ratio():
    wl = _toy(3)
    acc = _accuracy(wl)
    res = uniform_search(wl, cost=_cost, accuracy=acc, ratios=[0.1, 0.2, 0.3, 0.4, 0.5], max_drop=0.05)
    h = res.history
    assert list(h["episode"]) == list(range(6))
    # 1 - sum s p^2 >= 0.95 with the toy's sensitivities
    feasible = [p for p in (0.1, 0.2, 0.3, 0.4, 0.5) if SENS[:3].sum() * p**2 <= 0.05 + 1e-3]
    assert list(h["feasible"])[1:] == [p in feasible for p in (0.1, 0.2, 0.3, 0.4, 0.5)]
    assert res.params["ratios"] == {x.name: max(feasible) for x in wl}
    assert list(res.report["ratio"]) == [max(feasible)] * 3


@pytest.mark.parametrize(("call", "message"), [
    (lambda wl: crossbar_rows(wl, ratio=1.5), r"crossbar_rows: ratio \(1.5\) must be in \[0, 1\]"),
    (lambda wl: crossbar_rows(wl, ratio=0.5, block_outputs=0), r"block_outputs \(0\) must be >= 1"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), method="bit_budget"),
     r"autoprune: method \('bit_budget'\) must be one of: .*crossbar_rows"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), episodes=0), r"episodes \(0\) must be a positive"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), max_ratio=0), r"max_ratio \(0\) must be in"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), max_drop=-0.1), r"max_drop \(-0.1\) must be"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), params={"ratio": 0.2}),
     r"params must not set 'ratio', the rate of crossbar_rows"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), params={"block_outputs": -2}),
     r"crossbar_rows: block_outputs \(-2\) must be >= 1"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), params={"colour": 1}),
     r"crossbar_rows: unknown parameter\(s\) colour"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), agent=Agent(batch=3)),
     r"agent batch \(3\) must be an even integer"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), grid=[0.5, 0.95]), r"grid .* must be a list"),
    (lambda wl: autoprune(wl, cost=lambda w: 0.0, accuracy=_accuracy(wl)), r"cost of the unpruned workload"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=None), r"cost and accuracy must be callables"),
    (lambda wl: autoprune(wl, cost=_cost, accuracy=_accuracy(wl), layers=["nope"]), r"has no layer 'nope'"),
    (lambda wl: uniform_search(wl, cost=_cost, accuracy=_accuracy(wl), ratios=[]), r"ratios \(\[\]\) must be"),
    (lambda wl: uniform_search(wl, cost=_cost, accuracy=_accuracy(wl), ratios=[0.2, 2]), r"ratios .* must be"),
])
def test_bad_requests_give_one_line_errors(call, message):
    with pytest.raises(PruningError, match=message) as err:
        call(_toy(2))
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- fine-tuning the searched points
def test_pareto_front_by_hand():
    from pruning.autoprune import pareto_front

    rows = [{"episode": 0, "cost": 10, "accuracy": 0.9}, {"episode": 1, "cost": 5, "accuracy": 0.7},
            {"episode": 2, "cost": 5, "accuracy": 0.8}, {"episode": 3, "cost": 6, "accuracy": 0.75},
            {"episode": 4, "cost": 3, "accuracy": 0.5}, {"episode": 5, "cost": 8, "accuracy": 0.8}]
    # 1 and 3 are beaten by 2 (cheaper or as cheap, more accurate); 5 by 2 (as accurate, cheaper)
    assert [r["episode"] for r in pareto_front(rows)] == [4, 2, 0]


TUNED = {"tuned": True}


def _tune(w: Workload) -> Workload:
    """A stand-in for fine-tuning: the weights unchanged, the workload marked (``_tuned_accuracy`` forgives)."""
    return Workload(w.name, list(w), {**w.meta, **TUNED})


def _tuned_accuracy(reference: Workload):
    """The toy accuracy, its loss divided by 5 on a fine-tuned workload (monotone in every layer's density)."""
    plain = _accuracy(reference)

    def accuracy(w: Workload) -> float:
        a = plain(w)
        return 1 - (1 - a) / 5 if w.meta.get("tuned") else a

    return accuracy


@pytest.mark.parametrize("search", ["autoprune", "uniform_search"])
def test_finetune_picks_the_cheapest_front_point_that_recovers(search):
    wl = _toy(5)
    acc = _tuned_accuracy(wl)
    kw = {"cost": _cost, "accuracy": acc, "max_drop": 0.2, "finetune": _tune, "finetune_runs": 6,
          "finetune_drop": 0.02}
    if search == "autoprune":
        res = autoprune(wl, episodes=24, seed=0, **kw)
    else:
        res = uniform_search(wl, ratios=np.linspace(0.05, 0.9, 18), **kw)
    from pruning.autoprune import pareto_front

    h = res.history
    front = [r for r in pareto_front(h[h["feasible"]].to_dict("records")) if r["cost"] < _cost(wl)]
    assert len(front) <= 2 ** 6 - 1  # the bisection resolves the whole front with 6 runs
    base_ft = acc(_tune(wl))
    assert res.finetuned_baseline_accuracy == pytest.approx(base_ft)
    # brute force: every front point fine-tuned; the cheapest within finetune_drop of the fine-tuned unpruned one
    ok = [r for r in front if acc(_tune(_rebuild(wl, r))) >= base_ft - 0.02]
    assert ok, "the toy should have a recoverable point"
    assert _cost(res.workload) == pytest.approx(ok[0]["cost"])
    assert res.workload.meta.get("tuned") and not res.before_finetune.meta.get("tuned")
    assert res.params["ratios"] == {x.name: ok[0][f"ratio:{x.name}"] for x in wl}
    t = res.finetuned
    assert t.iloc[0]["episode"] == 0 and len(t) <= 6 + 1
    assert (t["finetuned_accuracy"] >= base_ft - 0.02).tolist() == t["feasible"].tolist()
    # fine-tuning recovers more than the search allowed itself: the point is cheaper than the search's own pick
    plain = autoprune(wl, episodes=24, seed=0, cost=_cost, accuracy=acc, max_drop=0.02) if search == "autoprune" \
        else uniform_search(wl, ratios=np.linspace(0.05, 0.9, 18), cost=_cost, accuracy=acc, max_drop=0.02)
    assert _cost(res.workload) < _cost(plain.workload)


def _rebuild(wl: Workload, row: dict) -> Workload:
    return Workload(wl.name, [x.with_values(weights=prune_rows(x, x.weights, row[f"ratio:{x.name}"])[0])
                              for x in wl], wl.meta)


def test_finetune_runs_bound_the_fine_tunings():
    wl = _toy(4)
    calls = []

    def tune(w):
        calls.append(w)
        return _tune(w)

    res = autoprune(wl, cost=_cost, accuracy=_tuned_accuracy(wl), episodes=16, max_drop=0.3, seed=1, finetune=tune,
                    finetune_runs=2)
    assert len(calls) == len(res.finetuned) <= 3 and res.finetuned.iloc[0]["episode"] == 0
    # every fine-tuned point is one the search measured, fine-tuned from its pruned weights
    for w, ep in zip(calls, res.finetuned["episode"], strict=True):
        row = res.history.set_index("episode").loc[ep]
        assert _cost(w) == pytest.approx(row["cost"])


@pytest.mark.parametrize(("kw", "message"), [
    ({"finetune": _tune, "finetune_runs": 0}, r"autoprune: finetune_runs \(0\) must be a positive integer"),
    ({"finetune": _tune, "finetune_drop": 1.5}, r"autoprune: finetune_drop \(1.5\) must be a number in \[0, 1\)"),
    ({"finetune": 3}, r"autoprune: finetune \(3\) must be a callable"),
    ({"finetune": {"epochs": -1}}, r"retrain: epochs \(-1\) must be >= 0"),
    ({"finetune": {"colour": 1}}, r"autoprune: finetune has unknown training parameters: colour"),
    ({"finetune": {"epochs": 1}, "method": "magnitude"}, r"autoprune: finetune as a dict retrains crossbar_rows only"),
    ({"finetune": _tune, "finetune_folds": 0}, r"autoprune: finetune_folds \(0\) must be a positive integer"),
    ({"finetune": _tune, "finetune_folds": 2}, r"autoprune: finetune_folds \(2\) with a callable finetune needs "
                                               r"fold_accuracy"),
    ({"finetune": _tune, "fold_accuracy": 3}, r"autoprune: fold_accuracy \(3\) must be a callable"),
    ({"finetune_folds": 2}, r"autoprune: finetune_folds and fold_accuracy apply to fine-tuning; finetune is None"),
    ({"finetune": {"epochs": 1}, "finetune_folds": 2}, r"autoprune: finetune_folds \(2\) needs finetune's "
                                                       r"validation"),
    ({"finetune": {"epochs": 1}, "finetune_folds": 2, "fold_accuracy": lambda w, f: 1.0},
     r"autoprune: finetune_folds \(2\) needs finetune's validation"),
    ({"finetune": {"epochs": 1, "validation": 2000}, "finetune_folds": 3},
     r"autoprune: finetune_folds \(3\) x validation \(2000\) exceeds the 5000 train-half images"),
])
def test_bad_finetune_requests_give_one_line_errors(kw, message):
    wl = _toy(2)
    with pytest.raises(PruningError, match=message) as err:
        autoprune(wl, cost=_cost, accuracy=_accuracy(wl), episodes=2, **kw)
    assert "\n" not in str(err.value)


def test_finetune_against_the_unpruned_network_accepts_what_the_fine_tuned_one_refuses():
    """Fine-tuning that lifts every network above the unpruned one: against the fine-tuned unpruned network the
    floor is higher, so the chosen point is no cheaper than against the unpruned network itself."""
    wl = _toy(4)
    plain = _accuracy(wl)

    def acc(w: Workload) -> float:  # 0.9 unpruned, fine-tuning adds 5 points
        return 0.9 * plain(w) + (0.05 if w.meta.get("tuned") else 0.0)

    kw = {"cost": _cost, "accuracy": acc, "max_drop": 0.3, "finetune": _tune, "finetune_runs": 6,
          "finetune_drop": 0.005, "ratios": np.linspace(0.05, 0.9, 18)}
    strict = uniform_search(wl, finetune_against="finetuned", **kw)
    loose = uniform_search(wl, finetune_against="unpruned", **kw)
    assert strict.params["finetune_against"] == "finetuned" and loose.params["finetune_against"] == "unpruned"
    assert _cost(loose.workload) < _cost(strict.workload)
    assert acc(loose.workload) >= loose.baseline_accuracy - 0.005
    with pytest.raises(PruningError, match=r"uniform_search: finetune_against \('best'\) must be one of"):
        uniform_search(wl, finetune_against="best", **kw)


def test_k_fold_acceptance_averages_out_a_folds_bias():
    """Validation folds that misjudge the fine-tuned pruned points (fold 0 four points low, folds 1 and 2 two
    points high; the unpruned network read right): judged on fold 0 alone the search refuses points that recover
    to within finetune_drop; judged 3-fold (mean bias 0) it picks what the true accuracy picks (brute force), every
    point fine-tuned once per fold, and returns the fold-0 fine-tuning."""
    wl = _toy(5)
    true = _tuned_accuracy(wl)
    bias = (-0.04, 0.02, 0.02)

    def fold_accuracy(w: Workload, fold: int) -> float:
        return true(w) + (bias[fold] if _cost(w) < _cost(wl) else 0.0)

    folds_asked = []

    def tune(w: Workload, fold: int) -> Workload:
        folds_asked.append(fold)
        return Workload(w.name, list(w), {**w.meta, **TUNED, "fold": fold})

    kw = {"cost": _cost, "max_drop": 0.3, "finetune_runs": 6, "finetune_drop": 0.02, "finetune_against": "unpruned",
          "ratios": np.linspace(0.05, 0.9, 18)}
    kfold = uniform_search(wl, accuracy=true, finetune=tune, finetune_folds=3, fold_accuracy=fold_accuracy, **kw)
    fold0 = uniform_search(wl, accuracy=lambda w: fold_accuracy(w, 0), finetune=_tune, **kw)
    h = kfold.history
    ok = [r for _, r in h[h["feasible"]].iterrows() if true(_tune(_rebuild(wl, r))) >= true(wl) - 0.02]
    assert _cost(kfold.workload) == pytest.approx(min(r["cost"] for r in ok))
    assert _cost(fold0.workload) > _cost(kfold.workload)  # fold 0's bias refused the cheapest recovering point
    t = kfold.finetuned
    assert folds_asked == [0, 1, 2] * len(t) and kfold.workload.meta["fold"] == 0
    per_fold = t[[f"finetuned_accuracy_fold{f}" for f in range(3)]]
    np.testing.assert_allclose(t["finetuned_accuracy"], per_fold.mean(axis=1))
    assert kfold.params["finetune_folds"] == 3 and fold0.params["finetune_folds"] == 1


def test_k_fold_with_retrain_parameters_leaves_out_and_scores_each_fold(monkeypatch):
    """With a dict finetune, fold k's fine-tuning is retrain_pruned(..., validation_fold=k) and its accuracy
    evaluate(subset="train", limit=validation, fold=k) (both stood in for: no training here)."""
    import importlib

    import workloads

    bp = importlib.import_module("pruning.bitpruner")  # the module (the package exports a function by its name)
    wl = _toy(3)
    true = _tuned_accuracy(wl)
    trained, scored = [], []

    def fake_retrain(original, pruned, **kw):
        trained.append((kw.get("validation"), kw.get("validation_fold", 0), kw["epochs"], kw["seed"]))
        return PruneResult(_tune(pruned), pd.DataFrame(), "retrain", {})

    def fake_evaluate(w, **kw):
        scored.append((kw["subset"], kw["limit"], kw["fold"]))
        return {"top1": true(w)}

    monkeypatch.setattr(bp, "retrain_pruned", fake_retrain)
    monkeypatch.setattr(workloads, "evaluate", fake_evaluate)
    res = uniform_search(wl, cost=_cost, accuracy=true, ratios=[0.3, 0.6], max_drop=0.3, seed=7,
                         finetune={"epochs": 2, "validation": 100}, finetune_folds=2, finetune_runs=1,
                         finetune_against="unpruned")
    n = len(res.finetuned)
    assert n == 2 and trained == [(100, 0, 2, 7), (100, 1, 2, 7)] * n
    # the unpruned network's folds (the floor), then each fine-tuned point's
    assert scored == [("train", 100, 0), ("train", 100, 1)] * (n + 1)


# ----------------------------------------------------------------------------- judged after a re-fit
@pytest.mark.parametrize("search", ["autoprune", "uniform_search"])
def test_refit_judges_every_pruned_point_after_the_re_fit_and_returns_the_re_fitted_one(search):
    """A stand-in re-fit (``_tune``: the toy forgives 4/5 of the loss of a marked workload): every measured pruned
    episode scores what its re-fitted network scores, the unpruned network is measured as it is, the re-fit lets the
    search go cheaper at the same max_drop, and the result is the re-fitted network of the chosen episode."""
    wl = _toy(5)
    acc = _tuned_accuracy(wl)
    seen = []

    def refit(w):
        seen.append(w)
        return _tune(w)

    def run(**kw):
        if search == "autoprune":
            return autoprune(wl, cost=_cost, accuracy=acc, max_drop=0.02, episodes=24, seed=0, **kw)
        return uniform_search(wl, cost=_cost, accuracy=acc, max_drop=0.02, ratios=np.linspace(0.05, 0.9, 18), **kw)

    res, plain = run(refit=refit), run()
    h = res.history.set_index("episode")
    assert h.loc[0, "accuracy"] == pytest.approx(acc(wl))  # unpruned: not re-fitted
    pruned_rows = [ep for ep in h.index if ep > 0 and any(h.loc[ep, f"ratio:{x.name}"] > 0 for x in wl)]
    assert len(seen) == len(pruned_rows) + 1  # every pruned episode, and the chosen point once more
    for ep in pruned_rows:
        assert h.loc[ep, "accuracy"] == pytest.approx(acc(_tune(_rebuild(wl, h.loc[ep].to_dict()))))
    assert res.workload.meta.get("tuned") and _cost(res.workload) < _cost(plain.workload)
    assert acc(res.workload) >= acc(wl) - 0.02


@pytest.mark.parametrize(("refit", "message"), [
    (3, r"autoprune: refit \(3\) must be a callable .*, 'bn', 'lstsq', or a dict"),
    ("sgd", r"autoprune: refit \({'recalibrate': 'sgd'}\) must be a callable"),
    ({"lr": 0.1}, r"autoprune: refit \({'lr': 0.1}\) must be a callable"),
    ({"recalibrate": "lstsq", "epochs": 2}, r"autoprune: refit re-fits without training; it takes no epochs"),
    ({"recalibrate": "lstsq", "colour": 1}, r"autoprune: refit has unknown training parameters: colour"),
    ({"recalibrate": "lstsq"}, r"autoprune: refit as a dict retrains crossbar_rows only \(method 'magnitude'\)"),
])
def test_bad_refit_requests_give_one_line_errors(refit, message):
    wl = _toy(2)
    with pytest.raises(PruningError, match=message) as err:
        autoprune(wl, cost=_cost, accuracy=_accuracy(wl), episodes=2, refit=refit,
                  method="magnitude" if refit == {"recalibrate": "lstsq"} else "crossbar_rows")
    assert "\n" not in str(err.value)


def test_refitter_is_the_search_re_fit_as_a_callable(monkeypatch):
    """``pruning.refitter``: the unpruned network comes back untouched, a pruned one goes to ``retrain_pruned``
    with no epochs and the given recalibration and training parameters; bad requests fail at construction."""
    import importlib

    bp = importlib.import_module("pruning.bitpruner")  # the module (the package's `bitpruner` is the function)

    wl = _toy(3)
    calls = []

    def fake_retrain_pruned(original, pruned, **kw):
        calls.append((original, pruned, kw))
        return PruneResult(_tune(pruned), pd.DataFrame(), "crossbar_rows+retrain", {})

    monkeypatch.setattr(bp, "retrain_pruned", fake_retrain_pruned)
    fit = pruning.refitter(wl, {"recalibrate": "lstsq", "threads": 1, "validation": 50}, seed=3)
    assert fit(wl) is wl and not calls
    pruned = crossbar_rows(wl, ratio=0.5, block_outputs=2).workload
    out = fit(pruned)
    assert out.meta.get("tuned") and len(calls) == 1
    original, seen, kw = calls[0]
    assert original is wl and seen is pruned
    assert kw == {"method": "crossbar_rows", "layers": None, "seed": 3, "recalibrate": "lstsq", "threads": 1,
                  "validation": 50, "epochs": 0, "final_epochs": 0}
    with pytest.raises(PruningError, match=r"refitter: refit \(None\) must be 'bn', 'lstsq' or a dict"):
        pruning.refitter(wl, None)
    with pytest.raises(PruningError, match="refitter: refit re-fits without training; it takes no epochs"):
        pruning.refitter(wl, {"recalibrate": "bn", "epochs": 1})
