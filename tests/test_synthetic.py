"""Tests of the seeded synthetic workloads (workloads/synthetic.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads import synthetic
from workloads.layer import LayerKind
from workloads.synthetic import LayerShape, ValueModel, build, network_shapes, random_values
from workloads.workload import Workload

ALEXNET = [  # name, activations, weights, stride, padding, act_bits, weight_bits, output hw
    ("conv1", (3, 227, 227), (96, 3, 11, 11), 4, 0, 8, 9, (55, 55)),
    ("conv2", (96, 27, 27), (256, 96, 5, 5), 1, 2, 7, 9, (27, 27)),
    ("conv3", (256, 13, 13), (384, 256, 3, 3), 1, 1, 5, 8, (13, 13)),
    ("conv4", (384, 13, 13), (384, 384, 3, 3), 1, 1, 6, 9, (13, 13)),
    ("conv5", (384, 13, 13), (256, 384, 3, 3), 1, 1, 6, 9, (13, 13)),
    ("fc6", (9216,), (4096, 9216), 1, 0, 5, 6, (1, 1)),
    ("fc7", (4096,), (4096, 4096), 1, 0, 5, 4, (1, 1)),
    ("fc8", (4096,), (1000, 4096), 1, 0, 4, 7, (1, 1)),
]


def _kinds(w: Workload) -> dict[str, int]:
    out: dict[str, int] = {}
    for layer in w:
        out[layer.kind.value] = out.get(layer.kind.value, 0) + 1
    return out


def _in_range(arr: np.ndarray, bits: int, signed: bool) -> bool:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return bool(arr.min() >= lo and arr.max() <= hi)


# ----------------------------------------------------------------------------- shapes
def test_names() -> None:
    assert synthetic.names() == ["alexnet", "vgg16", "resnet50", "mobilenet_v2", "resnet20", "bert_base"]


def test_alexnet_exact_shapes_precisions_and_outputs() -> None:
    w = build("alexnet")
    assert len(w) == 8
    for layer, (name, a, wt, stride, pad, ab, wb, hw) in zip(w, ALEXNET, strict=True):
        assert layer.name == name
        assert layer.activations.shape == a and layer.weights.shape == wt
        assert layer.stride == stride and layer.padding == (pad,) * 4 and layer.groups == 1
        assert (layer.act_bits, layer.weight_bits) == (ab, wb)
        assert not layer.act_signed and layer.weight_signed
        assert layer.output_hw == hw
        assert layer.activations.dtype == np.int32 and layer.weights.dtype == np.int32
        assert _in_range(layer.activations, ab, False) and _in_range(layer.weights, wb, True)
    # conv5 output 13x13 pooled to 6x6 feeds fc6
    assert w["conv5"].out_channels * 6 * 6 == w["fc6"].in_channels


def test_resnet50() -> None:
    w = build("resnet50")
    assert len(w) == 54 and _kinds(w) == {"conv": 53, "fc": 1}
    assert 4.0e9 < w.macs < 4.2e9
    assert w["conv1"].weights.shape == (64, 3, 7, 7) and w["conv1"].output_hw == (112, 112)
    assert w["layer1.0.conv1"].activations.shape == (64, 56, 56)
    # v1.5: stride 2 in the 3x3 conv and in the projection shortcut of the first block of stages 2-4
    for stage, hw in [(2, (28, 28)), (3, (14, 14)), (4, (7, 7))]:
        assert w[f"layer{stage}.0.conv1"].stride == 1
        assert w[f"layer{stage}.0.conv2"].stride == 2 and w[f"layer{stage}.0.conv2"].output_hw == hw
        assert w[f"layer{stage}.0.downsample"].stride == 2 and w[f"layer{stage}.0.downsample"].output_hw == hw
    assert sum(layer.name.endswith("downsample") for layer in w) == 4
    assert w["fc"].weights.shape == (1000, 2048)


def test_vgg16() -> None:
    w = build("vgg16")
    assert _kinds(w) == {"conv": 13, "fc": 3}
    assert 15.3e9 < w.macs < 15.6e9
    assert w["conv5_3"].activations.shape == (512, 14, 14)
    assert w["fc6"].weights.shape == (4096, 25088)


def test_mobilenet_v2() -> None:
    w = build("mobilenet_v2")
    assert 290e6 < w.macs < 320e6
    dw = [layer for layer in w if layer.is_depthwise]
    assert len(dw) == 17
    assert all(layer.weights.shape == (layer.in_channels, 1, 3, 3) for layer in dw)
    assert "block0.expand" not in {layer.name for layer in w}  # t = 1: no expansion conv
    assert w["block0.dw"].in_channels == 32 and w["block1.expand"].out_channels == 96
    assert w["conv_last"].weights.shape == (1280, 320, 1, 1) and w["conv_last"].output_hw == (7, 7)
    assert w["fc"].weights.shape == (1000, 1280)


def test_resnet20() -> None:
    w = build("resnet20")
    assert _kinds(w) == {"conv": 19, "fc": 1}
    assert 40e6 < w.macs < 41.5e6
    assert w["layer3.0.conv1"].stride == 2 and w["layer3.2.conv2"].output_hw == (8, 8)


def test_bert_base() -> None:
    w = build("bert_base")
    assert len(w) == 72 and _kinds(w) == {"gemm": 72}
    assert w["l0.q"].activations.shape == (128, 768) and w["l11.ffn2"].activations.shape == (128, 3072)
    assert w["l5.ffn1"].weights.shape == (3072, 768)
    assert all(layer.act_signed and layer.act_bits == 8 and layer.weight_bits == 8 for layer in w)
    assert w["l0.q"].activations.min() < 0


@pytest.mark.parametrize("name", synthetic.names())
def test_shapes_agree_with_built_layers(name: str) -> None:
    shapes = network_shapes(name)
    w = build(name, max_layers=6)
    for s, layer in zip(shapes, w, strict=False):
        assert isinstance(s, LayerShape) and s.name == layer.name and s.kind == layer.kind.value
        assert s.activation_shape == layer.activations.shape and s.weight_shape == layer.weights.shape
        assert s.output_hw == layer.output_hw and s.macs == layer.macs
    names = [s.name for s in shapes]
    assert len(set(names)) == len(names) and max(map(len, names)) <= 20
    # default precision: 8-bit everywhere except alexnet's per-layer profile
    if name != "alexnet":
        assert all((s.act_bits, s.weight_bits) == (8, 8) for s in shapes)


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("model", list(ValueModel))
def test_same_seed_identical_different_seed_differs(model: ValueModel) -> None:
    a = build("alexnet", seed=3, value_model=model, max_layers=3)
    b = build("alexnet", seed=3, value_model=model, max_layers=3)
    c = build("alexnet", seed=4, value_model=model, max_layers=3)
    assert a.digest() == b.digest()
    for la, lb, lc in zip(a, b, c, strict=True):
        assert np.array_equal(la.activations, lb.activations) and np.array_equal(la.weights, lb.weights)
        assert not np.array_equal(la.activations, lc.activations) and not np.array_equal(la.weights, lc.weights)


def test_values_do_not_depend_on_max_layers() -> None:
    short, longer = build("resnet20", seed=7, max_layers=2), build("resnet20", seed=7, max_layers=5)
    assert len(short) == 2 and len(longer) == 5
    for ls, ll in zip(short, longer, strict=False):
        assert np.array_equal(ls.activations, ll.activations) and np.array_equal(ls.weights, ll.weights)
    assert len(build("resnet20", max_layers=1000)) == 20


def test_alexnet_zero_fraction() -> None:
    """zero_fraction counts forced zeros; uniform draws add 1/2**p natural zeros among the rest."""
    w = build("alexnet")
    for layer in w:
        q = 1.0 / (1 << layer.act_bits)
        measured = float(np.mean(layer.activations == 0))
        assert abs(measured - (0.4 + 0.6 * q)) < 0.02, layer.name
        assert abs((measured - q) / (1 - q) - 0.4) < 0.02, layer.name  # forced fraction, natural zeros removed
        assert float(np.mean(layer.weights == 0)) < 1.0 / (1 << (layer.weight_bits - 1))  # no forced weight zeros
    assert w.meta["zero_fraction"] == 0.4


def test_zero_fraction_override_and_models() -> None:
    assert float(np.mean(build("resnet20", zero_fraction=0.0, max_layers=2)[1].activations == 0)) < 0.02
    assert float(np.mean(build("resnet20", zero_fraction=0.9, max_layers=2)[1].activations == 0)) > 0.89
    relu = build("resnet20", value_model="relu", max_layers=2)[1]
    assert 0.45 < float(np.mean(relu.activations == 0)) < 0.6
    assert relu.weights.min() < 0 < relu.weights.max()  # weights drawn gaussian under relu
    assert build("resnet20", value_model="gaussian", max_layers=1).meta["zero_fraction"] == 0.0


@pytest.mark.parametrize("model", [ValueModel.GAUSSIAN, ValueModel.LAPLACE])
def test_bell_models_scale(model: ValueModel) -> None:
    x = random_values(np.random.default_rng(0), 200_000, 12, True, model, 0.0).astype(np.float64)
    hi = 2047
    assert abs(x.mean()) < 0.01 * hi
    assert 0.3 * hi < x.std() < 0.36 * hi  # about 3 std at the range limit
    assert x.max() == hi or model == ValueModel.GAUSSIAN  # Laplace tails reach (and clip at) the limit
    u = random_values(np.random.default_rng(0), 200_000, 8, False, model, 0.0)
    assert u.min() == 0 and u.max() <= 255 and u.mean() > 40  # unsigned: absolute value


def test_uniform_covers_full_range() -> None:
    x = random_values(np.random.default_rng(1), 50_000, 4, True, "uniform", 0.0)
    assert set(np.unique(x).tolist()) == set(range(-8, 8))
    counts = np.bincount(x + 8)
    assert counts.min() > 0.8 * counts.mean()


@settings(max_examples=60, deadline=None, database=None)
@given(
    bits=st.integers(1, 16),
    signed=st.booleans(),
    model=st.sampled_from(list(ValueModel)),
    zf=st.floats(0.0, 1.0),
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple),
    seed=st.integers(0, 2**32),
)
def test_random_values_properties(bits: int, signed: bool, model: ValueModel, zf: float, shape: tuple,
                                  seed: int) -> None:
    if signed and bits < 2:
        with pytest.raises(ValueError):
            random_values(np.random.default_rng(seed), shape, bits, signed, model, zf)
        return
    base = random_values(np.random.default_rng(seed), shape, bits, signed, model, 0.0)
    x = random_values(np.random.default_rng(seed), shape, bits, signed, model, zf)
    assert x.dtype == np.int32 and x.shape == shape and _in_range(x, bits, signed)
    forced = round(zf * x.size)
    changed = x != base
    assert np.all(x[changed] == 0)  # forcing only writes zeros over the same draw
    assert np.count_nonzero(x == 0) >= forced
    assert np.count_nonzero(changed) <= forced


def test_precision_overrides_apply_to_all_layers() -> None:
    w = build("alexnet", act_bits=3, weight_bits=2, max_layers=4)
    for layer in w:
        assert (layer.act_bits, layer.weight_bits) == (3, 2)
        assert _in_range(layer.activations, 3, False) and _in_range(layer.weights, 2, True)
    assert w.meta["act_bits"] == 3


def test_meta_and_roundtrip(tmp_path: Path) -> None:
    w = build("mobilenet_v2", seed=5, value_model=ValueModel.LAPLACE, zero_fraction=0.25, max_layers=4)
    assert {k: w.meta[k] for k in ("generator", "network", "seed", "value_model", "zero_fraction")} == {
        "generator": "synthetic", "network": "mobilenet_v2", "seed": 5, "value_model": "laplace", "zero_fraction": 0.25,
    }
    back = Workload.load(w.save(tmp_path / "w.npz"))
    assert back.digest() == w.digest() and back.meta == w.meta
    assert back["block0.dw"].kind == LayerKind.CONV and back["block0.dw"].is_depthwise


# ----------------------------------------------------------------------------- validation
def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"'resnet51'.*alexnet.*bert_base"):
        network_shapes("resnet51")
    with pytest.raises(ValueError, match=r"'resnet51'.*alexnet"):
        build("resnet51")
    with pytest.raises(ValueError, match=r"'poisson'.*uniform.*laplace.*gaussian.*relu"):
        build("resnet20", value_model="poisson")
    with pytest.raises(ValueError, match="poisson"):
        random_values(np.random.default_rng(0), 4, 8, False, "poisson", 0.0)
    for zf in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="zero_fraction"):
            build("resnet20", zero_fraction=zf, max_layers=1)
        with pytest.raises(ValueError, match="zero_fraction"):
            random_values(np.random.default_rng(0), 4, 8, False, "uniform", zf)
    with pytest.raises(ValueError, match="weight_bits"):
        build("resnet20", weight_bits=1)
    with pytest.raises(ValueError, match="act_bits"):
        build("resnet20", act_bits=17)
    with pytest.raises(ValueError, match="max_layers"):
        build("resnet20", max_layers=0)
    with pytest.raises(ValueError, match="seed"):
        build("resnet20", seed=-1)
