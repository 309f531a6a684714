"""Simulation results: a tidy per-layer table plus provenance (docs/design.md §6)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from workloads.atomic import atomic_write

from .config import ArchConfig
from .energy import area_mm2, energy_breakdown

COLUMNS = [
    "arch", "config_hash", "workload", "layer", "kind", "macs", "cycles", "ideal_cycles", "pe_utilization",
    "lane_utilization", "terms", "act_brick_reads", "weight_brick_reads", "psum_writes", "busy_pe_cycles",
    "busy_lane_cycles", "idle_lane_cycles", "act_buffer_bits", "weight_buffer_bits", "output_buffer_bits",
    "dram_bits", "memory_cycles", "total_cycles", "bound", "time_us", "dynamic_energy_pj", "static_energy_pj",
    "energy_pj", "lossless", "weight_rel_error",
]


@dataclass(frozen=True)
class Results:
    """One architecture on one workload. ``layers``: one row per layer, units in the column names
    (cycles are PE-array compute cycles; ``ideal_cycles`` = the design's own work / chip lanes)."""

    arch: ArchConfig
    workload: str
    layers: pd.DataFrame
    workload_digest: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def cycles(self) -> int:
        return int(self.layers["cycles"].sum())

    @property
    def ideal_cycles(self) -> float:
        return float(self.layers["ideal_cycles"].sum())

    @property
    def total_cycles(self) -> int:
        """Cycles with memory: per layer max(compute, memory) with double buffering (``simulator.memory``)."""
        return int(self.layers["total_cycles"].sum())

    @property
    def time_us(self) -> float:
        """Wall time (us): total cycles at the design's clock."""
        return float(self.layers["time_us"].sum())

    @property
    def energy_pj(self) -> float:
        """Energy of one inference (pJ), dynamic and static."""
        return float(self.layers["energy_pj"].sum())

    @property
    def macs(self) -> int:
        return int(self.layers["macs"].sum())

    @property
    def lossless(self) -> bool:
        """True when every layer multiplies the workload's own weights (no run-time truncation or pruning)."""
        return bool(self.layers["lossless"].all())

    @property
    def area_mm2(self) -> float:
        """Chip area (mm2) at the architecture's technology node (``simulator.energy``)."""
        return area_mm2(self.arch)

    def metrics(self) -> dict:
        """Totals and derived figures: cycles, total_cycles, time_us, energy_pj, pj_per_mac, tops_per_w (2 ops per
        MAC), edp_pj_us (energy x time), area_mm2, lossless, max weight_rel_error."""
        energy, time_us, macs = self.energy_pj, self.time_us, self.macs
        return {"arch": self.arch.name, "workload": self.workload, "cycles": self.cycles,
                "total_cycles": self.total_cycles, "time_us": time_us, "energy_pj": energy,
                "pj_per_mac": energy / macs if macs else float("nan"),
                "tops_per_w": 2 * macs / energy if energy else float("nan"), "edp_pj_us": energy * time_us,
                "area_mm2": self.area_mm2, "lossless": self.lossless,
                "weight_rel_error": float(self.layers["weight_rel_error"].max())}

    def energy_breakdown(self) -> pd.DataFrame:
        """Tidy energy table: layer, component, cell, group, action, count, energy_pj, kind (dynamic / static)."""
        return energy_breakdown(self.arch, self.layers)

    def _same_workload(self, other: Results, what: str) -> None:
        if other.workload_digest and self.workload_digest and other.workload_digest != self.workload_digest:
            raise ValueError(f"{what} needs the same workload: {self.workload!r} vs {other.workload!r}")

    def speedup_over(self, baseline: Results, basis: str = "cycles") -> float:
        """Speedup over ``baseline`` on the same workload: ``basis="cycles"``: baseline compute cycles / these
        (clocks ignored); ``"time"``: baseline wall time / this wall time (each design's clock, memory included).
        inf if these take no time."""
        self._same_workload(baseline, "speedup")
        if basis == "cycles":
            return baseline.cycles / self.cycles if self.cycles else float("inf")
        if basis == "time":
            return baseline.time_us / self.time_us if self.time_us else float("inf")
        raise ValueError(f"speedup_over: basis ({basis!r}) must be 'cycles' or 'time'")

    def energy_efficiency_over(self, baseline: Results) -> float:
        """Baseline energy / this energy for the same inference (> 1: this design spends less)."""
        self._same_workload(baseline, "energy efficiency")
        return baseline.energy_pj / self.energy_pj if self.energy_pj else float("inf")


def package_version() -> str:
    try:
        return metadata.version("bitserial-sim")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _atomic_write(path: Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text.encode())


def write_table(table: pd.DataFrame, path: str | os.PathLike, results: list[Results],
                extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``table`` as CSV and its provenance beside it as ``<name>.run.json`` (configs, package version, git
    revision, input hashes); returns both paths. Each CSV gets its own provenance file, so several CSVs can share
    a folder."""
    path = Path(path)
    run_path = path.with_name(path.stem + ".run.json")
    run = {
        "csv": path.name,
        "package_version": package_version(),
        "git_revision": git_revision(),
        "archs": {r.arch.name: {**r.arch.to_dict(), "config_hash": r.arch.config_hash()} for r in results},
        "workloads": {r.workload: r.workload_digest for r in results},
        **(extra or {}),
    }
    text = json.dumps(run, indent=2, sort_keys=True, allow_nan=False)  # NaN / inf would not be valid JSON
    _atomic_write(path, table.to_csv(index=False))
    _atomic_write(run_path, text)
    return path, run_path
