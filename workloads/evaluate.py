"""Accuracy of a built-in real workload's model with the workload's own integer weights.

Pruning and weight-recoding passes change a workload's weights; :func:`evaluate` scores such a workload on its
model's labelled evaluation set (``../shared/datasets``), through its importer's row of
:data:`workloads.importers.IMPORTERS`: the TFLite models run our integer reference ops with the workload's
weights in place of the file's, the CIFAR ResNets run fake-quantized in PyTorch with the workload's recorded
formats and weights. An unmodified workload scores as its quantized model.

Every layer of the model must have its weights in the workload, under the name the importer gave it, and every
layer of the workload must be one of the model's: a renamed or dropped layer raises a WorkloadError naming it
(it is never silently run with the model file's own weights). A workload imported on several inputs holds one
layer set per input (``name@i``); they must carry the same weights, since one run of the model has one weight set.
"""

from __future__ import annotations

import os

import numpy as np

from .datasets import cifar10_split, dataset_dir, evenly_spaced, load_cifar10_test, load_imagenet_val
from .importers import IMPORTERS
from .layer import Layer, WeightFormat, WorkloadError
from .workload import Workload

LABELLED_SETS = {"cifar10": "CIFAR-10 test set (10,000 images)", "imagenet": "ImageNet validation (1,300 images)"}
SUBSETS = ("all", "train", "holdout")  # CIFAR-10: the whole copy, or a half of datasets.cifar10_split


def layer_sets(workload: Workload) -> dict[str, list[Layer]]:
    """Layer (module) name -> the workload's layers of that name, one per input (``name`` or ``name@i``)."""
    out: dict[str, list[Layer]] = {}
    for layer in workload:
        out.setdefault(layer.name.partition("@")[0], []).append(layer)
    return out


def _one_weight_set(workload: Workload, quantized: bool) -> dict[str, Layer]:
    """Layer name -> the layer whose weights (and, ``quantized``, formats) every input's copy shares."""
    out = {}
    for base, layers in layer_sets(workload).items():
        first = layers[0]
        for other in layers[1:]:
            same = other.weights.shape == first.weights.shape and np.array_equal(other.weights, first.weights)
            if quantized and same:
                same = (other.meta.get("act"), other.meta.get("weight")) == (first.meta.get("act"),
                                                                              first.meta.get("weight"))
            if not same:
                raise WorkloadError(
                    f"evaluate: workload {workload.name!r}: layer {base!r}: input {other.name!r} carries different "
                    f"weights{' or formats' if quantized else ''} from {first.name!r}; evaluate runs the model with "
                    "one weight set (give every input's layer the same weights, or keep one input's layers)"
                )
        if first.weight_format != WeightFormat.INT:
            raise WorkloadError(f"evaluate: workload {workload.name!r}: layer {first.name!r} has "
                                f"{first.weight_format} weights; the model runs integer weights")
        out[base] = first
    return out


def _check_coverage(workload: Workload, have: list[str], model_layers: list[str], model: str) -> None:
    missing = [n for n in model_layers if n not in have]
    extra = [n for n in have if n not in model_layers]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"has no layer {', '.join(map(repr, missing))} of the model")
        if extra:
            parts.append(f"has layer(s) {', '.join(map(repr, extra))} that the model lacks")
        raise WorkloadError(f"evaluate: workload {workload.name!r} {' and '.join(parts)} ({model}); every layer's "
                            "weights are needed under the name the importer gave it (renamed or dropped?)")


def _topk(scores: np.ndarray, labels: np.ndarray) -> dict:
    """top-1 / top-5 fractions of (N, classes) scores (ties broken towards the lower class, stably)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    n = len(labels)
    top1 = float(np.mean(order[:, 0] == labels)) if n else float("nan")
    top5 = float(np.mean((order[:, :5] == labels[:, None]).any(axis=1))) if n else float("nan")
    return {"top1": top1, "top5": top5, "n": n}


def evaluate(workload: Workload, *, limit: int | None = None, data_dir: str | os.PathLike | None = None,
             datasets_dir: str | os.PathLike | None = None, subset: str = "all", split_seed: int = 0,
             fold: int = 0) -> dict:
    """Top-1 / top-5 accuracy (fractions) and image count ``n`` of ``workload``'s model, run with the workload's
    weights, on the first ``limit`` images (default all) of its labelled evaluation set.

    CIFAR-10 only: ``subset="holdout"`` scores the half of the test copy that retraining never sees
    (``datasets.cifar10_split(labels, split_seed)``: 500 images per class held out), ``"train"`` the other half.

    ``workload`` must come from :func:`workloads.load_builtin` (its ``meta["builtin"]`` names the model);
    ``data_dir`` is where the model file is looked up (as ``load_builtin``), ``datasets_dir`` the folder of the
    evaluation sets (default: $BITSERIAL_DATASETS, then ../shared/datasets). The CIFAR-10 set is sorted by
    class, so a ``limit`` takes an evenly spaced subset instead of the first images; ``fold`` k > 0 (CIFAR-10,
    with ``limit``) the k-th of disjoint such subsets (``datasets.evenly_spaced``): a k-fold check's validation
    images, which fine-tuning with ``validation=limit, validation_fold=k`` leaves out.
    """
    from . import registry

    name = workload.meta.get("builtin")
    if name not in registry.BUILTINS:
        raise WorkloadError(f"evaluate: workload {workload.name!r} is not a built-in real workload (its meta has no "
                            f"known 'builtin' name; load it with workloads.load_builtin)")
    entry = registry.BUILTINS[name]
    if entry.image_set not in LABELLED_SETS:
        raise WorkloadError(f"evaluate: {name} has no labelled evaluation set here (it runs on {entry.images})")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise WorkloadError(f"evaluate: limit ({limit!r}) must be a positive integer")
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or fold < 0:
        raise WorkloadError(f"evaluate: fold ({fold!r}) must be a non-negative integer")
    if fold and entry.image_set != "cifar10":
        raise WorkloadError(f"evaluate: fold ({fold}) applies to the CIFAR-10 models; {name} runs on "
                            f"{entry.image_set}")
    if subset not in SUBSETS:
        raise WorkloadError(f"evaluate: subset ({subset!r}) must be one of: {', '.join(SUBSETS)}")
    if subset != "all" and entry.image_set != "cifar10":
        raise WorkloadError(f"evaluate: subset ({subset!r}) applies to the CIFAR-10 models; {name} runs on "
                            f"{entry.image_set}")
    importer = IMPORTERS[entry.importer]
    if importer.score is None or importer.layer_names is None:
        raise WorkloadError(f"evaluate: {importer.description} cannot be scored (no evaluation path)")
    importer.require(f"evaluate: {name}")
    options = {"depth": entry.depth} if entry.importer == "pytorch" else {}
    quantized = entry.importer == "pytorch"
    layers = _one_weight_set(workload, quantized)
    path = registry.model_path(name, data_dir)
    _check_coverage(workload, list(layers), importer.layer_names(path, **options), path.name)
    weights = {base: layer.weights for base, layer in layers.items()}
    quants = None
    if quantized:
        from .quantize import LayerQuant

        quants = {base: LayerQuant.from_meta(layer.meta) for base, layer in layers.items()}
        # the biases the workload records (at the accumulator scale): retraining may have changed them
        options["biases"] = {base: np.asarray(layer.meta["bias"], np.int64) for base, layer in layers.items()
                             if layer.meta.get("bias") is not None}
    folder = dataset_dir(datasets_dir)
    if entry.image_set == "cifar10":
        if subset == "all":
            pool = np.arange(10000)
        else:
            pool = cifar10_split(load_cifar10_test(folder)[1], split_seed)[0 if subset == "train" else 1]
        try:
            idx = evenly_spaced(pool, limit, fold)
        except ValueError as e:  # a fold without a limit, or past the end of the subset
            raise WorkloadError(f"evaluate: subset {subset!r}: {e}") from None
        images, labels = load_cifar10_test(folder, idx)
    else:
        size = importer.read_input(path, **options).size[0]
        images, labels, _ = load_imagenet_val(folder, None if limit is None else slice(0, limit), size=size)
    scores = importer.score(path, images, weights, quants, **options)
    offset = 1 if entry.image_set == "imagenet" else 0  # ImageNet models: class 0 is "background"
    return _topk(np.asarray(scores)[:, offset:], labels)
