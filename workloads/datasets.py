"""Images and the labelled evaluation sets in ``../shared/datasets`` (see its README): one reader per set and one
image loader, shared by every importer, the registry and the accuracy functions."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

SHARED_DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
CIFAR10_FILE = "cifar10_test.npz"
IMAGENET_FILE = "imagenet_val1300.npz"


def load_image(path_or_bytes: str | os.PathLike | bytes, size: int | tuple[int, int]) -> np.ndarray:
    """An image file (or its encoded bytes) as uint8 RGB (H, W, 3) of ``size`` (pixels): center-cropped to the
    target aspect ratio, then resized bilinearly (no resampling when it already has that size). Needs Pillow."""
    from PIL import Image

    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        img = im.convert("RGB")
    h, w = (size, size) if isinstance(size, int) else size
    if img.size != (w, h):
        iw, ih = img.size
        cw, ch = (min(iw, round(ih * w / h)), ih) if iw * h >= ih * w else (iw, min(ih, round(iw * h / w)))
        left, top = (iw - cw) // 2, (ih - ch) // 2
        img = img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def dataset_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the evaluation sets: ``data_dir``, else $BITSERIAL_DATASETS, else ../shared/datasets next to
    the repository."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("BITSERIAL_DATASETS")
    return Path(env) if env else SHARED_DATASETS


def _open_npz(data_dir: str | os.PathLike, filename: str, keys: tuple[str, ...]):
    path = Path(data_dir) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {filename} in {Path(data_dir)})")
    data = np.load(path, allow_pickle=False)
    missing = [k for k in keys if k not in data.files]
    if missing:
        data.close()
        raise ValueError(f"{path}: lacks array(s) {missing} (has {data.files})")
    return path, data


def _chosen(n: int, indices) -> np.ndarray:
    """Indices (an int, a slice, a sequence or None for all) into n items, as a 1-D int array."""
    return np.atleast_1d(np.arange(n)[indices] if indices is not None else np.arange(n))


def load_cifar10_test(data_dir: str | os.PathLike, indices=None) -> tuple[np.ndarray, np.ndarray]:
    """The CIFAR-10 test images (JPEG-decoded copy, sorted by class, 1,000 per class) chosen by ``indices``
    (default all 10,000): (images uint8 (N, 32, 32, 3) RGB, labels int64 (N,) in 0..9)."""
    path, data = _open_npz(data_dir, CIFAR10_FILE, ("images", "labels"))
    with data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(labels) != len(images):
        raise ValueError(f"{path}: unexpected arrays images {images.dtype} {images.shape}, labels {labels.shape}")
    idx = _chosen(len(labels), indices)
    return images[idx], labels[idx]


def evenly_spaced(pool: np.ndarray, limit: int | None, fold: int = 0) -> np.ndarray:
    """``limit`` evenly spaced entries of ``pool`` (first and last included; all of it if ``limit`` is None or
    larger): the images a ``limit`` picks from a class-ordered subset, so that every class is represented.

    ``fold`` k > 0: the k-th of disjoint such picks, each taken evenly spaced from what the earlier ones left (fold
    0 is the plain pick): the validation folds of a k-fold check. Raises ValueError when ``pool`` holds fewer than
    (``fold`` + 1) x ``limit`` entries."""
    pool = np.asarray(pool)
    if fold and limit is None:
        raise ValueError(f"fold {fold} needs a limit (the fold's size)")
    if fold and (fold + 1) * limit > len(pool):
        raise ValueError(f"fold {fold} of {limit} entries needs {(fold + 1) * limit} entries; the pool has "
                         f"{len(pool)}")
    if limit is None:
        return pool
    for _ in range(fold):
        pool = np.setdiff1d(pool, evenly_spaced(pool, limit), assume_unique=True)
    return pool[np.linspace(0, len(pool) - 1, min(limit, len(pool))).round().astype(np.int64)]


CIFAR10_HALF = 5000  # images in each half of the default cifar10_split (500 per class)


def cifar10_split(labels: np.ndarray, seed: int = 0, per_class: int = CIFAR10_HALF // 10
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced split of the CIFAR-10 test copy into (train, holdout) indices: ``per_class`` images of
    each class drawn with ``seed`` for fine-tuning, the rest held out for scoring (5,000 and 5,000 by default).
    Both index lists are sorted (the set is sorted by class, so they stay class-ordered)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has {len(members)} images, fewer than per_class ({per_class})")
        train.append(rng.choice(members, per_class, replace=False))
    train_idx = np.sort(np.concatenate(train))
    holdout_idx = np.setdiff1d(np.arange(len(labels)), train_idx)
    return train_idx, holdout_idx


def load_imagenet_val(data_dir: str | os.PathLike, indices=None, size: int = 224
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ILSVRC-2012 validation images chosen by ``indices`` (default all 1,300): (images uint8
    (N, size, size, 3) RGB, labels int64 (N,) in 0..999, file names (N,) str). Decodes the JPEGs (224 x 224)
    with Pillow and resizes them bilinearly to ``size`` pixels."""
    path, data = _open_npz(data_dir, IMAGENET_FILE, ("jpeg_bytes", "jpeg_offsets", "labels", "val_filenames"))
    with data:
        blob, offsets = data["jpeg_bytes"], data["jpeg_offsets"]
        labels, names = data["labels"].astype(np.int64), data["val_filenames"]
    n = len(offsets) - 1
    if n != len(labels) or n != len(names):
        raise ValueError(f"{path}: {n} images but {len(labels)} labels and {len(names)} file names")
    idx = _chosen(n, indices)
    images = np.empty((len(idx), size, size, 3), dtype=np.uint8)
    for j, i in enumerate(idx):
        images[j] = load_image(blob[offsets[i]:offsets[i + 1]].tobytes(), size)
    return images, labels[idx], names[idx]
