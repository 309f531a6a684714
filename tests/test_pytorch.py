"""PyTorch importer on the real CIFAR-10 ResNets: BN folding, fixed-point import, accuracy, dataset readers."""

from __future__ import annotations

import numpy as np
import pytest

from workloads import LayerKind, Workload, layer_output
from workloads.quantize import TensorFormat

from .conftest import shared_path

torch = pytest.importorskip("torch", reason="the PyTorch importer needs the optional torch extra")
F = torch.nn.functional

from workloads.datasets import load_cifar10_test, load_imagenet_val  # noqa: E402
from workloads.importers.pytorch import (  # noqa: E402
    FakeQuant,
    _prepare,
    calibrate,
    fold_batchnorm,
    fold_conv_bn,
    import_pytorch,
    layer_quants,
    predict,
    quant_modules,
    quantized_accuracy,
)
from workloads.models.cifar_resnet import CifarResNet, cifar_preprocess, load_cifar_resnet  # noqa: E402

CKPT = {20: "resnet20-12fca82f.th", 56: "resnet56-4bfd9763.th"}
README_TOP1 = {20: 0.8103, 56: 0.8320}  # ../shared/datasets/README.md, fp32, all 10,000 images


def checkpoint(depth: int):
    return shared_path("workloads", "cifar10-resnet-akamaster", CKPT[depth])


@pytest.fixture(scope="module")
def cifar():
    return load_cifar10_test(shared_path("datasets"))


@pytest.fixture(scope="module")
def subset(cifar):
    images, labels = cifar
    return images[::10], labels[::10]  # fixed 1,000 images, 100 per class


@pytest.fixture(scope="module")
def resnet20():
    return load_cifar_resnet(20, checkpoint(20))


@pytest.fixture(scope="module")
def wl20(resnet20, subset):
    return import_pytorch(resnet20, subset[0][:64], preprocess=cifar_preprocess, scheme="dfp16", name="resnet20")


# ------------------------------------------------------------------------------------------ loading
def test_load_checkpoint_mismatch_names_the_file():
    path = checkpoint(20)
    with pytest.raises(ValueError, match="resnet20-12fca82f.th.*ResNet-56"):
        load_cifar_resnet(56, path)
    with pytest.raises(FileNotFoundError, match="nope.th"):
        load_cifar_resnet(20, path.parent / "nope.th")


def test_dataset_readers(cifar, tmp_path):
    images, labels = cifar
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), np.full(10, 1000))
    with pytest.raises(FileNotFoundError, match="cifar10_test.npz"):
        load_cifar10_test(tmp_path)
    with pytest.raises(FileNotFoundError, match="imagenet_val1300.npz"):
        load_imagenet_val(tmp_path)


def test_imagenet_reader():
    pytest.importorskip("PIL", reason="decoding the ImageNet JPEGs needs Pillow")
    images, labels, names = load_imagenet_val(shared_path("datasets"))
    assert images.shape == (1300, 224, 224, 3) and images.dtype == np.uint8
    assert labels.min() >= 0 and labels.max() < 1000 and len(names) == 1300
    assert str(names[0]).startswith("ILSVRC2012_val_")


# ------------------------------------------------------------------------------------------ BN folding
def test_fold_conv_bn_exact_float64():
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(5, 7, 3, padding=1, bias=True).double()
    bn = torch.nn.BatchNorm2d(7).double().eval()
    with torch.no_grad():
        for p in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean):
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(7, generator=gen, dtype=torch.float64) + 0.1)
    x = torch.randn(2, 5, 9, 9, generator=gen, dtype=torch.float64)
    w, b = fold_conv_bn(conv.weight, conv.bias, bn)
    with torch.no_grad():
        ref = bn(conv(x))
        got = F.conv2d(x, w, b, padding=1)
    assert torch.allclose(got, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))


def test_fold_batchnorm_whole_model_exact(resnet20, subset):
    model = load_cifar_resnet(20, checkpoint(20)).double()
    gm = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gm.modules())
    mods = quant_modules(gm)
    assert len(mods) == 20 and all(m.bias is not None for m in mods.values())
    x = cifar_preprocess(subset[0][:16]).double()
    with torch.no_grad():
        ref, got = model(x), gm(x)
    assert torch.allclose(got, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))
    assert resnet20.conv1.weight.dtype == torch.float32  # the original model is untouched (deep copy)


# ------------------------------------------------------------------------------------------ accuracy (1,000 images)
@pytest.fixture(scope="module")
def accuracies(resnet20, subset):
    images, labels = subset
    gm = fold_batchnorm(resnet20)
    stats = calibrate(gm, _prepare(images, cifar_preprocess))
    acc = {"fp32": quantized_accuracy(resnet20, images, labels, "fp32", preprocess=cifar_preprocess)}
    for scheme in ("dfp16", "dfp8", "int8_per_channel"):
        logits = predict(resnet20, images, preprocess=cifar_preprocess, quants=layer_quants(gm, stats, scheme))
        acc[scheme] = float(np.mean(logits.argmax(1) == labels))
    return acc


@pytest.mark.slow  # the accuracies fixture scores 4 quantizations (about 20 s)
def test_fp32_accuracy_close_to_readme(accuracies):
    assert abs(accuracies["fp32"] - README_TOP1[20]) <= 0.03, accuracies


@pytest.mark.slow  # the accuracies fixture scores 4 quantizations (about 20 s)
def test_quantized_accuracy(accuracies):
    fp32 = accuracies["fp32"]
    assert abs(accuracies["dfp16"] - fp32) <= 0.005, accuracies
    assert abs(accuracies["dfp8"] - fp32) <= 0.03, accuracies
    assert abs(accuracies["int8_per_channel"] - fp32) <= 0.03, accuracies


def test_quantized_accuracy_is_not_trivially_equal(resnet20, subset):
    """The bound can fail: 4-bit weights everywhere wreck the model."""
    images, labels = subset
    gm = fold_batchnorm(resnet20)
    quants = layer_quants(gm, calibrate(gm, _prepare(images[:200], cifar_preprocess)), "dfp8")
    for name, q in quants.items():
        w = quant_modules(gm)[name].weight.detach().abs().max()
        quants[name] = type(q)(q.act, TensorFormat("dfp", 3, True, frac_bits=int(np.floor(np.log2(3 / float(w))))))
    logits = predict(resnet20, images[:200], preprocess=cifar_preprocess, quants=quants)
    assert np.mean(logits.argmax(1) == labels[:200]) < 0.6


# ------------------------------------------------------------------------------------------ imported workloads
def test_resnet20_workload_shape_and_bits(wl20):
    assert len(wl20) == 20
    assert sum(layer.kind == LayerKind.CONV for layer in wl20) == 19 and wl20.layers[-1].kind == LayerKind.FC
    assert wl20.layers[0].act_signed and not any(layer.act_signed for layer in wl20.layers[1:])
    for layer in wl20:
        assert layer.act_bits == 16 and layer.weight_bits == 16
        lo, hi = (-(1 << 15), (1 << 15) - 1) if layer.act_signed else (0, (1 << 16) - 1)
        assert lo <= layer.activations.min() and layer.activations.max() <= hi
        assert -(1 << 15) <= layer.weights.min() and layer.weights.max() < (1 << 15)
        assert np.abs(layer.weights).max() >= 1 << 14  # dfp uses the top bit of the range
    assert wl20["layer2.0.conv1"].stride == 2 and wl20["layer2.0.conv1"].padding == (1, 1, 1, 1)


def _real_output(layer):
    acc = layer_output(layer).astype(np.float64)
    bias = np.asarray(layer.meta["bias"], dtype=np.float64)
    scale = np.asarray(layer.meta["accumulator_scale"])
    shape = (-1, 1, 1) if layer.kind == LayerKind.CONV else (-1,)
    return (acc + bias.reshape(shape)) * scale.reshape(shape)


def test_accumulators_times_scales_equal_float_conv(wl20, resnet20):
    gm = fold_batchnorm(resnet20)
    mods = quant_modules(gm)
    for layer in wl20:
        mod = mods[layer.meta["module"]]
        a_fmt, w_fmt = (TensorFormat.from_meta(layer.meta[k]) for k in ("act", "weight"))
        a = torch.from_numpy(a_fmt.dequantize(layer.activations))[None]
        wq = torch.from_numpy(w_fmt.dequantize(layer.weights))
        bq = torch.from_numpy(np.asarray(layer.meta["bias"], dtype=np.float64) * layer.meta["accumulator_scale"])
        wf, bf = mod.weight.detach().double(), mod.bias.detach().double()
        if layer.kind == LayerKind.CONV:
            exact = F.conv2d(a, wq, bq, stride=mod.stride, padding=mod.padding)[0]
            folded = F.conv2d(a, wf, bf, stride=mod.stride, padding=mod.padding)[0]
        else:
            exact, folded = F.linear(a, wq, bq)[0], F.linear(a, wf, bf)[0]
        got = _real_output(layer)
        span = float(folded.abs().max())
        np.testing.assert_allclose(got, exact.numpy(), rtol=1e-9, atol=1e-9 * span, err_msg=layer.name)
        # 16-bit weights: the folded float layer on the same quantized inputs agrees closely
        np.testing.assert_allclose(got, folded.numpy(), rtol=0, atol=2e-3 * span, err_msg=layer.name)


def test_layer_inputs_chain(wl20):
    """The next layer's integers are the quantized ReLU of this layer's real output (inside a residual block)."""
    first, second = wl20["layer1.0.conv1"], wl20["layer1.0.conv2"]
    fmt = TensorFormat.from_meta(second.meta["act"])
    expected = fmt.quantize(np.maximum(_real_output(first), 0))
    assert np.mean(expected == second.activations) > 0.999
    assert np.abs(expected - second.activations).max() <= 1


def test_import_is_deterministic_and_saves(wl20, resnet20, subset, tmp_path):
    again = import_pytorch(resnet20, subset[0][:64], preprocess=cifar_preprocess, scheme="dfp16", name="resnet20")
    assert again.digest() == wl20.digest()
    loaded = Workload.load(wl20.save(tmp_path / "r20.npz"))
    assert loaded.digest() == wl20.digest() and loaded["conv1"].meta == wl20["conv1"].meta


@pytest.mark.parametrize("scheme", ["dfp8", "int8_per_channel"])
def test_import_8bit(resnet20, subset, scheme):
    wl = import_pytorch(resnet20, subset[0][:32], preprocess=cifar_preprocess, scheme=scheme, name="r20")
    for layer in wl:
        assert layer.act_bits == 8 and layer.weight_bits == 8
        assert (-128 if layer.act_signed else 0) <= layer.activations.min() and layer.activations.max() <= 255
    if scheme == "int8_per_channel":
        layer = wl["layer3.1.conv2"]
        assert len(layer.meta["weight"]["scale"]) == 64 and np.abs(layer.weights).max() == 127
        assert layer.weights.min() >= -127
        assert np.array_equal(np.abs(layer.weights).reshape(64, -1).max(1), np.full(64, 127))


def test_fake_quant_logits_match_workload(wl20, resnet20, subset):
    """The captured FC input gives the fake-quantized model's logits for image 0."""
    gm = fold_batchnorm(resnet20)
    quants = layer_quants(gm, calibrate(gm, _prepare(subset[0][:64], cifar_preprocess)), "dfp16")
    logits = FakeQuant(gm, quants)(cifar_preprocess(subset[0][:1]))[0].double().numpy()
    np.testing.assert_allclose(_real_output(wl20["linear"]), logits, rtol=1e-5, atol=1e-5)


def test_resnet56_workload(subset):
    model = load_cifar_resnet(56, checkpoint(56))
    wl = import_pytorch(model, subset[0][:8], preprocess=cifar_preprocess, scheme="dfp16", name="resnet56")
    assert len(wl) == 56 and sum(layer.kind == LayerKind.CONV for layer in wl) == 55
    assert wl.layers[-1].kind == LayerKind.FC and wl.layers[-1].weights.shape == (10, 64)


def test_fold_fresh_model():
    model = CifarResNet(20)
    assert len(quant_modules(fold_batchnorm(model))) == 20


# ------------------------------------------------------------------------------------------ full test set (slow)
@pytest.mark.slow
@pytest.mark.parametrize("depth", [20, 56])
def test_full_test_set_accuracy(depth, cifar):
    images, labels = cifar
    model = load_cifar_resnet(depth, checkpoint(depth))
    fp32 = quantized_accuracy(model, images, labels, "fp32", preprocess=cifar_preprocess)
    assert abs(fp32 - README_TOP1[depth]) < 5e-4
    calib = images[::10]
    dfp16 = quantized_accuracy(model, images, labels, "dfp16", calib, preprocess=cifar_preprocess)
    dfp8 = quantized_accuracy(model, images, labels, "dfp8", calib, preprocess=cifar_preprocess)
    int8 = quantized_accuracy(model, images, labels, "int8_per_channel", calib, preprocess=cifar_preprocess)
    assert abs(dfp16 - fp32) <= 0.005
    assert abs(dfp8 - fp32) <= 0.02 and abs(int8 - fp32) <= 0.02


def test_several_samples_give_one_layer_set_each(wl20, resnet20, subset):
    images = subset[0][:64]
    wl = import_pytorch(resnet20, images, preprocess=cifar_preprocess, scheme="dfp16", name="r20", samples=3)
    assert len(wl) == 3 * len(wl20) and wl.layers[0].name == "conv1@0" and wl.layers[-1].name == "linear@2"
    first = wl.layers[:len(wl20)]
    for mine, single in zip(first, wl20.layers):  # sample 0 with the same calibration = the one-sample import
        np.testing.assert_array_equal(mine.activations, single.activations)
        np.testing.assert_array_equal(mine.weights, single.weights)
    assert not np.array_equal(wl["conv1@1"].activations, wl["conv1@0"].activations)
    with pytest.raises(ValueError, match="samples"):
        import_pytorch(resnet20, images[:2], preprocess=cifar_preprocess, scheme="dfp16", samples=3)
