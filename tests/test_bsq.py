"""BSQ (pruning/bsq.py): the bit-plane decomposition, the memory-reweighted group lasso, re-quantization that drops
all-zero end planes and rescales, and the result's formats (the workload evaluates as the network it describes)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

import pruning
from pruning import PruningError
from pruning.bsq import EPS, drop_planes, end_planes, from_planes, memory_weight, plane_counts, to_planes
from workloads import Layer, Workload, evaluate, load_builtin

from .conftest import shared_path

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="BSQ needs torch (pip install -e '.[torch]')")


@pytest.fixture(scope="module")
def r20():
    shared_path("workloads", "cifar10-resnet-akamaster")
    shared_path("datasets")
    return load_builtin("resnet20-cifar10", precision="dfp8")


def _planes(ints, planes=7, scale=0.25):
    from pruning.bsq import _torch_parts

    return _torch_parts()(np.asarray(ints), planes, scale)


# ----------------------------------------------------------------------------- decomposition
def test_bit_planes_reconstruct_the_integers_exactly():
    rng = np.random.default_rng(0)
    for shape in [(5,), (4, 3, 3, 3), (10, 64)]:
        w = rng.integers(-127, 128, shape)
        w.flat[:3] = [127, -127, 0]
        p, n = to_planes(w, 7)
        assert p.shape == n.shape == (7, *shape) and set(np.unique(p)) <= {0, 1} and set(np.unique(n)) <= {0, 1}
        assert not (p & n).any()  # a weight's bits sit in p or in n, never both
        np.testing.assert_array_equal(from_planes(p, n), w)
        np.testing.assert_array_equal(plane_counts(w, 7), (p + n).reshape(7, -1).sum(1))
    assert to_planes(np.array([6, -5]), 3)[0][:, 0].tolist() == [0, 1, 1]  # 6 = 0b110
    assert to_planes(np.array([6, -5]), 3)[1][:, 1].tolist() == [1, 0, 1]  # |-5| = 0b101 in the negative planes
    with pytest.raises(PruningError, match="needs more than 3 bit planes"):
        to_planes(np.array([8]), 3)


@needs_torch
def test_the_torch_planes_compute_the_integers_times_the_scale():
    import torch

    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (6, 4, 3, 3))
    bp = _planes(w, 7, 0.125)
    np.testing.assert_array_equal(bp.ints(), w)
    np.testing.assert_array_equal(bp(None).detach().numpy(), (w * 0.125).astype(np.float32))
    bp.p.data[3] += 0.3  # continuous bits: the forward pass rounds the sum (value 8 x 0.3 = 2.4 more)
    out = bp(None)
    np.testing.assert_array_equal(bp.ints(), np.minimum(w + 2, 127))  # saturated to the kept planes' range
    out.sum().backward()  # straight through: d out / d p_b = s 2^b (before the preconditioner / (2 K (s 2^b)^2))
    expected = 0.125 * 2.0 ** np.arange(7) / (2 * 7 * (0.125 * 2.0 ** np.arange(7)) ** 2)
    np.testing.assert_allclose(bp.p.grad.reshape(7, -1).numpy(), np.repeat(expected[:, None], w.size, 1), rtol=1e-6)
    assert torch.allclose(bp.n.grad, -bp.p.grad)


# ----------------------------------------------------------------------------- the penalty
@needs_torch
def test_the_group_lasso_by_hand():
    from pruning.bsq import bsq_penalty

    a = _planes([[3, -1], [0, 2]], 3)  # p: plane 0 [1,0,0,0], plane 1 [1,0,0,1]; n: plane 0 [0,1,0,0]
    b = _planes([5, -4], 3)  # p: plane 0 [1,0], plane 2 [1,0]; n: plane 2 [0,1]
    a.p.data[2, 0, 0] = 0.5  # a continuous bit in a's otherwise empty plane 2
    a.n.data[1, 1, 0] = 1.5
    # one group per plane per layer: sqrt(sum of p^2 + n^2 + 1e-8) over the kept planes
    ga = math.sqrt(1 + 1 + EPS) + math.sqrt(1 + 1 + 1.5**2 + EPS) + math.sqrt(0.5**2 + EPS)
    gb = math.sqrt(1 + EPS) + math.sqrt(0 + EPS) + math.sqrt(1 + 1 + EPS)
    assert float(a.group_lasso().detach()) == pytest.approx(ga, rel=1e-6)
    assert float(b.group_lasso().detach()) == pytest.approx(gb, rel=1e-6)
    # memory share: weights x kept planes / all weights (6): a 4 x 3 / 6 = 2, b 2 x 3 / 6 = 1
    assert memory_weight(4, 3, 6) == 2 and memory_weight(2, 3, 6) == 1
    assert float(bsq_penalty({"a": a, "b": b}).detach()) == pytest.approx(2 * ga + 1 * gb, rel=1e-6)
    b.lo = 1  # b's plane 0 dropped: out of its group lasso, and b's share is 2 x 2 / 6
    gb_kept = math.sqrt(0 + EPS) + math.sqrt(1 + 1 + EPS)
    assert float(bsq_penalty({"a": a, "b": b}).detach()) == pytest.approx(2 * ga + 2 * 2 / 6 * gb_kept, rel=1e-6)


# ----------------------------------------------------------------------------- re-quantization
def test_end_planes_drop_top_then_bottom_down_to_the_floor():
    counts = np.array([0, 0, 5, 3, 0, 0, 0])
    assert end_planes(counts, 0, 6, 1) == (2, 3)
    assert end_planes(counts, 0, 6, 3) == (1, 3)  # MSBs first (6, 5, 4), then one LSB to the floor of 3 planes
    assert end_planes(counts, 0, 6, 7) == (0, 6)
    assert end_planes(np.zeros(7, int), 0, 6, 2) == (0, 1)  # an all-zero layer keeps its lowest planes
    assert end_planes(np.array([1, 0, 0, 0, 0, 0, 1]), 0, 6, 1) == (0, 6)  # inner zero planes stay


@needs_torch
def test_requantization_drops_exactly_the_all_zero_end_planes_and_rescales():
    w = np.array([[12, -8, 4, 0], [-12, 8, 0, -4]])  # multiples of 4 below 16: planes 2 and 3 only
    bp = _planes(w, 7, 2.0**-7)
    assert bp.requantize(min_planes=1) == (2, 3)
    assert (bp.lo, bp.hi, bp.kept) == (2, 3, 2)
    np.testing.assert_array_equal(bp.ints(), w)  # the same integers at the original scale: nothing changed
    assert bp.requantize(min_planes=1) == (0, 0)
    floor = _planes(w, 7)
    assert floor.requantize(min_planes=3) == (1, 3)

    carry = _planes(np.array([8, 1, 3]), 7)  # a continuous 2 carries into the plane above on re-quantization
    carry.p.data[3, 0] = 0
    carry.p.data[2, 0] = 2.0  # 2 x 4 = 8, held in plane 2
    assert carry.requantize(min_planes=1) == (0, 3)  # planes 4..6 empty; plane 3 holds the carry
    assert carry.p.detach().numpy()[:, 0].tolist() == [0, 0, 0, 1, 0, 0, 0]
    np.testing.assert_array_equal(carry.ints(), [8, 1, 3])

    lasso = _planes(np.array([5, 7, -3, 2]), 7)  # plane 0 driven below 1/2 everywhere: it is dropped ...
    lasso.p.data[0] = 0.3
    lasso.n.data[0] = 0.2
    lasso.p.data[1, 3] = 0.6  # 2 x 0.6 + 0.1 = 1.3 would round to an odd 1 on the old grid
    assert lasso.requantize(min_planes=1) == (1, 4)
    np.testing.assert_array_equal(lasso.ints(), [4, 6, -2, 2])  # ... and the weights round on the grid of 2
    assert lasso.p.detach().numpy()[0].tolist() == [0, 0, 0, 0]
    kept = _planes(np.array([5, 7, -3, 2]), 7)
    kept.p.data[0] = torch_tensor([0.3, 0.6, 0.0, 0.0])  # one bit still rounds to 1: the plane stays
    kept.n.data[0] = torch_tensor([0.0, 0.0, 0.2, 0.0])
    assert kept.requantize(min_planes=1) == (0, 4)
    np.testing.assert_array_equal(kept.ints(), [4, 7, -2, 2])
    top = _planes(np.array([70, -3]), 7)  # top planes are judged on the rounded weights, carries included
    top.p.data[6, 0] = 0.3  # 0.3 x 64 + 6 = 25.2: planes 5 and 6 empty
    assert top.requantize(min_planes=1) == (0, 2) and top.ints().tolist() == [25, -3]
    held = _planes(np.array([70, -3]), 7)
    held.p.data[6, 0] = 0.3
    held.p.data[5, 0] = 2.0  # 19.2 + 64 + 6 = 89.2 still needs plane 6
    assert held.requantize(min_planes=1) == (0, 0) and held.ints().tolist() == [89, -3]


def torch_tensor(values):
    import torch

    return torch.tensor(values, dtype=torch.float32)


# ----------------------------------------------------------------------------- the result's formats
def test_drop_planes_rescales_the_recorded_format(r20):
    layer = r20["layer2.1.conv1"]
    w = layer.weights.astype(np.int64)
    even = np.sign(w) * (np.clip(np.abs(w), 0, 62) & ~1)
    bias = np.asarray(layer.meta["bias"], np.int64)
    meta = {**layer.meta, "bias": [int(v) for v in bias - bias % 2]}
    a = layer.with_values(weights=even, meta=meta)
    b = drop_planes(a, lsb=1, msb=1)
    assert b.weight_bits == 6 and b.meta["weight"]["bits"] == 6
    assert b.meta["weight"]["frac_bits"] == layer.meta["weight"]["frac_bits"] - 1
    assert b.meta["weight"]["scale"] == 2 * layer.meta["weight"]["scale"]
    np.testing.assert_array_equal(b.weights, even // 2)
    assert b.meta["bias"] == [v // 2 for v in a.meta["bias"]]
    assert b.meta["accumulator_scale"] == [2 * v for v in layer.meta["accumulator_scale"]]
    with pytest.raises(PruningError, match="planes to drop are not all zero"):
        drop_planes(layer, lsb=1)
    with pytest.raises(PruningError, match="planes to drop are not all zero"):
        drop_planes(a, msb=2)


def _logits(wl: Workload, images):
    from workloads.importers.pytorch import predict
    from workloads.models.cifar_resnet import cifar_preprocess, load_cifar_resnet
    from workloads.quantize import LayerQuant
    from workloads.registry import model_path

    return predict(load_cifar_resnet(20, model_path("resnet20-cifar10")), images, preprocess=cifar_preprocess,
                   quants={layer.name: LayerQuant.from_meta(layer.meta) for layer in wl},
                   weights_override={layer.name: layer.weights for layer in wl},
                   bias_override={layer.name: np.asarray(layer.meta["bias"]) for layer in wl})


@needs_torch
def test_a_workload_with_an_all_zero_plane_dropped_by_hand_evaluates_identically(r20):
    from workloads.datasets import dataset_dir, load_cifar10_test

    name = "layer2.1.conv1"
    layer = r20[name]
    w = layer.weights.astype(np.int64)
    even = np.sign(w) * (np.clip(np.abs(w), 0, 62) & ~1)  # plane 0 and plane 6 all zero
    bias = np.asarray(layer.meta["bias"], np.int64)
    a_layer = layer.with_values(weights=even, meta={**layer.meta, "bias": [int(v) for v in bias - bias % 2]})
    a = Workload(r20.name, [a_layer if lay.name == name else lay for lay in r20], r20.meta)
    b = Workload(r20.name, [drop_planes(a_layer, lsb=1, msb=1) if lay.name == name else lay for lay in r20],
                 r20.meta)
    assert b[name].weight_bits == 6
    images, _ = load_cifar10_test(dataset_dir(), np.arange(0, 10000, 50))
    np.testing.assert_array_equal(_logits(a, images), _logits(b, images))
    assert evaluate(a, subset="holdout", limit=300) == evaluate(b, subset="holdout", limit=300)
    # the control: the same halved integers without the rescaled format compute another network
    c = Workload(r20.name, [a_layer.with_values(weights=even // 2, weight_bits=7) if lay.name == name else lay
                            for lay in r20], r20.meta)
    assert not np.array_equal(_logits(a, images), _logits(c, images))


@needs_torch
def test_the_result_computes_the_network_bsq_trained(r20):
    import torch

    from pruning.bsq import _result, bit_plane_net
    from workloads.datasets import dataset_dir, load_cifar10_test
    from workloads.models.cifar_resnet import cifar_preprocess

    net, planes = bit_plane_net(r20, {layer.name for layer in r20})
    bp = planes["layer3.0.conv2"]
    bp.p.data[0] *= 0.4  # the lasso's work by hand: plane 0 below 1/2 everywhere ...
    bp.n.data[0] *= 0.4
    planes["layer1.0.conv1"].p.data[6] = 0  # ... and an empty top plane (its weights clip at 63)
    planes["layer1.0.conv1"].n.data[6] = 0
    assert bp.requantize(1) == (1, 0) and planes["layer1.0.conv1"].requantize(1) == (0, 1)
    params = pruning.METHODS["bsq"].bind({})
    res = _result(net, planes, r20, params, {"loss": []}, "test")
    out = res.workload
    row = res.report.set_index("layer")
    assert (row.loc["layer3.0.conv2", "bits_after"], row.loc["layer3.0.conv2", "lsb_dropped"]) == (7, 1)
    assert (row.loc["layer1.0.conv1", "bits_after"], row.loc["layer1.0.conv1", "msb_dropped"]) == (7, 1)
    assert out["layer3.0.conv2"].weight_bits == 7 and out["layer3.0.conv2"].meta["weight"]["frac_bits"] == 7
    np.testing.assert_array_equal(out["layer3.0.conv2"].weights, bp.ints() // 2)
    assert out["layer1.0.conv1"].meta["weight"]["frac_bits"] == 8 and np.abs(out["layer1.0.conv1"].weights).max() < 64
    assert (row["bits_after"] == 8).sum() == len(row) - 2
    images, _ = load_cifar10_test(dataset_dir(), np.arange(0, 10000, 50))
    with torch.no_grad():
        ours = net.model(cifar_preprocess(images)).numpy()
    theirs = _logits(out, images)
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 0.98  # the same network (float rounding, biases aside)
    assert np.abs(ours - theirs).max() < 0.1 * np.abs(ours).max()


# ----------------------------------------------------------------------------- parameters
def _small() -> Workload:
    return Workload("w", [Layer.fc("f", [1, 2], [[1, -1]], act_bits=2, weight_bits=4)])


@pytest.mark.parametrize(("params", "message"), [
    ({"strength": -1.0}, r"bsq: strength \(-1.0\) must be >= 0"),
    ({"requant_every": 0}, r"bsq: requant_every \(0\) must be >= 1"),
    ({"min_bits": 1}, r"bsq: min_bits \(1\) must be in \[2, 16\]"),
    ({"min_bits": 5}, r"bsq: min_bits \(5\) must be <= layer 'f''s weight_bits \(4\)"),
    ({"epochs": 0}, r"bsq: epochs \(0\) must be >= 1"),
    ({"strength": "big"}, r"bsq: strength \('big'\) must be a number"),
    ({"admm": True}, r"bsq: unknown parameter\(s\) admm"),
    ({"layers": ["g"]}, r"bsq: workload 'w' has no layer 'g'"),
])
def test_bad_parameters_are_one_line_errors(params, message):
    with pytest.raises(PruningError, match=message) as err:
        pruning.prune(_small(), "bsq", **params)
    assert "\n" not in str(err.value)


@needs_torch
def test_bsq_needs_a_pytorch_builtin():
    with pytest.raises(PruningError, match="needs a PyTorch built-in workload"):
        pruning.prune(_small(), "bsq", epochs=1)


# ----------------------------------------------------------------------------- a short run
@needs_torch
@pytest.mark.slow  # retraining
def test_a_large_strength_lowers_precisions_and_the_result_evaluates(r20):
    kw = {"strength": 3.0, "epochs": 2, "final_epochs": 0, "limit": 128, "threads": 1}
    res = pruning.prune(r20, "bsq", **kw)
    rep = res.report.set_index("layer")
    assert (rep["bits_after"] < rep["bits_before"]).any()
    assert (rep["bits_after"] == rep["bits_before"] - rep["lsb_dropped"] - rep["msb_dropped"]).all()
    for layer in res.workload:
        row = rep.loc[layer.name]
        fmt = layer.meta["weight"]
        assert layer.weight_bits == row["bits_after"] == fmt["bits"] >= 2
        assert fmt["frac_bits"] == r20[layer.name].meta["weight"]["frac_bits"] - row["lsb_dropped"]
        assert np.abs(layer.weights).max() <= (1 << (layer.weight_bits - 1)) - 1
        assert 0 <= row["plane_density"] <= 1
    hist = res.params["history"]
    assert len(hist["loss"]) == 2 and len(hist["bits"]) == 3  # start, after epoch 1, at the end
    assert hist["bits"][-1] == {name: int(b) for name, b in rep["bits_after"].items()}
    assert res.workload.meta["pruning"][-1]["training_data"].startswith("CIFAR-10 test copy, train half")
    score = evaluate(res.workload, subset="holdout", limit=200)
    assert score["n"] == 200 and score["top1"] > 0.1
    again = pruning.prune(r20, "bsq", **kw)  # deterministic
    for a, b in zip(res.workload, again.workload, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
        assert a.meta == b.meta
    one = pruning.prune(r20, "bsq", layers=["layer3.1.conv1"], **kw)  # the other layers keep their precision
    bits = one.report.set_index("layer")["bits_after"]
    assert bits["layer3.1.conv1"] < 8 and (bits.drop("layer3.1.conv1") == 8).all()
    for layer in one.workload:
        if layer.name != "layer3.1.conv1":
            assert layer.meta["weight"] == r20[layer.name].meta["weight"] and layer.weight_bits == 8
