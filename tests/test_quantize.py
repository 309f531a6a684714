"""Fixed-point quantizers (numpy) and Stripes-style precision profiling (needs torch)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workloads.quantize import (
    LayerQuant,
    TensorFormat,
    accumulator_scale,
    choose_layer_quant,
    dfp_format,
    dfp_frac_bits,
    linear_format,
    qrange,
    quantize_bias,
    requantize_dfp,
)

from .conftest import shared_path


# ------------------------------------------------------------------------------------------ numpy quantizers
def test_qrange():
    assert qrange(8, True) == (-128, 127) and qrange(8, False) == (0, 255)
    assert qrange(8, True, symmetric=True) == (-127, 127) and qrange(1, False) == (0, 1)
    with pytest.raises(ValueError):
        qrange(1, True)


@given(m=st.floats(1e-6, 1e6), bits=st.integers(2, 16), signed=st.booleans())
def test_dfp_frac_bits_is_the_tightest_unsaturated_split(m, bits, signed):
    qmax = qrange(bits, signed)[1]
    f = dfp_frac_bits(m, bits, signed)
    assert math.ldexp(m, f) <= qmax < math.ldexp(m, f + 1)
    fmt = dfp_format(m, bits, signed)
    assert fmt.quantize(np.array([m]))[0] == round(math.ldexp(m, f)) or math.ldexp(m, f) % 1 == 0.5


def test_dfp_examples():
    assert dfp_frac_bits(1.0, 8, True) == 6  # 1.0 * 64 = 64 <= 127 < 128
    assert dfp_frac_bits(2.64, 8, True) == 5  # the normalized CIFAR image
    assert dfp_frac_bits(1.0, 8, False) == 7  # 128 <= 255
    assert dfp_frac_bits(300.0, 8, True) == -2  # scale 4
    assert dfp_frac_bits(0.0, 8, True) == 7


def test_quantize_rounds_half_to_even_and_saturates():
    fmt = TensorFormat("dfp", 4, True, frac_bits=1)  # step 0.5, range [-8, 7]
    q = fmt.quantize(np.array([0.25, 0.75, -0.25, 100.0, -100.0, 1.0]))
    assert q.tolist() == [0, 2, 0, 7, -8, 2]
    assert fmt.dequantize(q).tolist() == [0.0, 1.0, 0.0, 3.5, -4.0, 1.0]


def test_linear_per_channel_and_meta_roundtrip():
    w = np.array([[0.5, -1.0], [0.0, 0.0], [2.0, 0.1]])
    fmt = linear_format(np.abs(w).max(1), 8, True)
    q = fmt.quantize(w)
    assert q.tolist() == [[64, -127], [0, 0], [127, 6]]
    meta = json.loads(json.dumps(fmt.to_meta()))
    assert TensorFormat.from_meta(meta) == fmt
    dfp = dfp_format(3.3, 16, False)
    assert TensorFormat.from_meta(json.loads(json.dumps(dfp.to_meta()))) == dfp


def test_choose_layer_quant_and_bias():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 3))
    q8 = choose_layer_quant("dfp8", 2.5, True, w)
    assert q8.act.signed and q8.act.bits == 8 and q8.weight.bits == 8
    assert np.abs(q8.weight.quantize(w)).max() >= 64  # uses the top bit
    qc = choose_layer_quant("int8_per_channel", 6.0, False, w)
    assert qc.act.range == (0, 255) and qc.weight.per_channel
    assert np.array_equal(np.abs(qc.weight.quantize(w)).reshape(4, -1).max(1), np.full(4, 127))
    bias = rng.normal(size=4)
    qb = quantize_bias(bias, qc)
    np.testing.assert_allclose(qb * accumulator_scale(qc, 4), bias, atol=accumulator_scale(qc, 4).max())
    with pytest.raises(ValueError, match="unknown quantization scheme"):
        choose_layer_quant("fp8", 1.0, False, w)


@given(
    q=st.lists(st.integers(-(1 << 15), (1 << 15) - 1), min_size=1, max_size=50),
    old=st.integers(-4, 20), bits=st.integers(2, 16), shift=st.integers(-3, 8),
)
def test_requantize_dfp_equals_quantizing_the_real_values(q, old, bits, shift):
    q = np.array(q)
    new = TensorFormat("dfp", bits, True, frac_bits=old - shift)
    real = np.ldexp(q.astype(np.float64), -old)
    assert np.array_equal(requantize_dfp(q, old, new), new.quantize(real))


# ------------------------------------------------------------------------------------------ profiling (torch)
@pytest.fixture(scope="module")
def r20():
    pytest.importorskip("torch", reason="profiling runs the model in PyTorch (optional torch extra)")
    from workloads.models.cifar_resnet import load_cifar_resnet

    return load_cifar_resnet(20, shared_path("workloads", "cifar10-resnet-akamaster", "resnet20-12fca82f.th"))


@pytest.fixture(scope="module")
def images():
    from workloads.datasets import load_cifar10_test

    return load_cifar10_test(shared_path("datasets"))[0][::250]  # 40 images, 4 per class


PROFILED = ["conv1", "layer2.0.conv1", "linear"]


@pytest.fixture(scope="module")
def profile(r20, images):
    from workloads.models.cifar_resnet import cifar_preprocess
    from workloads.profiling import profile_precisions

    return profile_precisions(r20, images, preprocess=cifar_preprocess, target_agreement=0.95, layers=PROFILED)


def test_profile_widths_and_joint_target(profile, r20, images):
    from workloads.importers.pytorch import predict
    from workloads.models.cifar_resnet import cifar_preprocess
    from workloads.profiling import profile_quants

    assert profile["layer"].tolist() == PROFILED
    assert ((profile.act_bits >= 1) & (profile.act_bits <= 16)).all()
    assert ((profile.weight_bits >= 2) & (profile.weight_bits <= 16)).all()
    assert profile.act_signed.tolist() == [True, False, False]
    assert profile.attrs["joint_ok"]
    ref = predict(r20, images, preprocess=cifar_preprocess).argmax(1)
    got = predict(r20, images, preprocess=cifar_preprocess, quants=profile_quants(profile)).argmax(1)
    assert np.mean(ref == got) >= 0.95
    assert profile.act_bits.max() < 16 and profile.weight_bits.max() < 16  # it does reduce precision


def test_profile_rel_error_mode(r20, images):
    from workloads.models.cifar_resnet import cifar_preprocess
    from workloads.profiling import profile_precisions

    loose = profile_precisions(r20, images[:10], preprocess=cifar_preprocess, max_rel_error=0.2, layers=["linear"],
                               msb_candidates=0)
    tight = profile_precisions(r20, images[:10], preprocess=cifar_preprocess, max_rel_error=0.002,
                               layers=["linear"], msb_candidates=0)
    assert loose.attrs["joint_ok"] and tight.attrs["joint_ok"]
    assert loose.act_bits[0] < tight.act_bits[0] and loose.weight_bits[0] < tight.weight_bits[0]


def test_apply_profile_requantizes_workload(profile, r20, images):
    from workloads.importers.pytorch import import_pytorch
    from workloads.models.cifar_resnet import cifar_preprocess
    from workloads.profiling import apply_profile

    wl = import_pytorch(r20, images, preprocess=cifar_preprocess, scheme="dfp16", name="r20")
    out = apply_profile(wl, profile)
    assert len(out) == len(wl) and "profile" in out.meta
    for row in profile.itertuples():
        old, new = wl[row.layer], out[row.layer]
        assert new.act_bits == row.act_bits and new.weight_bits == row.weight_bits
        assert new.act_signed == old.act_signed
        a_old, a_new = (TensorFormat.from_meta(x.meta["act"]) for x in (old, new))
        lo, hi = a_new.range
        real = a_old.dequantize(old.activations)
        inside = (real >= lo * a_new.scale_array()) & (real <= hi * a_new.scale_array())
        err = np.abs(a_new.dequantize(new.activations) - real)
        assert err[inside].max() <= a_new.scale_array() / 2 + 1e-12
    untouched = [layer.name for layer in wl if layer.name not in set(profile.layer)]
    assert all(out[n] is wl[n] for n in untouched)
    with pytest.raises(ValueError, match="dynamic fixed point"):
        apply_profile(import_pytorch(r20, images[:4], preprocess=cifar_preprocess, scheme="int8_per_channel"), profile)


def test_import_with_profile(profile, r20, images):
    from workloads.importers.pytorch import import_pytorch
    from workloads.models.cifar_resnet import cifar_preprocess

    wl = import_pytorch(r20, images[:8], preprocess=cifar_preprocess, scheme="dfp16", profile=profile)
    for row in profile.itertuples():
        layer = wl[row.layer]
        assert (layer.act_bits, layer.weight_bits) == (row.act_bits, row.weight_bits)
        assert layer.meta["act"]["frac_bits"] == row.act_frac_bits
    assert wl["layer1.0.conv1"].act_bits == 16


def test_quant_layer_meta_is_json():
    q = LayerQuant(dfp_format(1.0, 8, False), linear_format(np.array([1.0, 2.0]), 8, True))
    assert json.loads(json.dumps(q.to_meta()))["weight"]["scale"] == [1 / 127, 2 / 127]
