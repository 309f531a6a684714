"""Bit-slice L1 (pruning/bitslice_l1.py): the slice report on hand-built weights, the penalty's value and
straight-through gradient, one-line errors, and a short retraining run on the real ResNet-20."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

import pruning
from pruning import METHODS, PruningError, slice_report
from pruning.bitpruner import TRAIN_PARAMS
from workloads import Layer, Workload, load_builtin

from .conftest import shared_path

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="retraining needs torch (pip install -e '.[torch]')")

# an fc layer's weights (K=2 outputs, C=3 inputs); unrolled (C, K) the crossbar holds
#   row 0: [  5, -70]
#   row 1: [ -3,  64]
#   row 2: [ -2,   1]
# 2-bit slices (lowest first): 5 = (1, 1, 0, 0), 70 = (2, 1, 0, 1), 3 = (3, 0, 0, 0), 64 = (0, 0, 0, 1),
# 2 = (2, 0, 0, 0), 1 = (1, 0, 0, 0). Positive array: 5, 64, 1; negative array: 70, 3, 2.
FC = np.array([[5, -3, -2], [-70, 64, 1]])


def test_slice_report_zero_shares_by_hand():
    r = slice_report(FC, 8, True, cell_bits=2, xbar_rows=2, input_bits=1)
    cells = 6 * 2  # 6 weights, two arrays
    # nonzero cells per slice: slice 0: 5, 1 (pos) and 70, 3, 2 (neg) = 5; slice 1: 5 (pos), 70 (neg) = 2;
    # slice 2: none; slice 3: 64 (pos), 70 (neg) = 2
    assert r["slice0_zero"] == pytest.approx((cells - 5) / cells)
    assert r["slice1_zero"] == pytest.approx((cells - 2) / cells)
    assert r["slice2_zero"] == 1.0
    assert r["slice3_zero"] == pytest.approx((cells - 2) / cells)
    assert r["slice_zero"] == pytest.approx((4 * cells - 9) / (4 * cells))
    assert "slice4_zero" not in r  # a 7-bit magnitude takes four 2-bit slices


def test_slice_report_adc_bits_by_hand():
    # two rows per crossbar: blocks {row 0, row 1} and {row 2}. Slice 0 column sums: block 0: pos k0 = 1, neg k0 = 3
    # (from -3), neg k1 = 2 (from -70); block 1: neg k0 = 2 (from -2), pos k1 = 1. Largest 3 -> 2 bits.
    r = slice_report(FC, 8, True, cell_bits=2, xbar_rows=2, input_bits=1)
    assert [r[f"slice{j}_adc_bits"] for j in range(4)] == [2, 1, 1, 1]  # an all-zero slice still needs 1 bit
    # one crossbar of 3 rows: neg k0 of slice 0 sums 3 + 2 = 5 -> 3 bits
    r = slice_report(FC, 8, True, cell_bits=2, xbar_rows=3, input_bits=1)
    assert [r[f"slice{j}_adc_bits"] for j in range(4)] == [3, 1, 1, 1]
    # 2 input bits per read: every sum x 3: 15 -> 4 bits, 3 -> 2 bits, 0 -> 1 bit
    r = slice_report(FC, 8, True, cell_bits=2, xbar_rows=3, input_bits=2)
    assert [r[f"slice{j}_adc_bits"] for j in range(4)] == [4, 2, 1, 2]


def test_slice_report_unrolls_convolutions_input_channel_first():
    # K=1, C=2, R=1, S=2: (C*R*S) rows c0s0, c0s1, c1s0, c1s1 = 3, 0, 3, 0; blocks of 2 rows sum 3 and 3 -> 2 bits
    # (an (R*S*C) order would put both 3s in one block: 6 -> 3 bits)
    w = np.array([[[[3, 0]], [[3, 0]]]])
    r = slice_report(w, 8, True, cell_bits=2, xbar_rows=2, input_bits=1)
    assert r["slice0_adc_bits"] == 2
    assert r["slice0_zero"] == pytest.approx(6 / 8)  # 4 weights x 2 arrays, two 3s


def test_slice_report_unsigned_weights_use_one_array():
    # 2-bit unsigned, 1-bit cells: two slices. (C, K) = [[3, 1], [0, 2]]: slice 0 holds 1, 1, 0, 0; slice 1 1, 0, 0, 1
    w = np.array([[3, 0], [1, 2]])
    r = slice_report(w, 2, False, cell_bits=1, xbar_rows=2, input_bits=3)
    assert (r["slice0_zero"], r["slice1_zero"], r["slice_zero"]) == (0.5, 0.5, 0.5)
    assert (r["slice0_adc_bits"], r["slice1_adc_bits"]) == (3, 3)  # column sums 1 x 7 -> 3 bits


@pytest.mark.parametrize("call, message", [
    (lambda: slice_report(FC, 8, True, cell_bits=0), r"cell_bits \(0\) must be an integer >= 1"),
    (lambda: slice_report(FC, 8, True, xbar_rows=0), r"xbar_rows \(0\) must be an integer >= 1"),
    (lambda: slice_report(FC, 8, False), r"unsigned weights hold a negative value \(-70\)"),
    (lambda: slice_report(FC.astype(float), 8, True), "must be a non-empty integer array"),
    (lambda: slice_report(np.array([[300]]), 8, False, cell_bits=1), r"outside the 8 slices of 1 bits"),
])
def test_slice_report_refuses_bad_arguments_in_one_line(call, message):
    with pytest.raises(PruningError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def _tiny() -> Workload:
    return Workload("w", [Layer.fc("f", [1, 2, 3], FC, act_bits=8, weight_bits=8)])


@pytest.mark.parametrize("params, message", [
    ({"l1": -1.0}, r"bitslice_l1: l1 \(-1.0\) must be >= 0"),
    ({"sparsity": 1.5}, r"bitslice_l1: sparsity \(1.5\) must be in \[0, 1\]"),
    ({"cell_bits": 0}, r"bitslice_l1: cell_bits \(0\) must be in \[1, 16\]"),
    ({"xbar_rows": 0}, r"bitslice_l1: xbar_rows \(0\) must be >= 1"),
    ({"input_bits": 2.5}, r"bitslice_l1: input_bits \(2.5\) must be an integer"),
    ({"epochs": -1}, r"bitslice_l1: epochs \(-1\) must be >= 0"),
    ({"admm": True}, r"bitslice_l1: unknown parameter\(s\) admm"),
])
def test_bad_parameters_are_one_line_errors(params, message):
    with pytest.raises(PruningError, match=message) as err:
        pruning.prune(_tiny(), "bitslice_l1", **params)
    assert "\n" not in str(err.value)


def test_the_training_parameters_are_the_shared_ones():
    params = METHODS["bitslice_l1"].params
    own = ("admm", "rho", "rho_growth", "recalibrate", "validation", "distill", "temperature")  # retrain's alone
    shared = [p for p in TRAIN_PARAMS if p.name not in own]
    assert [p for p in params if p.name in {q.name for q in TRAIN_PARAMS}] == shared
    assert all(any(p is q for q in params) for p in shared)  # the same objects, not copies
    assert METHODS["bitslice_l1"].needs_torch


@needs_torch
def test_a_workload_that_is_no_pytorch_builtin_is_refused():
    with pytest.raises(PruningError, match="needs a PyTorch built-in workload"):
        pruning.prune(_tiny(), "bitslice_l1", epochs=1)


@needs_torch
@pytest.mark.parametrize("normalize", ["layer", "network"])
def test_the_penalty_is_the_slice_sum_with_a_straight_through_gradient(normalize):
    import torch

    from pruning.bitslice_l1 import _slice_penalty

    # layer f: integers [[5, -70], [0, 3]] at scale 0.5 (the 0 is a pruned weight, whose latent value drifted to 1);
    # layer g: [[1, 2]] at scale 0.25
    wf = (torch.tensor([[5.2, -70.1], [1.0, 2.9]]) * 0.5).requires_grad_(True)
    wg = (torch.tensor([[1.1, 1.8]]) * 0.25).requires_grad_(True)
    layers = {"f": Layer.fc("f", [1, 2], np.array([[5, -70], [0, 3]]), act_bits=8, weight_bits=8),
              "g": Layer.fc("g", [1, 2], np.array([[1, 2]]), act_bits=8, weight_bits=8)}

    def module(w):
        return SimpleNamespace(parametrizations=SimpleNamespace(weight=SimpleNamespace(original=w)))

    net = SimpleNamespace(modules={"f": module(wf), "g": module(wg)},
                          scale={"f": torch.tensor(0.5), "g": torch.tensor(0.25)}, layers=layers)
    penalty, values = _slice_penalty(net, {"f", "g"}, cell_bits=2, strength=2.0, normalize=normalize)
    term = penalty()
    # slice sums: f: 5 -> 1 + 1, 70 -> 2 + 1 + 1, 3 -> 3, the pruned weight none: 9 over 4 weights;
    # g: 1 -> 1, 2 -> 2: 3 over 2 weights
    expected = 2.0 * (9 / 4 + 3 / 2) if normalize == "layer" else 2.0 * (9 + 3) / 6
    assert float(term.detach()) == pytest.approx(expected)
    assert values == [pytest.approx(expected)]
    term.backward()
    # d/dw = l1 x sign(w) / scale x (1 + 1/4 + 1/16 + 1/64) / (the layer's or the network's weight count);
    # nothing for the pruned weight
    per = 2.0 * (1 + 1 / 4 + 1 / 16 + 1 / 64)
    gf = per / 0.5 / (4 if normalize == "layer" else 6)
    gg = per / 0.25 / (2 if normalize == "layer" else 6)
    np.testing.assert_allclose(wf.grad.numpy(), [[gf, -gf], [0.0, gf]], rtol=1e-6)
    np.testing.assert_allclose(wg.grad.numpy(), [[gg, gg]], rtol=1e-6)
    # a layer left out gets no penalty; l1 = 0: no penalty at all
    penalty, _ = _slice_penalty(net, {"f"}, cell_bits=2, strength=2.0, normalize=normalize)
    assert float(penalty().detach()) == pytest.approx(2.0 * 9 / 4)
    assert _slice_penalty(net, {"f"}, cell_bits=2, strength=0.0)[0] is None


@pytest.fixture(scope="module")
def r20():
    shared_path("workloads", "cifar10-resnet-akamaster")
    shared_path("datasets")
    return load_builtin("resnet20-cifar10", precision="dfp8")


@needs_torch
@pytest.mark.slow  # retraining
def test_the_slice_penalty_raises_slice_sparsity_and_keeps_the_mask(r20):
    short = {"sparsity": 0.5, "epochs": 1, "final_epochs": 0, "batch_size": 16, "limit": 128, "threads": 1}
    base = pruning.prune(r20, "bitslice_l1", l1=0.0, **short)
    reg = pruning.prune(r20, "bitslice_l1", l1=500.0, **short)
    pruned = pruning.magnitude(r20, sparsity=0.5).workload

    def zero_share(res):
        rep = res.report
        return float((rep["slice_zero"] * rep["weights"]).sum() / rep["weights"].sum())

    assert zero_share(reg) > zero_share(base) + 0.005
    for res in (base, reg):
        for layer in res.workload:  # every weight magnitude pruning zeroed is still zero
            zeros = pruned[layer.name].weights == 0
            assert zeros.mean() >= 0.5 and not layer.weights[zeros].any(), layer.name
            assert np.abs(layer.weights).max() <= 127  # saturated to the symmetric range: fits the slices
        assert res.workload.meta["pruning"][-1]["training_data"].startswith("CIFAR-10 test copy, train half")
        assert res.workload.meta["pruning"][-1]["method"] == "bitslice_l1"
    assert base.params["history"]["penalty"] == [0.0] and reg.params["history"]["penalty"][0] > 0
    assert base.params["l1"] == 0.0 and reg.params["l1"] == 500.0
    # the fine-tuning changed the weights (the baseline is fine-tuned, not just pruned)
    assert any(not np.array_equal(a.weights, b.weights) for a, b in zip(base.workload, pruned, strict=True))
    for col in ("slice0_zero", "slice3_zero", "slice_zero", "slice0_adc_bits", "slice3_adc_bits", "retrained"):
        assert col in reg.report.columns
    # the report's figures are those of the result's weights
    layer = reg.workload["layer3.2.conv2"]
    row = reg.report.set_index("layer").loc["layer3.2.conv2"]
    assert row["slice_zero"] == slice_report(layer.weights, 8, True, 2, 128, 1)["slice_zero"]
