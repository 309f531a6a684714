"""An ordered list of layers, stored as one ``.npz`` zip holding ``manifest.json`` and ``.npy`` arrays."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
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
    if arr.size:  # a zero-size view cannot be cast to bytes (and has none)
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
        if meta is not None and not isinstance(meta, dict):
            raise WorkloadError(f"workload {name!r}: meta must be a dict, got {type(meta).__name__}")
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
            raise KeyError(f"workload {self.name!r} has no layer {_show(key)}")
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
        """Read a workload written by :meth:`save`; never unpickles; verifies every array's sha256.

        Any problem with the file (not a zip, a damaged member, a manifest field missing or of the wrong type, an
        array that does not match its manifest entry) raises one WorkloadError naming the file, the field and the
        offending value."""
        path = Path(path)
        if not path.is_file():
            raise WorkloadError(f"{path}: no such workload file")
        try:
            zf = zipfile.ZipFile(path)
        except OSError as exc:
            raise WorkloadError(f"{path}: cannot read the workload file ({exc.strerror or exc})") from None
        except Exception as exc:  # zipfile raises BadZipFile, ValueError, struct.error, ... on damaged archives
            raise WorkloadError(f"{path}: not a workload file (not a zip/.npz archive: {_brief(exc)})") from None
        with zf:
            archive = _Archive(path, zf)
            if "manifest.json" not in archive.names:
                raise WorkloadError(f"{path}: not a bitserial-sim workload (no manifest.json inside)")
            text = archive.read("manifest.json")
            try:
                manifest = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise WorkloadError(f"{path}: manifest.json is not valid JSON ({_brief(exc)})") from None
            return _from_manifest(archive, manifest)

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


def _brief(exc: BaseException) -> str:
    """An exception as one short line: its (module-qualified) type and its message, whitespace collapsed."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{name}: {text}" if text else name


def _show(value) -> str:
    """repr of a manifest value, shortened for a one-line message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Archive:
    """The members of an open workload zip, read defensively: every failure becomes a WorkloadError."""

    def __init__(self, path: Path, zf: zipfile.ZipFile):
        self.path, self.zf = path, zf
        try:
            self.names = set(zf.namelist())
        except Exception as exc:  # a damaged central directory
            raise WorkloadError(f"{path}: damaged archive ({_brief(exc)})") from None

    def read(self, member: str) -> bytes:
        try:
            return self.zf.read(member)
        except Exception as exc:  # zlib.error, BadZipFile (bad CRC), EOFError, NotImplementedError, ...
            raise WorkloadError(f"{self.path}: archive member {member!r} is damaged ({_brief(exc)})") from None

    def array(self, spec: dict, where: str) -> np.ndarray:
        """The ``.npy`` member ``spec["array"]``, checked against the manifest's shape, dtype and sha256 before
        and after reading (a header that disagrees with the manifest is refused before the data is read)."""
        path, key = self.path, spec["array"]
        member, what = f"{key}.npy", f"{where}: array {_show(key)}"
        if member not in self.names:
            raise WorkloadError(f"{path}: {where}.array: {_show(key)} is missing from the archive")
        shape = tuple(spec["shape"])
        try:
            with self.zf.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise WorkloadError(f"{path}: {what} has an unsupported .npy version {version}")
                got_shape, fortran, dtype = header
                if dtype.hasobject or dtype.kind not in "iuf":
                    raise WorkloadError(f"{path}: {what} is unreadable: dtype {dtype.str!r} is not integers or "
                                        "floats (object arrays are never unpickled)")
                if dtype.str != spec["dtype"] or tuple(got_shape) != shape:
                    raise WorkloadError(
                        f"{path}: {what} holds {dtype.str} {list(got_shape)} but the manifest says {spec['dtype']} "
                        f"{list(shape)}"
                    )
                nbytes = math.prod(shape) * dtype.itemsize
                data = fh.read(nbytes + 1)  # one byte more: reaches the end, so the zip checks the CRC
        except WorkloadError:
            raise
        except Exception as exc:  # damaged deflate stream, bad CRC, malformed .npy header, ...
            raise WorkloadError(f"{path}: {what} is unreadable ({_brief(exc)})") from None
        if len(data) != nbytes:
            raise WorkloadError(f"{path}: {what} holds {len(data)} data bytes, its header says {nbytes}")
        arr = np.frombuffer(bytearray(data), dtype=dtype)
        arr = arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)
        if array_sha256(arr) != spec["sha256"]:
            raise WorkloadError(f"{path}: {where}: sha256 mismatch (array {_show(key)} was modified)")
        return arr


_TOP_FIELDS = {"format", "version", "name", "meta", "layers"}
_ENTRY_REQUIRED = ("name", "kind", "activations", "weights", *_LAYER_FIELDS)
_ENTRY_OPTIONAL = ("meta", *_OPTIONAL_FIELDS)
_ARRAY_FIELDS = ("array", "shape", "dtype", "sha256")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a bool", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _check_array_spec(path: Path, where: str, spec) -> None:
    if not isinstance(spec, dict):
        raise WorkloadError(f"{path}: manifest.json: {where} must be an object, got {_type_name(spec)} ({_show(spec)})")
    missing = [k for k in _ARRAY_FIELDS if k not in spec]
    if missing:
        raise WorkloadError(f"{path}: manifest.json: {where} lacks field(s) {missing} (every array must carry "
                            "its array, shape, dtype and sha256)")
    unknown = sorted(set(spec) - set(_ARRAY_FIELDS))
    if unknown:
        raise WorkloadError(f"{path}: manifest.json: {where} has unknown field(s) {unknown}")
    for f in ("array", "dtype", "sha256"):
        if not isinstance(spec[f], str) or not spec[f]:
            raise WorkloadError(f"{path}: manifest.json: {where}.{f} must be a non-empty string, "
                                f"got {_type_name(spec[f])} ({_show(spec[f])})")
    if not _SHA256.match(spec["sha256"]):
        raise WorkloadError(f"{path}: manifest.json: {where}.sha256 must be 64 lowercase hex digits, "
                            f"got {_show(spec['sha256'])}")
    shape = spec["shape"]
    if not isinstance(shape, list) or not shape or not all(_is_int(d) for d in shape):
        raise WorkloadError(f"{path}: manifest.json: {where}.shape must be a non-empty list of integers, "
                            f"got {_show(shape)}")
    if min(shape) < 1:
        raise WorkloadError(f"{path}: manifest.json: {where}.shape {shape} has a zero or negative dimension "
                            "(zero-size arrays are not workloads)")


def _check_entry(path: Path, where: str, e) -> None:
    if not isinstance(e, dict):
        raise WorkloadError(f"{path}: manifest.json: {where} must be an object, got {_type_name(e)} ({_show(e)})")
    missing = [k for k in _ENTRY_REQUIRED if k not in e]
    if missing:
        raise WorkloadError(f"{path}: manifest.json: {where} lacks field(s) {missing}")
    unknown = sorted(set(e) - set(_ENTRY_REQUIRED) - set(_ENTRY_OPTIONAL))
    if unknown:
        raise WorkloadError(f"{path}: manifest.json: {where} has unknown field(s) {unknown}")
    for f in ("name", "kind", *(f for f in _OPTIONAL_FIELDS if f in e)):
        if not isinstance(e[f], str) or not e[f]:
            raise WorkloadError(f"{path}: manifest.json: {where}.{f} must be a non-empty string, "
                                f"got {_type_name(e[f])} ({_show(e[f])})")
    if e["kind"] not in {k.value for k in LayerKind}:
        raise WorkloadError(f"{path}: manifest.json: {where}.kind: unknown layer kind {_show(e['kind'])} "
                            f"(expected one of {[k.value for k in LayerKind]})")
    for f in ("stride", "groups", "act_bits", "weight_bits"):
        if not _is_int(e[f]):
            raise WorkloadError(f"{path}: manifest.json: {where}.{f} must be an integer, "
                                f"got {_type_name(e[f])} ({_show(e[f])})")
    for f in ("act_signed", "weight_signed"):
        if not isinstance(e[f], bool):
            raise WorkloadError(f"{path}: manifest.json: {where}.{f} must be true or false, "
                                f"got {_type_name(e[f])} ({_show(e[f])})")
    pad = e["padding"]
    if not isinstance(pad, list) or len(pad) != 4 or not all(_is_int(p) for p in pad):
        raise WorkloadError(f"{path}: manifest.json: {where}.padding must be a list of 4 integers "
                            f"(top, bottom, left, right), got {_type_name(pad)} ({_show(pad)})")
    if "meta" in e and not isinstance(e["meta"], dict):
        raise WorkloadError(f"{path}: manifest.json: {where}.meta must be an object, "
                            f"got {_type_name(e['meta'])} ({_show(e['meta'])})")
    for what in ("activations", "weights"):
        _check_array_spec(path, f"{where}.{what}", e[what])


def _from_manifest(archive: _Archive, manifest) -> Workload:
    path = archive.path
    if not isinstance(manifest, dict):
        raise WorkloadError(f"{path}: manifest.json must hold an object, got {_type_name(manifest)}")
    if manifest.get("format") != FORMAT:
        raise WorkloadError(f"{path}: manifest.json: 'format' must be {FORMAT!r}, got {_show(manifest.get('format'))}")
    version = manifest.get("version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise WorkloadError(f"{path}: manifest.json: unsupported 'version' {_show(version)} "
                            f"(expected {FORMAT_VERSION})")
    unknown = sorted(set(manifest) - _TOP_FIELDS)
    if unknown:
        raise WorkloadError(f"{path}: manifest.json: unknown field(s) {unknown}")
    name = manifest.get("name")
    if not isinstance(name, str) or not name:
        raise WorkloadError(f"{path}: manifest.json: 'name' must be a non-empty string, "
                            f"got {_type_name(name)} ({_show(name)})")
    meta = manifest.get("meta", {})
    if not isinstance(meta, dict):
        raise WorkloadError(f"{path}: manifest.json: 'meta' must be an object, got {_type_name(meta)} ({_show(meta)})")
    entries = manifest.get("layers")
    if not isinstance(entries, list) or not entries:
        raise WorkloadError(f"{path}: manifest.json: 'layers' must be a non-empty list, "
                            f"got {_type_name(entries)} ({_show(entries)})")
    layers = []
    for i, e in enumerate(entries):
        where = f"layers[{i}]"
        _check_entry(path, where, e)
        tensors = {what: archive.array(e[what], f"{where}.{what}") for what in ("activations", "weights")}
        builder = {"conv": Layer.conv, "fc": Layer.fc, "gemm": Layer.gemm}[e["kind"]]
        kw = {f: e[f] for f in ("act_bits", "weight_bits", "act_signed", "weight_signed")}
        for f, default in _OPTIONAL_FIELDS.items():
            kw[f] = e.get(f, default)
        if e["kind"] == "conv":
            kw.update(stride=e["stride"], padding=tuple(e["padding"]), groups=e["groups"])
        elif e["stride"] != 1 or e["groups"] != 1 or any(e["padding"]):
            raise WorkloadError(f"{path}: manifest.json: {where}: a {e['kind']} layer takes stride 1, groups 1 and "
                                f"no padding, got stride {e['stride']}, groups {e['groups']}, padding {e['padding']}")
        try:
            layers.append(builder(e["name"], tensors["activations"], tensors["weights"], meta=e.get("meta"), **kw))
        except WorkloadError as exc:
            raise WorkloadError(f"{path}: {where}: {exc}") from None
    try:
        return Workload(name, layers, meta)
    except WorkloadError as exc:
        raise WorkloadError(f"{path}: {exc}") from None
