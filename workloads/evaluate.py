"""Accuracy of a built-in real workload's model with the workload's own integer weights.

Pruning and weight-recoding passes change a workload's weights; :func:`evaluate` scores such a workload on its
model's labelled evaluation set (``../shared/datasets``): the TFLite models run our integer reference ops with
the workload's weights in place of the file's, the CIFAR ResNets run fake-quantized in PyTorch with the
workload's recorded formats and weights. An unmodified workload scores as its quantized model.
"""

from __future__ import annotations

import os

import numpy as np

from .datasets import dataset_dir, load_cifar10_test, load_imagenet_val
from .layer import WorkloadError
from .workload import Workload

LABELLED_SETS = {"cifar10": "CIFAR-10 test set (10,000 images)", "imagenet": "ImageNet validation (1,300 images)"}


def _sample0_weights(workload: Workload) -> dict[str, np.ndarray]:
    """Layer (module) name -> weights, from the first input's layer set (``name`` or ``name@0``)."""
    out = {}
    for layer in workload:
        base, _, sample = layer.name.partition("@")
        if sample in ("", "0"):
            out[base] = layer.weights
    return out


def _topk(scores: np.ndarray, labels: np.ndarray) -> dict:
    """top-1 / top-5 fractions of (N, classes) scores (ties broken towards the lower class, stably)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    n = len(labels)
    top1 = float(np.mean(order[:, 0] == labels)) if n else float("nan")
    top5 = float(np.mean((order[:, :5] == labels[:, None]).any(axis=1))) if n else float("nan")
    return {"top1": top1, "top5": top5, "n": n}


def evaluate(workload: Workload, *, limit: int | None = None, data_dir: str | os.PathLike | None = None,
             datasets_dir: str | os.PathLike | None = None) -> dict:
    """Top-1 / top-5 accuracy (fractions) and image count ``n`` of ``workload``'s model, run with the workload's
    weights, on the first ``limit`` images (default all) of its labelled evaluation set.

    ``workload`` must come from :func:`workloads.load_builtin` (its ``meta["builtin"]`` names the model);
    ``data_dir`` is where the model file is looked up (as ``load_builtin``), ``datasets_dir`` the folder of the
    evaluation sets (default: $BITSERIAL_DATASETS, then ../shared/datasets). The CIFAR-10 set is sorted by
    class, so a ``limit`` takes an evenly spaced subset instead of the first images.
    """
    from . import registry

    name = workload.meta.get("builtin")
    if name not in registry.BUILTINS:
        raise WorkloadError(f"evaluate: workload {workload.name!r} is not a built-in real workload (its meta has no "
                            f"known 'builtin' name; load it with workloads.load_builtin)")
    entry = registry.BUILTINS[name]
    if entry.image_set not in LABELLED_SETS:
        raise WorkloadError(f"evaluate: {name} has no labelled evaluation set here (it runs on {entry.images})")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise WorkloadError(f"evaluate: limit ({limit!r}) must be a positive integer")
    folder = dataset_dir(datasets_dir)
    weights = _sample0_weights(workload)
    path = registry.model_path(name, data_dir)
    if entry.image_set == "cifar10":
        idx = None if limit is None else np.linspace(0, 9999, min(limit, 10000)).round().astype(np.int64)
        images, labels = load_cifar10_test(folder, idx)
    else:
        images, labels, _ = load_imagenet_val(folder, None if limit is None else slice(0, limit), size=entry.size)
    if entry.importer == "tflite":
        from .importers.tflite import tflite_logits

        offset = 1 if entry.image_set == "imagenet" else 0  # ImageNet models: class 0 is "background"
        scores = np.stack([tflite_logits(path, image, weights_override=weights).reshape(-1)[offset:]
                           for image in images]).astype(np.int64)
        return _topk(scores, labels)
    from .importers.pytorch import predict
    from .models.cifar_resnet import cifar_preprocess, load_cifar_resnet
    from .quantize import LayerQuant

    quants = {base: LayerQuant.from_meta(layer.meta) for layer in workload
              for base, _, sample in [layer.name.partition("@")] if sample in ("", "0")}
    model = load_cifar_resnet(entry.depth, path)
    logits = predict(model, images, preprocess=cifar_preprocess, quants=quants, weights_override=weights)
    return _topk(logits, labels)
