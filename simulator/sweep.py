"""Sweeps: a YAML file of (design, knobs, workload, pruning) points, each with a stable key, run into a resumable store.

A sweep file::

    name: pragmatic-shifters                # optional, for the store's provenance
    designs:                                # each entry: a preset, fixed knobs, and grids
      - preset: dadiannao
      - preset: pragmatic
        knobs: {encoding: binary}           # fixed knob values
        grid: {first_stage_bits: [0, 1, 2, 3], run_ahead: [0, 1]}   # every combination
        zip: {rows: [8, 16], columns: [8, 16]}                        # lists taken side by side
    workloads:
      - alexnet                             # a built-in synthetic network, a built-in real workload or a .npz file
      - {synthetic: resnet50, seed: 1, act_bits: 8}
      - {builtin: resnet20-cifar10, precision: dfp8, images: 1}
      - {file: nets/mine.npz}
    pruning:                                # optional; default: the workloads as they are
      - none
      - {method: magnitude, sparsity: [0.5, 0.7]}   # lists expand as a grid
    outputs: [cycles, energy, accuracy]     # what each point keeps (accuracy: `evaluate`, built-in real only)
    accuracy_images: 500                    # images per accuracy (default 500)
    accuracy_subset: holdout                # CIFAR-10: all (default), or the half retraining never sees

A point is one design configuration x one workload x one pruning step. Its key is the sha256 of its full
configuration (every knob value of the resolved architecture, the workload's spec and content digest, the pruning
step, the outputs) and the package version: the same point has the same key on every run and machine, and a
changed knob, workload, method or version gives another key. ``expand`` validates the whole file up front; an
error is one line naming the field (``designs[1].grid.first_stage_bits``).

``PointStore`` keeps one Arrow IPC file per finished point (its per-layer results, with the point's columns, and the
JSON record of its provenance in the file's metadata), written atomically; a point is done when its file exists.
A failed point records its error instead and does not stop the sweep; ``run_sweep`` skips done points, so a rerun
computes only what is pending or failed. ``PointStore.table()`` is the concatenation: one tidy DataFrame, a row per
(point, layer). Executors (local processes, Dask) are in ``simulator.executors``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import platform
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workloads import Workload
from workloads.atomic import atomic_write

from .config import ArchConfig, ConfigError, load_arch, read_yaml
from .results import package_version

log = logging.getLogger(__name__)

OUTPUTS = ("cycles", "energy", "accuracy")
# results columns each output keeps (with the identifying ones and the design's own counters)
KEEP = {
    "cycles": ["macs", "cycles", "ideal_cycles", "pe_utilization", "lane_utilization", "terms", "memory_cycles",
               "total_cycles", "bound", "time_us", "lossless", "weight_rel_error"],
    "energy": ["busy_pe_cycles", "busy_lane_cycles", "act_buffer_bits", "weight_buffer_bits", "output_buffer_bits",
               "dram_bits", "dynamic_energy_pj", "static_energy_pj", "energy_pj"],  # + energy_<group>_pj
}
ENERGY_GROUPS = ("compute", "buffers", "off-chip")  # simulator.components Part.group
TOP_KEYS = {"name", "designs", "workloads", "pruning", "outputs", "accuracy_images", "accuracy_subset"}
SUBSETS = ("all", "holdout")
DESIGN_KEYS = {"preset", "knobs", "grid", "zip", "label"}
WORKLOAD_KINDS = ("synthetic", "builtin", "file")


class SweepError(ConfigError):
    """A sweep file that cannot be run: one line naming the file and the field."""


# ----------------------------------------------------------------------------- points
@dataclass(frozen=True)
class Point:
    """One point of a sweep: an architecture (as plain data), a workload spec, a pruning step, the outputs."""

    arch: dict  # ArchConfig.to_dict()
    workload: dict  # {"synthetic": name, ...} | {"builtin": name, ...} | {"file": path}
    pruning: dict  # {} (none) or {"method": name, **params}
    outputs: tuple[str, ...]
    accuracy_images: int
    digest: str  # the workload's content digest (before pruning)
    version: str
    labels: dict = field(default_factory=dict)  # the design entry's label and the knobs its grids set
    accuracy_subset: str = "all"

    @functools.cached_property
    def key(self) -> str:
        """sha256 (first 20 hex digits) of everything that determines the point's results."""
        data = {"arch": self.arch, "workload": self.workload, "pruning": self.pruning, "outputs": list(self.outputs),
                "accuracy_images": self.accuracy_images if "accuracy" in self.outputs else 0,
                "digest": self.digest, "version": self.version}
        if "accuracy" in self.outputs and self.accuracy_subset != "all":
            data["accuracy_subset"] = self.accuracy_subset
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]

    def describe(self) -> dict:
        """The point's identifying columns in the results table."""
        knobs = {f"knob:{k}": v for k, v in self.labels.get("knobs", {}).items()}
        return {"key": self.key, "preset": self.labels.get("preset", ""), "label": self.labels.get("label", ""),
                "design": self.arch["design"], "workload_spec": workload_text(self.workload),
                "pruning": pruning_text(self.pruning), **knobs}


def workload_text(spec: dict) -> str:
    kind = next(k for k in WORKLOAD_KINDS if k in spec)
    rest = ",".join(f"{k}={v}" for k, v in sorted(spec.items()) if k != kind)
    return f"{spec[kind]}" + (f"[{rest}]" if rest else "")


def pruning_text(step: dict) -> str:
    if not step:
        return "none"
    return step["method"] + "".join(f",{k}={v}" for k, v in sorted(step.items()) if k != "method")


def _grid(mapping: dict, where: str) -> list[dict]:
    """Every combination of ``mapping``'s lists (a scalar is a list of one)."""
    if not isinstance(mapping, dict):
        raise SweepError(f"{where}: must be a mapping of knob -> list of values, not {mapping!r:.60}")
    names = list(mapping)
    values = [v if isinstance(v, list) else [v] for v in mapping.values()]
    for name, vals in zip(names, values, strict=True):
        if not vals:
            raise SweepError(f"{where}.{name}: the list of values is empty")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def _zip(mapping: dict, where: str) -> list[dict]:
    """``mapping``'s lists taken side by side (all of one length)."""
    if not isinstance(mapping, dict):
        raise SweepError(f"{where}: must be a mapping of knob -> list of values, not {mapping!r:.60}")
    values = {k: (v if isinstance(v, list) else [v]) for k, v in mapping.items()}
    lengths = {len(v) for v in values.values()}
    if len(lengths) > 1:
        raise SweepError(f"{where}: zipped lists must have one length, got "
                         + ", ".join(f"{k}: {len(v)}" for k, v in values.items()))
    n = lengths.pop() if lengths else 1
    return [{k: v[i] for k, v in values.items()} for i in range(n)]


def _design_configs(entry: Any, where: str) -> list[tuple[ArchConfig, dict]]:
    """The architectures one ``designs`` entry expands to, each with its labels."""
    if isinstance(entry, str):
        entry = {"preset": entry}
    if not isinstance(entry, dict) or "preset" not in entry:
        raise SweepError(f"{where}: must be a preset name or a mapping with 'preset'")
    unknown = set(entry) - DESIGN_KEYS
    if unknown:
        raise SweepError(f"{where}: unknown field {sorted(unknown)[0]!r} (fields: {', '.join(sorted(DESIGN_KEYS))})")
    fixed = entry.get("knobs") or {}
    if not isinstance(fixed, dict):
        raise SweepError(f"{where}.knobs: must be a mapping of knob -> value")
    grid = _grid(entry.get("grid") or {}, f"{where}.grid")
    zipped = _zip(entry.get("zip") or {}, f"{where}.zip")
    clash = set(entry.get("grid") or {}) & set(entry.get("zip") or {}) | (
        set(fixed) & (set(entry.get("grid") or {}) | set(entry.get("zip") or {})))
    if clash:
        raise SweepError(f"{where}: knob {sorted(clash)[0]!r} is set in more than one of knobs / grid / zip")
    out = []
    for g, z in itertools.product(grid, zipped):
        varied = {**g, **z}
        try:
            arch = load_arch(str(entry["preset"]), **fixed, **varied)
        except ConfigError as exc:
            field_ = next((f"{part}.{k}" for part, d in (("grid", g), ("zip", z), ("knobs", fixed)) for k in d
                           if f"{k} (" in str(exc) or f"'{k}'" in str(exc)), "preset")
            raise SweepError(f"{where}.{field_}: {exc}") from None
        out.append((arch, {"preset": str(entry["preset"]), "label": str(entry.get("label", entry["preset"])),
                           "knobs": varied}))
    return out


def _workload_spec(entry: Any, where: str) -> dict:
    if isinstance(entry, str):
        from workloads import registry, synthetic

        if entry in synthetic.names():
            return {"synthetic": entry}
        if entry in registry.builtin_names():
            return {"builtin": entry}
        return {"file": entry}
    if not isinstance(entry, dict):
        raise SweepError(f"{where}: must be a workload name or a mapping with one of {', '.join(WORKLOAD_KINDS)}")
    kinds = [k for k in WORKLOAD_KINDS if k in entry]
    if len(kinds) != 1:
        raise SweepError(f"{where}: must have exactly one of {', '.join(WORKLOAD_KINDS)} (got {sorted(entry)})")
    return dict(entry)


def _pruning_steps(entry: Any, where: str) -> list[dict]:
    import pruning

    if entry in (None, "none"):
        return [{}]
    if not isinstance(entry, dict) or "method" not in entry:
        raise SweepError(f"{where}: must be 'none' or a mapping with 'method' and its parameters")
    method = entry["method"]
    if method not in pruning.METHODS:
        raise SweepError(f"{where}.method: unknown pruning method {method!r}; methods: {', '.join(pruning.METHODS)}")
    params = {k: v for k, v in entry.items() if k != "method"}
    steps = []
    for combo in _grid(params, where):
        name, call = method_call({"method": method, **combo})
        outer = pruning.METHODS[name]
        try:
            outer.bind({k: v for k, v in call.items() if k not in outer.options})
            inner = pruning.METHODS.get(call.get("method")) if outer.wraps else None
            if inner is not None:  # the wrapped method's own parameters
                own = {p.name for p in outer.params}
                inner.bind({k: v for k, v in call.items() if k not in own and k not in outer.options})
        except pruning.PruningError as exc:
            raise SweepError(f"{where}: {exc}") from None
        steps.append({"method": method, **combo})
    return steps


def method_call(step: dict) -> tuple[str, dict]:
    """(method name, parameters) of a pruning step; a wrapping method's inner method is written ``prune`` in sweep
    files (``{method: retrain, prune: n_of_g, keep: 8}``), since ``method`` names the step's own."""
    params = {k: v for k, v in step.items() if k != "method"}
    if "prune" in params:
        params["method"] = params.pop("prune")
    return step["method"], params


@functools.lru_cache(maxsize=8)
def load_spec_workload(spec_json: str, data_dir: str | None = None) -> Workload:
    """A workload from its spec (cached per process: a worker loads each workload once)."""
    from workloads import registry, synthetic

    spec = json.loads(spec_json)
    if "synthetic" in spec:
        params = {k: v for k, v in spec.items() if k != "synthetic"}
        return synthetic.build(spec["synthetic"], **params)
    if "builtin" in spec:
        params = {k: v for k, v in spec.items() if k != "builtin"}
        return registry.load_builtin(spec["builtin"], data_dir=data_dir, **params)
    return Workload.load(spec["file"])


def expand(sweep: dict | str | os.PathLike, *, data_dir: str | None = None) -> list[Point]:
    """Every point of a sweep (a file or its parsed mapping), validated; workloads are loaded for their digests."""
    source = "<sweep>"
    if not isinstance(sweep, dict):
        source = str(sweep)
        try:
            sweep = read_yaml(Path(sweep))
        except ConfigError as exc:
            raise SweepError(str(exc)) from None
    if not isinstance(sweep, dict):
        raise SweepError(f"{source}: a sweep file is a mapping (designs, workloads, ...)")
    unknown = set(sweep) - TOP_KEYS
    if unknown:
        raise SweepError(f"{source}: unknown field {sorted(unknown)[0]!r} (fields: {', '.join(sorted(TOP_KEYS))})")
    for need in ("designs", "workloads"):
        if not isinstance(sweep.get(need), list) or not sweep[need]:
            raise SweepError(f"{source}: {need} must be a non-empty list")
    outputs = sweep.get("outputs", ["cycles", "energy"])
    if not isinstance(outputs, list) or not outputs or any(o not in OUTPUTS for o in outputs):
        raise SweepError(f"{source}: outputs ({outputs!r}) must be a list of: {', '.join(OUTPUTS)}")
    images = sweep.get("accuracy_images", 500)
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise SweepError(f"{source}: accuracy_images ({images!r}) must be a positive integer")
    subset = sweep.get("accuracy_subset", "all")
    if subset not in SUBSETS:
        raise SweepError(f"{source}: accuracy_subset ({subset!r}) must be one of: {', '.join(SUBSETS)}")
    archs = [a for i, e in enumerate(sweep["designs"]) for a in _design_configs(e, f"{source}: designs[{i}]")]
    specs = [_workload_spec(e, f"{source}: workloads[{i}]") for i, e in enumerate(sweep["workloads"])]
    prune_list = sweep.get("pruning") or ["none"]
    if not isinstance(prune_list, list):
        raise SweepError(f"{source}: pruning must be a list")
    steps = [s for i, e in enumerate(prune_list) for s in _pruning_steps(e, f"{source}: pruning[{i}]")]
    digests = {}
    for i, spec in enumerate(specs):
        try:
            wl = load_spec_workload(json.dumps(spec, sort_keys=True), data_dir)
        except Exception as exc:  # noqa: BLE001 - any loading failure is the field's error
            raise SweepError(f"{source}: workloads[{i}] ({workload_text(spec)}): {exc}".splitlines()[0]) from None
        if "accuracy" in outputs and not wl.meta.get("builtin"):
            raise SweepError(f"{source}: workloads[{i}] ({workload_text(spec)}): accuracy needs a built-in real "
                             f"workload (its model and labelled images)")
        digests[i] = wl.digest()
    version = package_version()
    points = [Point(arch.to_dict(), spec, step, tuple(outputs), images, digests[i], version, labels, subset)
              for (arch, labels) in archs for i, spec in enumerate(specs) for step in steps]
    keys = [p.key for p in points]
    if len(set(keys)) != len(keys):  # the same configuration twice: keep one
        seen, unique = set(), []
        for p in points:
            if p.key not in seen:
                seen.add(p.key)
                unique.append(p)
        points = unique
    return points


# ----------------------------------------------------------------------------- one point
def pruned_workload_path(store_root: str | os.PathLike, point: Point) -> Path:
    """Where the store keeps ``point``'s pruned workload (one file per distinct workload and pruning step, shared by
    every point and worker that needs it)."""
    text = json.dumps([point.workload, point.pruning, point.digest, point.version], sort_keys=True)
    return Path(store_root) / "workloads" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz"


@functools.lru_cache(maxsize=8)
def _point_workload(spec_json: str, pruning_json: str, digest: str, data_dir: str | None,
                    saved: str | None = None) -> Workload:
    """A point's workload, pruned (cached per process: the points of a design grid share it). With ``saved`` (a
    path in the store), a pruned workload is read from that file when it exists, else computed and written there,
    so that a retraining runs once per store, not once per worker or per rerun."""
    import pruning

    step = json.loads(pruning_json)
    if step and saved and Path(saved).is_file():
        return Workload.load(saved)
    wl = load_spec_workload(spec_json, data_dir)
    if wl.digest() != digest:
        raise SweepError(f"workload {workload_text(json.loads(spec_json))} changed since the sweep was expanded "
                         f"(digest {wl.digest()[:12]} != {digest[:12]})")
    if step:
        name, params = method_call(step)
        wl = pruning.prune(wl, name, **params).workload
        if saved:
            wl.save(saved)
    return wl


def point_workload(point: Point, data_dir: str | None = None, store_root: str | os.PathLike | None = None
                   ) -> Workload:
    """The workload ``point`` simulates (its pruning step applied; kept in the store when ``store_root`` is given)."""
    saved = str(pruned_workload_path(store_root, point)) if store_root is not None and point.pruning else None
    return _point_workload(json.dumps(point.workload, sort_keys=True), json.dumps(point.pruning, sort_keys=True),
                           point.digest, data_dir, saved)


@functools.lru_cache(maxsize=256)
def _arch(arch_json: str) -> ArchConfig:
    from .config import arch_from_dict

    return arch_from_dict(json.loads(arch_json), "sweep point")


_TOP1: dict[tuple[str, int, str], float] = {}  # (effective workload digest, images, subset) -> top-1, per process


def _top1(arch: ArchConfig, wl: Workload, images: int, subset: str) -> float:
    """Top-1 of the weights ``arch`` multiplies, scored once per process for each distinct effective workload (the
    lossless designs of a sweep share one score)."""
    from workloads.evaluate import evaluate

    from .compare import effective_workload

    eff = effective_workload(arch, wl)
    key = (eff.digest(), images, subset)
    if key not in _TOP1:
        kw = {} if subset == "all" else {"subset": subset}
        _TOP1[key] = float(evaluate(eff, limit=images, **kw)["top1"])
    return _TOP1[key]


def compute_point(point: Point, data_dir: str | None = None, store_root: str | os.PathLike | None = None
                  ) -> tuple[pa.Table, float]:
    """Simulate one point: its per-layer results with the point's columns (and accuracy if asked), as an Arrow table
    (what the store writes), and the seconds ``simulate`` took."""
    from .energy import group_energy
    from .engine import simulate

    wl = point_workload(point, data_dir, store_root)
    arch = _arch(json.dumps(point.arch, sort_keys=True))
    start = time.perf_counter()
    res = simulate(arch, wl)
    sim_seconds = time.perf_counter() - start
    layers = res.layers
    keep = ["layer", "kind"] + [c for o in point.outputs for c in KEEP.get(o, [])] + list(arch.model.extra_columns)
    n = len(layers)
    ids = point.describe()
    columns = {"key": ids.pop("key"), "arch": arch.name, **ids}
    columns = {c: pa.array([v] * n) for c, v in columns.items()}  # a point's constants, on every layer's row
    for c in keep:
        columns[c] = pa.array(layers[c].to_numpy())
    if "energy" in point.outputs:  # per part group: compute (the design's parts), buffers, off-chip
        groups = group_energy(arch, layers)
        for group in ENERGY_GROUPS:
            columns[f"energy_{group.replace('-', '')}_pj"] = pa.array(groups.get(group, np.zeros(n)))
    if "accuracy" in point.outputs:
        columns["top1"] = pa.array([_top1(arch, wl, point.accuracy_images, point.accuracy_subset)] * n)
    table = pa.table(columns)
    return table, sim_seconds


# ----------------------------------------------------------------------------- the store
PROVENANCE = b"bitserial.provenance"  # the key of a point file's provenance record (its schema metadata)
POINT_SUFFIXES = (".arrow", ".parquet")  # what a point file is written as; Parquet: stores of earlier versions


def read_point_file(path: str | os.PathLike) -> pa.Table:
    """A point file: Arrow IPC (``.arrow``, what the store writes) or Parquet (``.parquet``, earlier stores)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.read_table(path)
    with pa.OSFile(str(path), "rb") as fh:
        return pa.ipc.open_file(fh).read_all()


class PointStore:
    """One folder: ``points/<key>.arrow`` per finished point (its per-layer results as an Arrow IPC file, with its
    provenance record in the schema metadata; ``pd.read_feather`` or :func:`read_point_file` reads one) and
    ``failed/<key>.json`` per failed one. Every file is written atomically (a temporary file renamed into place), so
    a point file that exists is complete. Arrow IPC rather than Parquet for the point files: a point's few rows
    write in a third of the time (0.3 against 1 ms here), which is the store's whole cost per point; the whole table
    exports to Parquet or CSV (``bitserial sweep --table``). Parquet point files of earlier stores are read too."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.points = self.root / "points"
        self.failed = self.root / "failed"

    def point_file(self, key: str) -> Path | None:
        """The finished point's file, or None."""
        for suffix in POINT_SUFFIXES:
            path = self.points / f"{key}{suffix}"
            if path.is_file():
                return path
        return None

    def done(self, key: str) -> bool:
        return self.point_file(key) is not None

    def done_keys(self) -> set[str]:
        if not self.points.is_dir():
            return set()
        return {p.stem for suffix in POINT_SUFFIXES for p in self.points.glob(f"*{suffix}")}

    def failed_keys(self) -> set[str]:
        return {p.stem for p in self.failed.glob("*.json")} if self.failed.is_dir() else set()

    def write(self, point: Point, table: pa.Table | pd.DataFrame, seconds: float, simulate_seconds: float = 0.0
              ) -> None:
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, preserve_index=False)
        record = {"key": point.key, "point": _point_data(point), "seconds": seconds,
                  "simulate_seconds": simulate_seconds, "host": platform.node(), "pid": os.getpid(),
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               PROVENANCE: json.dumps(record, default=str).encode()})
        with atomic_write(self.points / f"{point.key}.arrow") as fh, pa.ipc.new_file(fh, table.schema) as writer:
            writer.write_table(table)
        (self.failed / f"{point.key}.json").unlink(missing_ok=True)

    def write_failure(self, point: Point, error: BaseException) -> None:
        record = {"key": point.key, "point": _point_data(point), "error": f"{type(error).__name__}: {error}",
                  "traceback": "".join(traceback.format_exception(error))[-4000:], "host": platform.node()}
        with atomic_write(self.failed / f"{point.key}.json") as fh:
            fh.write(json.dumps(record, indent=1, default=str).encode())

    def remove_temporaries(self) -> int:
        """Remove the temporary files of writers that were killed before they finished (never read as results);
        returns how many. Only while no other sweep writes into this store."""
        stale = [p for folder in (self.points, self.failed, self.root / "workloads") if folder.is_dir()
                 for p in folder.glob("*.tmp")]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def status(self, points: Iterable[Point]) -> dict[str, int]:
        """done / failed / pending counts of ``points``."""
        done, failed = self.done_keys(), self.failed_keys()
        counts = {"done": 0, "failed": 0, "pending": 0}
        for p in points:
            counts["done" if p.key in done else "failed" if p.key in failed else "pending"] += 1
        return counts

    def record(self, key: str) -> dict:
        """A finished point's provenance: the point, seconds (compute), simulate_seconds, host, pid, finished."""
        path = self.point_file(key)
        if path is None:
            raise KeyError(f"{self.root}: point {key} is not finished")
        if path.suffix == ".parquet":
            meta = pq.read_schema(path).metadata or {}
        else:
            with pa.OSFile(str(path), "rb") as fh:
                meta = pa.ipc.open_file(fh).schema.metadata or {}
        return json.loads(meta[PROVENANCE])

    def records(self) -> pd.DataFrame:
        """The finished points' provenance: key, seconds, simulate_seconds, host, finished."""
        rows = [self.record(k) for k in sorted(self.done_keys())]
        cols = ["key", "seconds", "simulate_seconds", "host", "finished"]
        return pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)

    def errors(self) -> pd.DataFrame:
        rows = [json.loads(p.read_text()) for p in sorted(self.failed.glob("*.json"))] if self.failed.is_dir() else []
        return pd.DataFrame([{"key": r["key"], "error": r["error"]} for r in rows], columns=["key", "error"])

    def table(self, points: Iterable[Point] | None = None) -> pd.DataFrame:
        """The finished points' results (all, or those of ``points``): one row per (point, layer)."""
        keys = self.done_keys() if points is None else [p.key for p in points if self.done(p.key)]
        frames = [read_point_file(self.point_file(k)).to_pandas() for k in sorted(keys)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _point_data(point: Point) -> dict:
    return {"arch": point.arch, "workload": point.workload, "pruning": point.pruning, "outputs": list(point.outputs),
            "accuracy_images": point.accuracy_images, "accuracy_subset": point.accuracy_subset,
            "digest": point.digest, "version": point.version,
            "labels": point.labels}


def run_point(point: Point, store_root: str, data_dir: str | None = None) -> tuple[str, str, float]:
    """Compute and store one point (in any process); returns (key, "done" | "failed", seconds). A point's own
    error is recorded in the store, not raised, so that the sweep goes on."""
    store = PointStore(store_root)
    start = time.perf_counter()
    try:
        table, sim_seconds = compute_point(point, data_dir, store_root)
    except Exception as exc:  # noqa: BLE001 - recorded with its traceback
        store.write_failure(point, exc)
        log.warning("point %s failed: %s", point.key, exc)
        return point.key, "failed", time.perf_counter() - start
    store.write(point, table, time.perf_counter() - start, sim_seconds)
    return point.key, "done", time.perf_counter() - start


def prune_point(point: Point, store_root: str, data_dir: str | None = None) -> tuple[str, str, float]:
    """Compute and keep ``point``'s pruned workload in the store (in any process); returns (key, "done" | "failed",
    seconds). A failure is logged, not recorded: the points that need the workload try again and record it."""
    start = time.perf_counter()
    try:
        point_workload(point, data_dir, store_root)
    except Exception as exc:  # noqa: BLE001 - the points record it
        log.warning("pruning %s of %s failed: %s", point.pruning, workload_text(point.workload), exc)
        return point.key, "failed", time.perf_counter() - start
    return point.key, "done", time.perf_counter() - start


Progress = Callable[[int, int, dict], None]  # (finished, total, {"failed": n, ...})


def run_sweep(points: list[Point], store: PointStore, executor, *, progress: Progress | None = None) -> dict[str, int]:
    """Run the points the store has not finished on ``executor`` (``simulator.executors``); returns the status.

    A store takes one sweep at a time (an interrupted run's temporary files are removed first). Pruned workloads
    come first: each distinct (workload, pruning step) the pending points need is computed once, in
    parallel, and kept in the store (``workloads/``), so that no two workers retrain the same network and a rerun
    retrains nothing that finished."""
    if store.remove_temporaries():
        log.info("removed the temporary files of an interrupted run from %s", store.root)
    todo = [p for p in points if not store.done(p.key)]
    total, finished, failed = len(points), len(points) - len(todo), 0
    firsts: dict[Path, Point] = {}
    for p in todo:
        if p.pruning:
            firsts.setdefault(pruned_workload_path(store.root, p), p)
    prune = [p for path, p in firsts.items() if not path.is_file()]
    if progress:
        progress(finished, total, {"failed": failed, "pruned workloads": f"0/{len(prune)}"} if prune else
                 {"failed": failed})
    if prune:
        log.info("pruning %d workload(s) before the points", len(prune))
        for i, _ in enumerate(executor.map_points(prune, str(store.root), task=prune_point), 1):
            if progress:
                progress(finished, total, {"failed": failed, "pruned workloads": f"{i}/{len(prune)}"})
    for _key, state, _seconds in executor.map_points(todo, str(store.root)):
        finished += 1
        failed += state == "failed"
        if progress:
            progress(finished, total, {"failed": failed})
    return store.status(points)
