"""TFLite importer and integer ops: every tensor bit-exact against ai-edge-litert; accumulators against the
simulator's reference engine; the imported MobileNet-V2 on every preset; ImageNet top-1."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

_MISSING = [m for m in ("tflite", "ai_edge_litert", "PIL") if importlib.util.find_spec(m) is None]
if _MISSING:
    pytest.skip(f"needs {', '.join(_MISSING)} (pip install 'bitserial-sim[tflite,test]')", allow_module_level=True)

from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

import workloads  # noqa: E402
from simulator import ConfigError, load_arch, preset_names, simulate  # noqa: E402
from simulator.reference import simulate_layer_reference  # noqa: E402
from workloads import Workload, WorkloadError, layer_output  # noqa: E402
from workloads import quantized_ops as q  # noqa: E402
from workloads.datasets import load_cifar10_test, load_image, load_imagenet_val  # noqa: E402
from workloads.importers import tflite as T  # noqa: E402

from .conftest import shared_path  # noqa: E402

DATA = Path(workloads.__file__).parent / "data"
RESNET8 = DATA / "pretrainedResnet_quant.tflite"
RESOLVERS = {"xnnpack": OpResolverType.AUTO, "optimized": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
             "reference": OpResolverType.BUILTIN_REF}


def _interpreter(path, kernels="xnnpack") -> Interpreter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging"
        it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=RESOLVERS[kernels])
    it.allocate_tensors()
    return it


def _invoke(it: Interpreter, model: T.TFLiteModel, image: np.ndarray) -> None:
    x = image[None] if model.tensors[model.inputs[0]].dtype == "uint8" else (image.astype(np.int16) - 128)[None]
    it.set_tensor(model.inputs[0], x.astype(it.get_input_details()[0]["dtype"]))
    it.invoke()


@pytest.fixture(scope="module")
def mobilenet() -> Path:
    return shared_path("workloads", "imagenet-mobilenet-int8-coral", "mobilenet_v2_1.0_224_quant.tflite")


@pytest.fixture(scope="module")
def imagenet_image() -> np.ndarray:
    return load_image(shared_path("workloads", "images-foolbox", "imagenet_00_243.jpg"), 224)


@pytest.fixture(scope="module")
def cifar_image() -> np.ndarray:
    return load_image(DATA / "cifar10_00_3.png", 32)


@pytest.fixture(scope="module")
def models(mobilenet, imagenet_image, cifar_image):
    return {"mobilenet_v2": (mobilenet, imagenet_image), "resnet8": (RESNET8, cifar_image)}


@pytest.fixture(scope="module")
def mobilenet_workload(mobilenet, imagenet_image) -> Workload:
    return T.import_tflite(mobilenet, imagenet_image)


# ----------------------------------------------------------------- fixed-point primitives
def _srdhm_py(a: int, b: int) -> int:
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    t = a * b + ((1 << 30) if a * b >= 0 else 1 - (1 << 30))
    return t >> 31 if t >= 0 else -((-t) >> 31)  # C division: truncation toward zero


def _rdbpot_py(x: int, e: int) -> int:
    mask = (1 << e) - 1
    return (x >> e) + ((x & mask) > (mask >> 1) + (x < 0))


def test_fixed_point_matches_scalar_gemmlowp():
    rng = np.random.default_rng(0)
    x = rng.integers(-(1 << 20), 1 << 20, 2000)
    m = rng.integers(1 << 30, (1 << 31) - 1, 2000)
    e = rng.integers(0, 12, 2000)
    got = q.rounding_divide_by_pot(q.saturating_rounding_doubling_high_mul(x, m), e)
    want = [_rdbpot_py(_srdhm_py(int(a), int(b)), int(c)) for a, b, c in zip(x, m, e)]
    assert got.tolist() == want
    assert q.rounding_divide_by_pot([-3, 3, -5, 5], 1).tolist() == [-2, 2, -3, 3]  # ties away from zero
    # -6 * 0.25 = -1.5: the double-rounding shift ties away from zero, ruy's shift and single rounding tie up
    assert q.multiply_by_quantized_multiplier([-6, 6], 1 << 30, -1).tolist() == [-2, 2]
    assert q.multiply_by_quantized_multiplier([-6, 6], 1 << 30, -1, rounding="ruy").tolist() == [-1, 2]
    assert q.multiply_by_quantized_multiplier([-6, 6], 1 << 30, -1, rounding="single").tolist() == [-1, 2]


def test_quantize_multiplier_and_padding():
    assert q.quantize_multiplier(0.5) == (1 << 30, 0)
    assert q.quantize_multiplier(0.0) == (0, 0)
    m, s = q.quantize_multiplier(0.0123)
    assert (1 << 30) <= m < (1 << 31) and abs(m * 2.0 ** (s - 31) - 0.0123) < 1e-11
    assert q.quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)  # rounds up to 2^31: halved, shift + 1
    assert q.same_padding(224, 3, 2) == (112, 0, 1)  # MobileNet-V2's first conv: (0, 1, 0, 1)
    assert q.same_padding(112, 3, 1) == (112, 1, 1)
    assert q.activation_range("RELU6", 0.0235, 0, "uint8") == (0, 255)
    assert q.activation_range("RELU6", 0.05, 10, "uint8") == (10, 130)


# ----------------------------------------------------------------- (a) every tensor bit-exact
@pytest.mark.parametrize("kernels", sorted(RESOLVERS))
@pytest.mark.parametrize("which", ["mobilenet_v2", "resnet8"])
def test_every_tensor_matches_ai_edge_litert(models, which, kernels):
    path, image = models[which]
    model = T.read_tflite(path)
    ours = T.run_tflite(path, image, kernels=kernels)
    it = _interpreter(path, kernels)
    _invoke(it, model, image)
    checked = 0
    for op in model.ops:
        if op.kind == "SOFTMAX":
            break
        for out in op.outputs:
            ref = it.get_tensor(out)
            assert ours[out].dtype == ref.dtype and ours[out].shape == ref.shape, (op.kind, model.tensors[out].name)
            bad = np.flatnonzero(ours[out] != ref)
            assert bad.size == 0, f"{op.kind} {model.tensors[out].name}: {bad.size} of {ref.size} values differ"
            checked += 1
    assert checked == len(model.ops) - 1  # everything but the SOFTMAX


@pytest.mark.parametrize("which", ["mobilenet_v2", "resnet8"])
def test_batches_score_like_single_images(models, which):
    """tflite_scores runs images in batches, several at once: every image's logits are those of running it alone,
    whatever the batch size and threads (the last batch shorter, a weight override prepared once for all)."""
    path, image = models[which]
    rng = np.random.default_rng(0)
    images = np.concatenate([image[None], rng.integers(0, 256, (4,) + image.shape, dtype=np.uint8)])
    alone = np.stack([T.tflite_logits(path, x) for x in images]).astype(np.int64)
    for size, threads in ((None, None), (1, 2), (2, 1), (2, 3), (5, None), (64, None)):
        got = T.tflite_scores(path, images, batch_size=size, threads=threads)
        np.testing.assert_array_equal(got, alone, err_msg=f"batch {size}, {threads} threads")
    wl = T.import_tflite(path, image)
    fc = wl.layers[-1]
    changed = {layer.name: layer.weights for layer in wl.layers} | {fc.name: fc.weights // 2}
    want = np.stack([T.tflite_logits(path, x, weights_override=changed) for x in images]).astype(np.int64)
    np.testing.assert_array_equal(T.tflite_scores(path, images, weights_override=changed, batch_size=2), want)
    for layer in wl.layers:  # the recorded scales: one per weight scale (per tensor or per channel)
        assert len(layer.meta["fp32_scale"]) == len(layer.meta["weight_scale"])
    with pytest.raises(ValueError, match="batch_size"):
        T.tflite_scores(path, images, batch_size=0)


# ----------------------------------------------------------------- workload layers
@pytest.mark.parametrize("which", ["mobilenet_v2", "resnet8"])
def test_layers_reproduce_accumulators_and_outputs(models, which):
    path, image = models[which]
    model = T.read_tflite(path)
    wl = T.import_tflite(path, image)
    accs = T.tflite_layer_accumulators(path, image)
    tensors = T.run_tflite(path, image)
    n_weighted = sum(op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") for op in model.ops)
    assert len(wl.layers) == len(accs) == n_weighted
    for layer in wl.layers:
        np.testing.assert_array_equal(T.layer_accumulators(layer), accs[layer.name], err_msg=layer.name)
        out = tensors[model.ops[layer.meta["op_index"]].outputs[0]]
        want = out.reshape(-1) if layer.kind == "fc" else out[0].transpose(2, 0, 1)
        np.testing.assert_array_equal(T.layer_requantized(layer), want, err_msg=layer.name)
    for layer in wl.layers[:4] + wl.layers[-2:]:
        for what, signed in (("act", layer.act_signed), ("weight", layer.weight_signed)):  # widths are minimal
            bits = getattr(layer, f"{what}_bits")
            if bits > (2 if signed else 1):
                with pytest.raises(WorkloadError):
                    layer.with_values(**{f"{what}_bits": bits - 1})


def test_mobilenet_layer_shapes(mobilenet_workload):
    first, dw, proj = mobilenet_workload.layers[:3]
    assert first.activations.shape == (3, 224, 224) and first.weights.shape == (32, 3, 3, 3)
    assert first.padding == (0, 1, 0, 1) and first.stride == 2
    assert first.act_signed and first.act_bits == 8 and first.meta["act_dtype_bits"] == 8  # pixel - 128
    assert dw.groups == 32 and dw.weights.shape == (32, 1, 3, 3) and dw.padding == (1, 1, 1, 1)
    assert proj.weights.shape == (16, 32, 1, 1)
    assert len(mobilenet_workload.layers) == 53
    assert mobilenet_workload.layers[-1].weights.shape == (1001, 1280, 1, 1)


def test_several_images_and_roundtrip(tmp_path, cifar_image):
    second = load_image(DATA / "cifar10_01_8.png", 32)
    wl = T.import_tflite(RESNET8, np.stack([cifar_image, second]), name="resnet8x2")
    names = [layer.name for layer in wl.layers]
    assert len(names) == 20 and names[0] == "00_conv@0" and names[10] == "00_conv@1" and names[-1] == "09_fc@1"
    loaded = Workload.load(wl.save(tmp_path / "r8.npz"))
    for a, b in zip(wl.layers, loaded.layers):
        assert a.meta == b.meta
        np.testing.assert_array_equal(T.layer_accumulators(a), T.layer_accumulators(b))


def test_evaluate_and_weight_override(cifar_image):
    second = load_image(DATA / "cifar10_01_8.png", 32)
    images, labels = np.stack([cifar_image, second]), [3, 8]
    base = T.evaluate_tflite(RESNET8, images, labels, label_offset=0)
    assert base == {"top1": 1.0, "top5": 1.0, "n": 2}
    wl = T.import_tflite(RESNET8, cifar_image)
    same = {layer.name: layer.weights for layer in wl.layers}
    assert T.evaluate_tflite(RESNET8, images, labels, label_offset=0, weights_override=same) == base
    np.testing.assert_array_equal(T.tflite_logits(RESNET8, cifar_image, weights_override=same),
                                  T.tflite_logits(RESNET8, cifar_image))
    fc = wl.layers[-1]
    changed = T.tflite_logits(RESNET8, cifar_image, weights_override={fc.name: -fc.weights})
    assert not np.array_equal(changed, T.tflite_logits(RESNET8, cifar_image))


def test_dataset_readers():
    images, labels, names = load_imagenet_val(shared_path("datasets"), slice(0, 2))
    assert images.shape == (2, 224, 224, 3) and images.dtype == np.uint8 and labels.shape == (2,) and len(names) == 2
    full, _, _ = load_imagenet_val(shared_path("datasets"), [1])
    np.testing.assert_array_equal(full[0], images[1])
    images, labels = load_cifar10_test(shared_path("datasets"), slice(0, 3))
    assert images.shape == (3, 32, 32, 3) and labels.tolist() == [0, 0, 0]


# ----------------------------------------------------------------- (b) the simulator's reference engine
def _crop(layer, size: int):
    """The layer on the top-left size x size corner of its real input (the reference engine is slow Python)."""
    return layer.with_values(activations=layer.activations[:, :size, :size])


@pytest.mark.parametrize("which", ["mobilenet_v2", "resnet8"])
def test_reference_engine_reproduces_first_layers(models, which):
    path, image = models[which]
    wl = T.import_tflite(path, image)
    accs = T.tflite_layer_accumulators(path, image)
    arch = load_arch("dadiannao", columns=16)
    for layer in wl.layers[:3]:
        full = accs[layer.name] - np.asarray(layer.meta["bias"], np.int64).reshape(-1, 1, 1)
        part = _crop(layer, 20) if which == "mobilenet_v2" else layer  # MobileNet: a 20x20 crop of the input
        got = simulate_layer_reference(arch, part).output
        oh, ow = part.output_hw
        if part is not layer:  # the crop's last output row / column read padding where the full input has data
            oh, ow = oh - 1, ow - 1
        np.testing.assert_array_equal(got, layer_output(part), err_msg=layer.name)
        np.testing.assert_array_equal(got[:, :oh, :ow], full[:, :oh, :ow], err_msg=layer.name)


# ----------------------------------------------------------------- (c) every preset, fast engine
@pytest.mark.slow
@pytest.mark.parametrize("preset", preset_names())
def test_fast_engine_runs_mobilenet(mobilenet_workload, preset):
    arch = load_arch(preset)
    if arch.serial == "none" and arch.pe_width < max(layer.weight_bits for layer in mobilenet_workload):
        # the 8-bit baseline: uint8 weights are 9 bits once the zero point is subtracted
        with pytest.raises(ConfigError, match=r"weight_bits \(9\) exceeds the PE width"):
            simulate(arch, mobilenet_workload)
        return
    res = simulate(arch, mobilenet_workload)
    assert len(res.layers) == len(mobilenet_workload.layers) and res.cycles > 0


# ----------------------------------------------------------------- (d) ImageNet top-1
@pytest.mark.slow
def test_imagenet_top1_matches_interpreter(mobilenet):
    images, labels, _ = load_imagenet_val(shared_path("datasets"), slice(0, 100))
    model = T.read_tflite(mobilenet)
    logits_index = next(op.inputs[0] for op in model.ops if op.kind == "SOFTMAX")
    it = _interpreter(mobilenet)
    ours = theirs = 0
    for image, label in zip(images, labels):
        _invoke(it, model, image)
        logits = T.tflite_logits(mobilenet, image)
        np.testing.assert_array_equal(logits, it.get_tensor(logits_index).reshape(-1))
        ours += int(np.argmax(logits[1:]) == label)
        theirs += int(np.argmax(it.get_tensor(model.outputs[0]).reshape(-1)[1:]) == label)  # softmax output
    assert ours == theirs
    assert T.evaluate_tflite(mobilenet, images[:10], labels[:10])["top1"] == sum(
        int(np.argmax(T.tflite_logits(mobilenet, x)[1:]) == y) for x, y in zip(images[:10], labels[:10])) / 10
