"""An ordered list of layers, stored as one ``.npz`` zip holding ``manifest.json`` and ``.npy`` arrays."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .layer import Layer, LayerKind, WeightFormat, WorkloadError

FORMAT = "bitserial-sim.workload"
FORMAT_VERSION = 1
_LAYER_FIELDS = ("stride", "padding", "groups", "act_bits", "weight_bits", "act_signed", "weight_signed")
# Optional manifest fields: written only when they differ from the default, so that integer workloads keep
# their manifests and digests; files without them (older files) load with the default.
_OPTIONAL_FIELDS = {"weight_format": WeightFormat.INT.value}


def array_sha256(arr: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (C order)."""
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Workload:
    """A named, ordered list of layers plus provenance metadata (``meta``: JSON-serialisable)."""

    name: str
    layers: tuple[Layer, ...]
    meta: dict = field(default_factory=dict)

    def __init__(self, name: str, layers, meta: dict | None = None):
        layers = tuple(layers)
        if not isinstance(name, str) or not name:
            raise WorkloadError(f"workload name must be a non-empty string, got {name!r}")
        if not layers:
            raise WorkloadError(f"workload {name!r} has no layers")
        seen = set()
        for layer in layers:
            if not isinstance(layer, Layer):
                raise WorkloadError(f"workload {name!r}: {layer!r} is not a Layer")
            if layer.name in seen:
                raise WorkloadError(f"workload {name!r}: duplicate layer name {layer.name!r}")
            seen.add(layer.name)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "meta", dict(meta or {}))

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, key: int | str) -> Layer:
        if isinstance(key, str):
            for layer in self.layers:
                if layer.name == key:
                    return layer
            raise KeyError(f"workload {self.name!r} has no layer {key!r}")
        return self.layers[key]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def digest(self) -> str:
        """sha256 over every layer's arrays and fields: identifies the workload's content (computed once)."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            h = hashlib.sha256(self.name.encode())
            for layer in self.layers:
                h.update(json.dumps(_layer_entry(layer, {}), sort_keys=True).encode())
            cached = h.hexdigest()
            object.__setattr__(self, "_digest", cached)
        return cached

    # ----------------------------------------------------------------- storage
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.npz) atomically: manifest.json plus one .npy per array, no pickles."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {}
        layers = [_layer_entry(layer, arrays) for layer in self.layers]
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "name": self.name, "meta": self.meta, "layers": layers}
        try:
            manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
        except TypeError as exc:
            raise WorkloadError(f"workload {self.name!r}: meta is not JSON-serialisable ({exc})") from None
        with atomic_write(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", manifest_bytes)
            for key, arr in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr, allow_pickle=False)
                zf.writestr(key + ".npy", buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Workload:
        """Read a workload written by :meth:`save`; never unpickles; verifies every array's sha256."""
        path = Path(path)
        if not path.is_file():
            raise WorkloadError(f"{path}: no such workload file")
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                if "manifest.json" not in names:
                    raise WorkloadError(f"{path}: not a bitserial-sim workload (no manifest.json inside)")
                try:
                    manifest = json.loads(zf.read("manifest.json"))
                except ValueError as exc:
                    raise WorkloadError(f"{path}: manifest.json is not valid JSON ({exc})") from None
                return _from_manifest(path, manifest, zf, names)
        except zipfile.BadZipFile:
            raise WorkloadError(f"{path}: not a workload file (not a zip/.npz archive)") from None


def _layer_entry(layer: Layer, arrays: dict[str, np.ndarray]) -> dict:
    entry: dict = {"name": layer.name, "kind": layer.kind.value}
    for f in _LAYER_FIELDS:
        v = getattr(layer, f)
        entry[f] = list(v) if isinstance(v, tuple) else v
    for f, default in _OPTIONAL_FIELDS.items():
        v = str(getattr(layer, f))
        if v != default:
            entry[f] = v
    entry["meta"] = layer.meta
    i = len(arrays) // 2
    for what in ("activations", "weights"):
        arr = getattr(layer, what)
        key = f"{i:04d}_{what}"
        arrays[key] = arr
        entry[what] = {"array": key, "shape": list(arr.shape), "dtype": arr.dtype.str, "sha256": array_sha256(arr)}
    return entry


def _read_npy(path: Path, zf: zipfile.ZipFile, names: set, key: str, field_name: str) -> np.ndarray:
    member = f"{key}.npy"
    if member not in names:
        raise WorkloadError(f"{path}: {field_name}: array {key!r} is missing from the archive")
    try:
        return np.lib.format.read_array(io.BytesIO(zf.read(member)), allow_pickle=False)
    except ValueError as exc:
        raise WorkloadError(f"{path}: {field_name}: array {key!r} is unreadable ({exc})") from None


def _from_manifest(path: Path, manifest, zf, names) -> Workload:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise WorkloadError(f"{path}: manifest.json: 'format' must be {FORMAT!r}")
    if manifest.get("version") != FORMAT_VERSION:
        raise WorkloadError(f"{path}: manifest.json: unsupported 'version' {manifest.get('version')!r}")
    entries = manifest.get("layers")
    if not isinstance(entries, list) or not entries:
        raise WorkloadError(f"{path}: manifest.json: 'layers' must be a non-empty list")
    layers = []
    for i, e in enumerate(entries):
        where = f"layers[{i}]"
        if not isinstance(e, dict):
            raise WorkloadError(f"{path}: manifest.json: {where} must be an object")
        missing = [k for k in ("name", "kind", "activations", "weights", *_LAYER_FIELDS) if k not in e]
        if missing:
            raise WorkloadError(f"{path}: manifest.json: {where} lacks field(s) {missing}")
        kind = e["kind"]
        if kind not in {k.value for k in LayerKind}:
            raise WorkloadError(f"{path}: manifest.json: {where}.kind: unknown layer kind {kind!r}")
        tensors = {}
        for what in ("activations", "weights"):
            spec = e[what]
            if not isinstance(spec, dict) or "array" not in spec:
                raise WorkloadError(f"{path}: manifest.json: {where}.{what} must name an 'array'")
            arr = _read_npy(path, zf, names, str(spec["array"]), f"{where}.{what}")
            if "sha256" in spec and array_sha256(arr) != spec["sha256"]:
                raise WorkloadError(f"{path}: {where}.{what}: sha256 mismatch (array {spec['array']!r} was modified)")
            tensors[what] = arr
        builder = {"conv": Layer.conv, "fc": Layer.fc, "gemm": Layer.gemm}[kind]
        kw = {f: e[f] for f in ("act_bits", "weight_bits", "act_signed", "weight_signed")}
        for f, default in _OPTIONAL_FIELDS.items():
            kw[f] = e.get(f, default)
        if kind == "conv":
            kw.update(stride=e["stride"], padding=tuple(e["padding"]), groups=e["groups"])
        try:
            layers.append(builder(str(e["name"]), tensors["activations"], tensors["weights"], meta=e.get("meta"), **kw))
        except WorkloadError as exc:
            raise WorkloadError(f"{path}: {where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise WorkloadError(f"{path}: {where}: invalid field ({exc})") from None
    try:
        return Workload(str(manifest.get("name", path.stem)), layers, manifest.get("meta") or {})
    except WorkloadError as exc:
        raise WorkloadError(f"{path}: {exc}") from None
