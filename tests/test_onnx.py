"""ONNX importer (workloads/importers/onnx.py) on small models built here with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workloads import WorkloadError, layer_output

onnx = pytest.importorskip("onnx", reason="the onnx extra (pip install onnx onnxruntime) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra (pip install onnx onnxruntime) is not installed")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from workloads.importers.onnx import dfp_quantize, import_onnx, requantize  # noqa: E402

OPSET = [helper.make_opsetid("", 13)]


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_float_net(path: Path, seed: int = 0) -> Path:
    """x (N, 3, 8, 8) -> Conv 3->4 3x3 pad 1 stride 2 -> Relu -> Flatten -> Gemm 64 -> 5 (transB=1)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 4).astype(np.float32)
    fw = rng.normal(0, 0.2, (5, 64)).astype(np.float32)
    fb = rng.normal(0, 0.1, 5).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc1", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "floatnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 4, 4, 4])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fw, "fw"), (fb, "fb"))])
    return _save(graph, path)


def build_qlinear_net(path: Path, x_zp: int = 128, seed: int = 1) -> Path:
    """x uint8 (1, 4, 6, 6) -> QLinearConv 4->3 3x3 pad 1 (int8 weights, per-channel scales, int32 bias).

    The weights stay within 7 bits ([-64, 63], onnxruntime's ``reduce_range``): on x86 CPUs without VNNI,
    onnxruntime's u8s8 kernel adds pairs of uint8 x int8 products into saturating int16 lanes (vpmaddubsw), so
    with full-range weights its accumulators depend on the CPU (23 of 108 outputs off by up to 3 for x_zp = 128,
    reproduced by emulating the saturation over the NHWC im2col order). Within 7 bits a pair cannot saturate
    (2 * 255 * 64 < 2^15) and every CPU computes the exact sums our importer computes."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-64, 64, (3, 4, 3, 3)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(x_zp, np.uint8), "x_zp"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([0.004, 0.006, 0.005], np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(3, np.int8), "w_zp"),
        numpy_helper.from_array(np.array(0.35, np.float32), "y_scale"),
        numpy_helper.from_array(np.array(120, np.uint8), "y_zp"),
        numpy_helper.from_array(rng.integers(-2000, 2000, 3).astype(np.int32), "bias"),
    ]
    node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp",
                                            "bias"], ["y"], name="qconv", pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "qnet", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 3, 6, 6])], inits)
    return _save(graph, path)


def _run_all(path: Path, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return _run_all(path, x)[0]


def test_dfp_quantize_power_of_two_scale():
    x = np.array([0.5, -1.9, 0.01, 1.2])
    q, frac, signed = dfp_quantize(x, 8)
    assert signed and frac == 6 and q.tolist() == [32, -122, 1, 77]  # 1.9 * 64 = 121.6 <= 127, * 128 > 127
    q, frac, signed = dfp_quantize(np.array([0.0, 3.0]), 8)
    assert not signed and frac == 6 and q.max() == 192  # unsigned: 3 * 64 = 192 <= 255
    assert dfp_quantize(np.zeros(3), 8)[0].tolist() == [0, 0, 0]


def test_float_net_layers_match_onnxruntime(tmp_path):
    path = build_float_net(tmp_path / "net.onnx")
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (2, 3, 8, 8)).astype(np.float32)
    wl = import_onnx(path, {"x": x}, bits=16)
    assert [layer.name for layer in wl] == ["conv1@0", "conv1@1", "fc1@0", "fc1@1"]
    conv = wl["conv1@0"]
    assert conv.kind == "conv" and conv.stride == 2 and conv.padding == (1, 1, 1, 1)
    assert conv.act_signed and conv.act_bits == 16 and conv.activations.shape == (3, 8, 8)
    fc = wl["fc1@1"]
    assert fc.kind == "fc" and fc.weights.shape == (5, 64) and not fc.act_signed  # after a ReLU

    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    y, c = _run_all(path, x)
    for n in range(2):
        layer = wl[f"fc1@{n}"]
        real = layer_output(layer) * layer.meta["act_scale"] * layer.meta["weight_scale"] + inits["fb"]
        np.testing.assert_allclose(real, y[n], atol=2e-3 * np.abs(y).max())
    for n in range(2):  # the conv accumulators rescaled match onnxruntime's float conv (16-bit quantization)
        layer = wl[f"conv1@{n}"]
        real = layer_output(layer) * layer.meta["act_scale"] * layer.meta["weight_scale"] + inits["b"][:, None, None]
        np.testing.assert_allclose(real, c[n], atol=1e-3 * np.abs(c).max())


def test_float_net_8_bits_within_tolerance(tmp_path):
    path = build_float_net(tmp_path / "net.onnx", seed=5)
    x = np.random.default_rng(4).normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    wl = import_onnx(path, {"x": x}, name="tiny8")
    assert wl.name == "tiny8" and [layer.name for layer in wl] == ["conv1", "fc1"]
    assert all(layer.act_bits == 8 and layer.weight_bits == 8 for layer in wl)
    y = _run(path, x)[0]
    fc = wl["fc1"]
    fb = numpy_helper.to_array(next(t for t in onnx.load(str(path)).graph.initializer if t.name == "fb"))
    real = layer_output(fc) * fc.meta["act_scale"] * fc.meta["weight_scale"] + fb
    np.testing.assert_allclose(real, y, atol=0.05 * np.abs(y).max())


@pytest.mark.parametrize("x_zp", [128, 0, 37])
def test_qlinearconv_keeps_integers_and_requantizes_exactly(tmp_path, x_zp):
    path = build_qlinear_net(tmp_path / "q.onnx", x_zp=x_zp)
    x = np.random.default_rng(9).integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)
    wl = import_onnx(path, {"x": x})
    (layer,) = wl.layers
    np.testing.assert_array_equal(layer.activations, x[0].astype(np.int32) - x_zp)
    model = onnx.load(str(path))
    w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w"))
    np.testing.assert_array_equal(layer.weights, w.astype(np.int32))
    assert (layer.act_bits, layer.act_signed) == {128: (8, True), 0: (8, False), 37: (9, True)}[x_zp]
    # accumulators: an independent integer convolution
    acc = layer_output(layer)
    xp = np.pad(x[0].astype(np.int64) - x_zp, ((0, 0), (1, 1), (1, 1)))
    ref = np.zeros((3, 6, 6), np.int64)
    for i in range(3):
        for j in range(3):
            ref += np.einsum("kc,chw->khw", w[:, :, i, j].astype(np.int64), xp[:, i:i + 6, j:j + 6])
    np.testing.assert_array_equal(acc, ref)
    np.testing.assert_array_equal(requantize(layer, acc), _run(path, x)[0])


def test_errors(tmp_path):
    path = build_float_net(tmp_path / "net.onnx")
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(WorkloadError, match="'x'"):
        import_onnx(path, {})
    with pytest.raises(WorkloadError, match="missing.onnx"):
        import_onnx(tmp_path / "missing.onnx", {"x": x})
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(WorkloadError, match="bad.onnx"):
        import_onnx(bad, {"x": x})


def test_qdq_conv_keeps_integers(tmp_path):
    """QuantizeLinear -> DequantizeLinear -> Conv (weights: DequantizeLinear of an int8 initializer)."""
    rng = np.random.default_rng(11)
    w = rng.integers(-100, 100, (2, 3, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
             numpy_helper.from_array(np.array(10, np.uint8), "xz"),
             numpy_helper.from_array(w, "wq"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["y"], name="qdq_conv", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 5, 5])], inits)
    path = _save(graph, tmp_path / "qdq.onnx")
    x = rng.normal(0, 2, (1, 3, 5, 5)).astype(np.float32)
    (layer,) = import_onnx(path, {"x": x}).layers
    xq = np.clip(np.rint(x / 0.05) + 10, 0, 255)  # QuantizeLinear: round half to even, saturate
    np.testing.assert_array_equal(layer.activations, xq[0].astype(np.int32) - 10)
    np.testing.assert_array_equal(layer.weights, w.astype(np.int32))
    assert (layer.act_bits, layer.act_signed) == (9, True)  # uint8 - 10 spans [-10, 245]
    y = _run(path, x)[0]
    np.testing.assert_allclose(layer_output(layer) * layer.meta["act_scale"] * layer.meta["weight_scale"], y,
                               rtol=1e-5, atol=1e-4)
