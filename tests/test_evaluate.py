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


def test_cifar10_split_is_class_balanced_disjoint_and_seeded():
    from workloads.datasets import cifar10_split

    labels = np.repeat(np.arange(10), 1000)
    train, hold = cifar10_split(labels, seed=0)
    assert len(train) == len(hold) == 5000 and not set(train) & set(hold)
    assert np.bincount(labels[train]).tolist() == [500] * 10 == np.bincount(labels[hold]).tolist()
    again, _ = cifar10_split(labels, seed=0)
    other, _ = cifar10_split(labels, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_evenly_spaced_folds_are_disjoint_class_balanced_picks():
    from workloads.datasets import evenly_spaced

    pool = np.arange(3, 5003)  # 5,000 class-ordered entries, 500 per class
    folds = [evenly_spaced(pool, 1000, k) for k in range(5)]
    assert np.array_equal(folds[0], evenly_spaced(pool, 1000))  # fold 0: the plain pick
    assert np.array_equal(np.sort(np.concatenate(folds)), pool)  # five folds of 1,000 partition the pool
    for f in folds:
        assert np.bincount((f - 3) // 500, minlength=10).tolist() == [100] * 10
    assert np.array_equal(evenly_spaced(pool, 1000, 1), evenly_spaced(np.setdiff1d(pool, folds[0]), 1000))
    with pytest.raises(ValueError, match="fold 5 of 1000 entries needs 6000 entries; the pool has 5000"):
        evenly_spaced(pool, 1000, 5)
    with pytest.raises(ValueError, match="fold 1 needs a limit"):
        evenly_spaced(pool, None, 1)


@needs_torch
def test_holdout_subset_and_recorded_biases():
    """evaluate(subset="holdout") scores only the half retraining never sees; a workload's recorded biases
    (meta["bias"], what retraining changes) are what the model runs with."""
    shared_path("workloads", "cifar10-resnet-akamaster")
    datasets = shared_path("datasets")
    from workloads.datasets import cifar10_split, load_cifar10_test

    wl = load_builtin("resnet20-cifar10")
    hold = evaluate(wl, subset="holdout", limit=100, datasets_dir=datasets)
    assert hold["n"] == 100 and 0.6 < hold["top1"]
    labels = load_cifar10_test(datasets)[1]
    _, held = cifar10_split(labels)
    assert evaluate(wl, subset="train", limit=100, datasets_dir=datasets)["n"] == 100
    fc = wl["linear"]
    bias = np.asarray(fc.meta["bias"], np.int64)
    bias[3] += 10**9  # class 3 wins every image
    layers = [layer.with_values(meta={**layer.meta, "bias": bias.tolist()}) if layer.name == "linear" else layer
              for layer in wl]
    skewed = evaluate(Workload(wl.name, layers, wl.meta), subset="holdout", limit=100, datasets_dir=datasets)
    idx = held[np.linspace(0, len(held) - 1, 100).round().astype(int)]
    assert skewed["top1"] == pytest.approx(float(np.mean(labels[idx] == 3)))
    with pytest.raises(WorkloadError, match=r"subset \('half'\) must be one of"):
        evaluate(wl, subset="half")


@needs_torch
def test_a_fold_scores_its_own_disjoint_images(monkeypatch):
    """evaluate(subset="train", limit=n, fold=k) scores the k-th disjoint pick of n train-half images (the images
    fine-tuning with validation=n, validation_fold=k leaves out), fold 0 the plain pick."""
    shared_path("workloads", "cifar10-resnet-akamaster")
    datasets = shared_path("datasets")
    import importlib

    from workloads.datasets import cifar10_split, evenly_spaced, load_cifar10_test

    asked = []

    def spy(folder, indices=None):
        asked.append(np.asarray(indices))
        return load_cifar10_test(folder, indices)

    ev = importlib.import_module("workloads.evaluate")  # the module (the package exports the function by its name)
    monkeypatch.setattr(ev, "load_cifar10_test", spy)
    wl = load_builtin("resnet20-cifar10")
    train = cifar10_split(load_cifar10_test(datasets)[1])[0]
    for fold in (0, 1, 2):
        assert evaluate(wl, subset="train", limit=40, fold=fold, datasets_dir=datasets)["n"] == 40
    picks = asked[1::2]  # every evaluate call first reads the labels (indices None), then its images
    assert [len(p) for p in picks] == [40, 40, 40] and len(np.unique(np.concatenate(picks))) == 120
    assert np.array_equal(picks[0], evenly_spaced(train, 40)) and set(np.concatenate(picks)) <= set(train)
    with pytest.raises(WorkloadError, match=r"evaluate: subset 'train': fold 1 needs a limit"):
        evaluate(wl, subset="train", fold=1, datasets_dir=datasets)
    with pytest.raises(WorkloadError, match=r"evaluate: fold \(-1\) must be a non-negative integer"):
        evaluate(wl, subset="train", limit=10, fold=-1)
    with pytest.raises(WorkloadError, match=r"evaluate: subset 'train': fold 2 of 2000 entries needs 6000 entries; "
                       r"the pool has 5000"):
        evaluate(wl, subset="train", limit=2000, fold=2, datasets_dir=datasets)


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


# ----------------------------------------------------------------------------- the workload must match the model
def _renamed(workload: Workload, old: str, new: str, weights=None) -> Workload:
    layers = []
    for layer in workload:
        if layer.name == old:
            layer = layer.with_values(name=new, weights=layer.weights if weights is None else weights)
        layers.append(layer)
    return Workload(workload.name, layers, workload.meta)


@needs_tflite
def test_tflite_renamed_or_dropped_layer_is_refused_not_run_with_the_file_weights(tmp_path):
    wl = load_builtin("resnet8-cifar10-int8")  # the bundled model and image
    conv = wl["03_conv"]
    renamed = _renamed(wl, "03_conv", "03_conv_pruned", np.zeros_like(conv.weights))
    with pytest.raises(WorkloadError) as err:
        evaluate(renamed, limit=5, datasets_dir=tmp_path)  # (refused before the evaluation set is read)
    assert "'03_conv'" in str(err.value) and "'03_conv_pruned'" in str(err.value)
    dropped = Workload(wl.name, [layer for layer in wl if layer.name != "03_conv"], wl.meta)
    with pytest.raises(WorkloadError, match=r"has no layer '03_conv' of the model"):
        evaluate(dropped, limit=5, datasets_dir=tmp_path)


@needs_tflite
def test_inputs_carrying_different_weights_are_refused(tmp_path):
    rng = np.random.default_rng(0)  # a stand-in CIFAR-10 test set: the layer sets are what is checked here
    np.savez(tmp_path / "cifar10_test.npz", images=rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8),
             labels=rng.integers(0, 10, 10000))
    two = load_builtin("resnet8-cifar10-int8", images=2)  # one layer set per input: 00_conv@0, 00_conv@1, ...
    one = load_builtin("resnet8-cifar10-int8")
    assert evaluate(two, limit=8, datasets_dir=tmp_path) == evaluate(one, limit=8, datasets_dir=tmp_path)
    fc = two["09_fc@1"]
    changed = Workload(two.name, [layer.with_values(weights=-fc.weights) if layer.name == "09_fc@1" else layer
                                  for layer in two], two.meta)
    with pytest.raises(WorkloadError, match=r"layer '09_fc': input '09_fc@1' carries different weights from "
                                            r"'09_fc@0'"):
        evaluate(changed, limit=8, datasets_dir=tmp_path)


@needs_tflite
def test_float_weights_are_refused(tmp_path):
    wl = load_builtin("resnet8-cifar10-int8")
    fc = wl["09_fc"]
    floats = Workload(wl.name, [layer.with_values(weights=fc.weights.astype(np.float32) + 0.5,
                                                  weight_format="fp32") if layer is fc else layer for layer in wl],
                      wl.meta)
    with pytest.raises(WorkloadError, match="'09_fc' has fp32 weights"):
        evaluate(floats, limit=5, datasets_dir=tmp_path)


@needs_tflite
def test_tflite_weight_overrides_must_name_layers_of_the_model():
    from workloads.datasets import load_image
    from workloads.importers import tflite as T
    from workloads.registry import model_path

    path = model_path("resnet8-cifar10-int8")
    image = load_image(registry.PACKAGE_DATA / "cifar10_00_3.png", 32)
    wl = T.import_tflite(path, image)
    fc = wl["09_fc"]
    with pytest.raises(WorkloadError, match=r"\['9_fc'\], which name no layer of the model"):
        T.tflite_logits(path, image, weights_override={"9_fc": fc.weights})
    with pytest.raises(WorkloadError, match=r"weights of layer '09_fc' have shape \[10, 32\], the model's have "
                                            r"\[10, 64\]"):
        T.tflite_logits(path, image, weights_override={"09_fc": fc.weights[:, :32]})
    with pytest.raises(WorkloadError, match="carries different weights"):
        T.evaluate_tflite(path, image[None], [3], label_offset=0,
                          weights_override={"09_fc@0": fc.weights, "09_fc@1": -fc.weights})
    with pytest.raises(WorkloadError, match=r"no weights given for layer\(s\) \['00_conv'"):
        T.tflite_scores(path, image[None], weights_override={"09_fc": fc.weights}, require_all=True)


@needs_torch
def test_pytorch_dropped_layer_is_refused(tmp_path):
    from workloads.importers.pytorch import fold_batchnorm, quant_modules
    from workloads.models.cifar_resnet import CifarResNet

    model = tmp_path / registry.BUILTINS["resnet20-cifar10"].model
    model.parent.mkdir(parents=True)
    model.write_bytes(b"not read: the layers are checked first")
    names = list(quant_modules(fold_batchnorm(CifarResNet(20))))
    assert names[0] == "conv1" and names[-1] == "linear"
    fc = [Layer.fc(n, np.arange(4), np.ones((2, 4), np.int32), act_bits=8, weight_bits=8) for n in names[1:]]
    with pytest.raises(WorkloadError, match="has no layer 'conv1' of the model"):
        evaluate(Workload("r20", fc, {"builtin": "resnet20-cifar10"}), limit=5, data_dir=tmp_path,
                 datasets_dir=tmp_path)
