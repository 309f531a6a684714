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

COLUMNS = [
    "arch", "config_hash", "workload", "layer", "kind", "macs", "cycles", "ideal_cycles", "pe_utilization",
    "lane_utilization", "terms", "act_brick_reads", "weight_brick_reads", "psum_writes", "busy_lane_cycles",
    "idle_lane_cycles", "time_us",
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

    def speedup_over(self, baseline: Results) -> float:
        """Baseline cycles / these cycles on the same workload (inf if these take no cycle)."""
        if baseline.workload_digest and self.workload_digest and baseline.workload_digest != self.workload_digest:
            raise ValueError(f"speedup needs the same workload: {self.workload!r} vs {baseline.workload!r}")
        return baseline.cycles / self.cycles if self.cycles else float("inf")


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
