"""workloads.evaluate: a built-in workload's model scored with the workload's own (possibly modified) weights."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from workloads import Layer, Workload, WorkloadError, evaluate, load_builtin, registry

from .conftest import shared_path

needs_tflite = pytest.mark.skipif(importlib.util.find_spec("tflite") is None or importlib.util.find_spec("PIL") is None,
                                  reason="the TFLite importer needs the optional packages tflite and pillow "
                                         "(pip install -e .[tflite])")
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="the PyTorch importer needs torch (pip install -e .[torch])")


def _with_weights(workload: Workload, name: str, weights: np.ndarray) -> Workload:
    layers = [layer.with_values(weights=weights) if layer.name == name else layer for layer in workload]
    return Workload(workload.name, layers, workload.meta)


def test_needs_a_builtin_workload():
    layer = Layer.fc("fc", np.arange(4), np.ones((2, 4), np.int32), act_bits=8, weight_bits=8)
    with pytest.raises(WorkloadError, match="not a built-in real workload"):
        evaluate(Workload("mine", [layer]))
    with pytest.raises(WorkloadError, match="no labelled evaluation set"):
        evaluate(Workload("vww", [layer], {"builtin": "vww-int8"}))


@needs_tflite
def test_resnet8_scores_the_interpreter_arithmetic_and_sees_modified_weights():
    from workloads.datasets import load_cifar10_test
    from workloads.importers.tflite import evaluate_tflite
    from workloads.registry import model_path

    datasets = shared_path("datasets")
    wl = load_builtin("resnet8-cifar10-int8")
    base = evaluate(wl, limit=60, datasets_dir=datasets)
    idx = np.linspace(0, 9999, 60).round().astype(np.int64)
    images, labels = load_cifar10_test(datasets, idx)
    direct = evaluate_tflite(model_path("resnet8-cifar10-int8"), images, labels, label_offset=0)
    assert base == direct and base["n"] == 60
    assert base["top1"] > 0.6  # MLPerf Tiny ResNet-8 scores ~85% on CIFAR-10 (~75% on this JPEG copy)
    fc = wl.layers[-1]
    flipped = evaluate(_with_weights(wl, fc.name, -fc.weights), limit=60, datasets_dir=datasets)
    assert flipped["top1"] < 0.2  # argmax of the negated logits is their argmin


@needs_torch
def test_resnet20_with_its_own_and_with_broken_weights():
    shared_path("workloads", "cifar10-resnet-akamaster")
    datasets = shared_path("datasets")
    wl = load_builtin("resnet20-cifar10")  # quantized with the committed per-layer precision profile
    profile = registry.precision_profile("resnet20-cifar10")
    assert [layer.act_bits for layer in wl] == list(profile["act_bits"])
    assert [layer.weight_bits for layer in wl] == list(profile["weight_bits"])
    base = evaluate(wl, limit=200, datasets_dir=datasets)
    assert base["n"] == 200 and 0.7 < base["top1"] <= base["top5"]  # fp32 scores 81% on the JPEG copy
    stem = wl["conv1"]
    broken = evaluate(_with_weights(wl, "conv1", np.zeros_like(stem.weights)), limit=200, datasets_dir=datasets)
    assert broken["top1"] < 0.3
    from workloads.importers.pytorch import predict
    from workloads.models.cifar_resnet import CifarResNet, cifar_preprocess
    from workloads.quantize import LayerQuant

    quants = {layer.name: LayerQuant.from_meta(layer.meta) for layer in wl}
    images = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="names no quantized layer"):
        predict(CifarResNet(20), images, preprocess=cifar_preprocess, quants=quants, weights_override={"x": 0})
    with pytest.raises(ValueError, match="shape"):
        predict(CifarResNet(20), images, preprocess=cifar_preprocess, quants=quants,
                weights_override={"conv1": stem.weights[:, :2]})


@needs_tflite
@pytest.mark.slow
def test_mobilenet_v2_matches_the_integer_ops_on_imagenet():
    from workloads.datasets import load_imagenet_val
    from workloads.importers.tflite import evaluate_tflite
    from workloads.registry import model_path

    shared_path("workloads", "imagenet-mobilenet-int8-coral")
    datasets = shared_path("datasets")
    wl = load_builtin("mobilenet-v2-imagenet-uint8")
    got = evaluate(wl, limit=40, datasets_dir=datasets)
    images, labels, _ = load_imagenet_val(datasets, slice(0, 40))
    assert got == evaluate_tflite(model_path("mobilenet-v2-imagenet-uint8"), images, labels, label_offset=1)
