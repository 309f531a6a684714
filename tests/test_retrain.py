"""Retraining with the weights projected in the loop (pruning/finetune.py, pruning/bitpruner.py): short runs on the
real ResNet-20 and the CIFAR-10 test copy's train half."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import pruning
from pruning import PruningError
from pruning.bitpruner import progressive_targets
from workloads import evaluate, load_builtin
from workloads.bits import popcount

from .conftest import shared_path

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                reason="retraining needs torch (pip install -e '.[torch]')")


@pytest.fixture(scope="module")
def r20():
    shared_path("workloads", "cifar10-resnet-akamaster")
    shared_path("datasets")
    return load_builtin("resnet20-cifar10", precision="dfp8")


def test_progressive_targets_follow_the_third_of_the_remaining_way():
    assert progressive_targets(0.6, 0.85) == pytest.approx([0.6 + 0.4 / 3, 0.6 + 0.4 / 3 + (0.4 - 0.4 / 3) / 3, 0.85])
    assert progressive_targets(0.9, 0.85) == [0.85]  # already there: one stage at the target


def test_the_network_starts_exactly_at_the_workload(r20):
    import torch

    from pruning.finetune import QuantNet
    from workloads.datasets import dataset_dir, load_cifar10_test
    from workloads.models.cifar_resnet import cifar_preprocess

    net = QuantNet(r20)
    back = net.to_workload()
    for a, b in zip(r20, back, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
        assert a.meta.get("bias") == b.meta.get("bias")
    images, labels = load_cifar10_test(dataset_dir(), np.arange(0, 10000, 100))
    with torch.no_grad():
        ours = net.model(cifar_preprocess(images)).numpy().argmax(1)
    from workloads.importers.pytorch import predict
    from workloads.models.cifar_resnet import load_cifar_resnet
    from workloads.quantize import LayerQuant
    from workloads.registry import model_path

    quants = {layer.name: LayerQuant.from_meta(layer.meta) for layer in r20}
    theirs = predict(load_cifar_resnet(20, model_path("resnet20-cifar10")), images,
                     preprocess=cifar_preprocess, quants=quants).argmax(1)
    assert (ours == theirs).mean() >= 0.98  # the same quantized network (float rounding aside)


@pytest.mark.slow  # retraining
def test_a_short_retraining_run_lowers_the_loss_and_keeps_the_constraint(r20):
    res = pruning.prune(r20, "retrain", method="bit_budget", max_terms=1, epochs=3, final_epochs=0, lr=1e-3,
                        limit=256, threads=2)
    losses = res.params["history"]["loss"]
    assert losses[-1] < losses[0]
    for layer in res.workload:  # every weight has at most one one bit: the projection stayed in the loop
        assert max(popcount(abs(int(v))) for v in np.unique(layer.weights)) <= 1
    assert res.method == "bit_budget+retrain" and res.report["retrained"].all()
    assert res.workload.meta["pruning"][-1]["training_data"].startswith("CIFAR-10 test copy, train half")
    assert res.workload.meta["builtin"] == "resnet20-cifar10"
    score = evaluate(res.workload, subset="holdout", limit=200)
    assert score["n"] == 200 and score["top1"] > 0.3


@pytest.mark.slow  # retraining
def test_admm_ends_projected_and_bitpruner_reaches_its_target(r20):
    admm = pruning.prune(r20, "retrain", method="n_of_g", keep=8, group=16, admm=True, epochs=1, final_epochs=0,
                         limit=128, threads=2)
    for layer in admm.workload:  # every group of 16 channels keeps at most 8 weights
        w = np.moveaxis(layer.weights, 1, -1)
        c = w.shape[-1]
        w = np.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, -c % 16)]).reshape(-1, 16) if layer.name != "conv1" else w
        if layer.name != "conv1":
            assert (np.count_nonzero(w, axis=1) <= 8).all(), layer.name
    sw = pruning.prune(r20, "retrain", method="swis", shared_terms=2, group_size=8, epochs=1, final_epochs=0,
                       limit=128, threads=2)
    for layer in sw.workload:  # retrained weights still use at most 2 shared positions per group of 8
        from workloads.bricks import layer_channel_groups

        groups = layer_channel_groups(layer, 8)
        vals = np.where(groups >= 0, np.abs(layer.weights.ravel()[np.maximum(groups, 0)]), 0)
        assert (np.bitwise_count(np.bitwise_or.reduce(vals, axis=1)) <= 2).all(), layer.name
    bp = pruning.prune(r20, "bitpruner", target=0.8, epochs=1, final_epochs=0, limit=128, threads=2)
    assert bp.totals()["bit_sparsity"] >= 0.8 - 1e-9
    assert bp.params["history"]["stage"][-1] == pytest.approx(0.8)


def test_retraining_refuses_what_it_cannot_train():
    from workloads import Layer, Workload

    wl = Workload("w", [Layer.fc("f", [1, 2], [[1, 1]], act_bits=2, weight_bits=2)])
    with pytest.raises(pruning.PruningError, match="needs a PyTorch built-in workload"):
        pruning.prune(wl, "bitpruner", epochs=1)
    with pytest.raises(pruning.PruningError, match=r"retrain: method \('lottery'\) must be one of"):
        pruning.prune(wl, "retrain", method="lottery")


def test_crossbar_rows_retraining_keeps_the_freed_rows_and_the_crossbars(r20):
    """A short, hot fine-tune (64 images, lr 1e-2): the weights move, every row the pruning freed stays zero, and the
    compact ReRAM mapping occupies no more crossbars."""
    from pruning.crossbar_rows import kept_rows
    from simulator import load_arch, simulate

    arch = load_arch("reram", compaction="compact")
    pruned = pruning.crossbar_rows(r20, ratio=0.12).workload
    res = pruning.prune(r20, "retrain", method="crossbar_rows", ratio=0.12, epochs=1, final_epochs=0, lr=1e-2,
                        limit=64, threads=1)
    assert res.method == "crossbar_rows+retrain"
    moved = 0
    for before, after in zip(pruned, res.workload, strict=True):
        keep = kept_rows(before, before.weights)
        assert not after.weights[~keep].any(), before.name
        moved += int((after.weights != before.weights).sum())
    assert moved > 0
    assert simulate(arch, res.workload).layers["crossbars"].sum() <= simulate(arch, pruned).layers["crossbars"].sum()


def test_retrain_pruned_takes_per_layer_ratios_and_is_deterministic(r20):
    from pruning.crossbar_rows import kept_rows, prune_rows
    from pruning.pareto import _replace

    ratios = {"layer1.0.conv1": 0.12, "layer3.2.conv2": 0.56}
    pruned = _replace(r20, {n: prune_rows(r20[n], r20[n].weights, r)[0] for n, r in ratios.items()})
    runs = [pruning.retrain_pruned(r20, pruned, layers=list(ratios), epochs=1, final_epochs=0, lr=1e-2, limit=32,
                                   threads=1, seed=s) for s in (1, 1, 2)]
    for a, b, p in zip(runs[0].workload, runs[1].workload, pruned, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
        assert not a.weights[~kept_rows(p, p.weights)].any(), p.name
    assert any((a.weights != c.weights).any() for a, c in zip(runs[0].workload, runs[2].workload, strict=True))
    assert runs[0].method == "crossbar_rows+retrain"
    with pytest.raises(pruning.PruningError, match=r"retrain_pruned: params must not set 'ratio'"):
        pruning.retrain_pruned(r20, pruned, ratio=0.5)
    with pytest.raises(pruning.PruningError, match=r"retrain_pruned: method \('magnitude'\) must be one of: "
                                                   r"crossbar_rows"):
        pruning.retrain_pruned(r20, pruned, method="magnitude")


@pytest.mark.parametrize("how", ["bn", "lstsq"])
def test_recalibration_recovers_a_heavily_pruned_network_and_keeps_its_rows(r20, how):
    """Rows 0.56 pruned everywhere: holdout top-1 near chance; re-fitting the statistics (bn) or the kept weights
    (lstsq) on 128 training images, without a training step, recovers much of it; freed rows stay zero."""
    from pruning.crossbar_rows import kept_rows

    pruned = pruning.crossbar_rows(r20, ratio=0.56).workload
    res = pruning.retrain_pruned(r20, pruned, epochs=0, final_epochs=0, recalibrate=how, limit=128, threads=1)
    for p, q in zip(pruned, res.workload, strict=True):
        assert not q.weights[~kept_rows(p, p.weights)].any(), p.name
    drift = res.params["history"]["recalibration"]
    assert set(drift) <= {layer.name for layer in r20} and len(drift) >= 19
    before = evaluate(pruned, subset="holdout", limit=200)["top1"]
    after = evaluate(res.workload, subset="holdout", limit=200)["top1"]
    assert after > before + 0.15, (before, after)


def test_the_validation_images_are_left_out_of_the_training_data(r20):
    from pruning.finetune import TrainData
    from workloads.datasets import cifar10_split, dataset_dir, evenly_spaced, load_cifar10_test

    shared_path("datasets")
    train = cifar10_split(load_cifar10_test(dataset_dir())[1], 0)[0]
    data = TrainData.cifar10(validation=50)
    val = evenly_spaced(train, 50)  # the images evaluate(subset="train", limit=50) scores
    assert len(val) == 50 and len(data.indices) == len(train) - 50
    assert not set(data.indices) & set(val) and set(data.indices) | set(val) == set(train)
    assert len(TrainData.cifar10(validation=50, limit=100).indices) == 100
    # fold k leaves out the k-th disjoint pick instead (k-fold checks): evaluate(..., fold=k) scores those
    folds = [np.setdiff1d(train, TrainData.cifar10(validation=50, validation_fold=k).indices) for k in range(3)]
    for k, left_out in enumerate(folds):
        assert np.array_equal(left_out, np.sort(evenly_spaced(train, 50, k)))
    assert len(np.unique(np.concatenate(folds))) == 150
    with pytest.raises(PruningError, match=r"validation_fold 100, train half: fold 100 of 50 entries needs 5050 "
                       r"entries; the pool has 5000"):
        TrainData.cifar10(validation=50, validation_fold=100)
    with pytest.raises(PruningError, match=r"retrain: validation_fold \(2\) needs validation \(the fold's size\)"):
        pruning.retrain_pruned(r20, r20, epochs=0, final_epochs=0, validation_fold=2)


def test_least_squares_leaves_an_unpruned_network_as_it_is(r20):
    res = pruning.retrain_pruned(r20, r20, epochs=0, final_epochs=0, recalibrate="lstsq", limit=64, threads=1)
    assert res.params["history"]["recalibration"] == {}
    for a, b in zip(r20, res.workload, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


def test_a_fixed_mask_projects_the_training_forward_and_the_result_alike():
    import torch

    from pruning.finetune import FixedMaskProjection
    from workloads import Layer

    layer = Layer.fc("f@0", np.ones(3, np.int32), np.array([[1, 2, 3], [4, 5, 6]], np.int32), act_bits=8,
                     weight_bits=8)
    keep = np.array([[True, False, True], [True, False, True]])
    proj = FixedMaskProjection({"f": keep})
    proj.refresh({"f": layer}, {"f": np.full((2, 3), 9)})  # nothing is re-chosen
    q = torch.tensor([[7.0, 8.0, 9.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(proj.apply("f", q).numpy(), [[7, 0, 9], [1, 0, 3]])
    np.testing.assert_array_equal(proj.full(layer, np.array([[7, 8, 9], [1, 2, 3]])), [[7, 0, 9], [1, 0, 3]])
    other = Layer.fc("g", np.ones(3, np.int32), np.ones((2, 3), np.int32), act_bits=8, weight_bits=8)
    np.testing.assert_array_equal(proj.full(other, other.weights), other.weights)  # no mask: not constrained
    np.testing.assert_array_equal(proj.apply("g", q).numpy(), q.numpy())


def test_a_search_judged_after_the_least_squares_re_fit_measures_and_returns_the_re_fitted_network(r20):
    """``refit`` as retraining parameters: the pruned point is measured after ``retrain_pruned`` with no epochs, and
    the result is that re-fitted network (weights and biases), far more accurate than the pruned one."""
    from pruning.crossbar_rows import prune_rows
    from pruning.pareto import _replace

    layers = ["layer3.1.conv1", "layer3.1.conv2", "layer3.2.conv1", "layer3.2.conv2"]
    refit = {"recalibrate": "lstsq", "limit": 64, "threads": 1}

    def accuracy(w):
        return evaluate(w, subset="holdout", limit=200)["top1"]

    res = pruning.uniform_search(r20, cost=lambda w: sum(float(np.count_nonzero(x.weights)) for x in w),
                                 accuracy=accuracy, ratios=[0.78], layers=layers, max_drop=0.5, refit=refit)
    pruned = _replace(r20, {n: prune_rows(r20[n], r20[n].weights, 0.78)[0] for n in layers})
    expected = pruning.retrain_pruned(r20, pruned, layers=layers, epochs=0, final_epochs=0, recalibrate="lstsq",
                                      limit=64, threads=1).workload
    for a, b in zip(res.workload, expected, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
        assert a.meta.get("bias") == b.meta.get("bias"), a.name
    row = res.history.set_index("episode").loc[1]
    assert row["accuracy"] == pytest.approx(accuracy(expected))
    assert row["accuracy"] > accuracy(pruned) + 0.05, (row["accuracy"], accuracy(pruned))


def test_distillation_from_the_unpruned_network_is_the_soft_target_loss(r20):
    """The unpruned network fine-tuned with itself as the teacher: on the teacher alone (distill 1) the loss is 0 and
    the weights do not move, whatever the labels say; half and half, they move as the labels pull them."""
    kw = {"epochs": 1, "final_epochs": 0, "lr": 1e-2, "limit": 32, "threads": 1, "method": "crossbar_rows"}
    alone = pruning.retrain_pruned(r20, r20, distill=1.0, **kw)
    assert alone.params["history"]["loss"] == [0.0]
    for a, b in zip(r20, alone.workload, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
    half = pruning.retrain_pruned(r20, r20, distill=0.5, temperature=2.0, **kw)
    labels = pruning.retrain_pruned(r20, r20, **kw)
    assert 0 < half.params["history"]["loss"][0] < labels.params["history"]["loss"][0]
    assert any((a.weights != b.weights).any() for a, b in zip(r20, half.workload, strict=True))
    with pytest.raises(pruning.PruningError, match=r"retraining: temperature \(0.0\) must be a positive number"):
        pruning.retrain_pruned(r20, r20, distill=0.5, temperature=0.0, **kw)
    with pytest.raises(pruning.PruningError, match=r"retrain_pruned: distill \(1.5\)|distill.*1.5"):
        pruning.retrain_pruned(r20, r20, distill=1.5, **kw)
