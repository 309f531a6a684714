"""Fair comparisons of architectures on one workload: time, energy, area, equal area, and accuracy of lossy designs.

One row per architecture (the baseline's row has ratios of 1):

* ``speedup_cycles``: baseline compute cycles / compute cycles (clocks ignored: the DNNsim convention);
* ``speedup_time``: baseline wall time / wall time (each design's clock; memory-bound layers included);
* ``energy_efficiency``: baseline energy / energy for the same inference;
* ``area_mm2`` and ``perf_per_area``: speedup in time / (area / baseline area);
* ``speedup_iso_area``: the speedup in time of the architecture whose PE array is re-sized (``scale_to_area`` of the
  compute parts along ``iso_area``: columns, tiles or rows; buffers unchanged) to the baseline's compute area and
  simulated again (not a linear extrapolation: mapping losses show);
* ``lossless`` / ``weight_rel_error``: whether the design multiplies the workload's own weights; lossy designs (run-time
  truncation or pruning) get ``top1`` from ``evaluate`` on the weights they actually multiply when ``accuracy`` is
  given (built-in real workloads only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from workloads import Workload

from .config import ArchConfig, load_arch
from .energy import area_mm2, scale_to_area
from .engine import effective_weights, simulate
from .results import Results

COMPARE_COLUMNS = ["arch", "design", "clock_mhz", "tech_node_nm", "cycles", "time_us", "energy_uj", "area_mm2",
                   "speedup_cycles", "speedup_time", "energy_efficiency", "perf_per_area", "iso_area_size",
                   "speedup_iso_area", "bound_memory_layers", "lossless", "weight_rel_error", "top1"]


def effective_workload(arch: ArchConfig, workload: Workload) -> Workload:
    """``workload`` with every layer's weights replaced by those ``arch`` actually multiplies (``workload`` itself
    when the design surely multiplies every layer's own)."""
    if all(arch.model.surely_lossless(arch, layer) for layer in workload.layers):
        return workload
    layers = [layer.with_values(weights=effective_weights(arch, layer)) for layer in workload.layers]
    return Workload(workload.name, layers, meta=dict(workload.meta))


def accuracy(arch: ArchConfig, workload: Workload, limit: int, **evaluate_kw) -> float:
    """Top-1 of the built-in real ``workload``'s model with the weights ``arch`` multiplies (``limit`` images)."""
    from workloads.evaluate import evaluate

    return float(evaluate(effective_workload(arch, workload), limit=limit, **evaluate_kw)["top1"])


def compare(archs: Sequence[ArchConfig | str], workload: Workload, baseline: ArchConfig | str = "dadiannao", *,
            iso_area: str | None = "columns", accuracy_images: int | None = None,
            results: Sequence[Results] | None = None,
            progress: Callable[[str], Callable[[int, int, str], None] | None] | None = None) -> pd.DataFrame:
    """The comparison table (module docstring), baseline first. ``results``: already simulated runs to reuse."""
    base_arch = load_arch(baseline)
    arch_list = [base_arch] + [a for a in (load_arch(x) for x in archs) if a != base_arch]
    done = {r.arch: r for r in (results or ())}

    def run(arch: ArchConfig) -> Results:
        if arch not in done:
            done[arch] = simulate(arch, workload, progress=progress(arch.name) if progress else None)
        return done[arch]

    base = run(base_arch)
    base_area, base_compute = area_mm2(base_arch), area_mm2(base_arch, "compute")
    rows = []
    for arch in arch_list:
        res = run(arch)
        area = area_mm2(arch)
        speed_time = res.speedup_over(base, basis="time")
        row = {"arch": arch.name, "design": str(arch.design), "clock_mhz": arch.clock_mhz,
               "tech_node_nm": arch.tech_node_nm, "cycles": res.cycles, "time_us": res.time_us,
               "energy_uj": res.energy_pj * 1e-6, "area_mm2": area, "speedup_cycles": res.speedup_over(base),
               "speedup_time": speed_time, "energy_efficiency": res.energy_efficiency_over(base),
               "perf_per_area": speed_time * base_area / area, "iso_area_size": np.nan, "speedup_iso_area": np.nan,
               "bound_memory_layers": int((res.layers["bound"] == "memory").sum()), "lossless": res.lossless,
               "weight_rel_error": float(res.layers["weight_rel_error"].max()), "top1": np.nan}
        if iso_area is not None:
            sized = arch if arch == base_arch else scale_to_area(arch, base_compute, along=iso_area, group="compute")
            row["iso_area_size"] = getattr(sized, iso_area)
            row["speedup_iso_area"] = run(sized).speedup_over(base, basis="time")
        if accuracy_images and (not res.lossless or arch == base_arch):
            row["top1"] = accuracy(arch, workload, accuracy_images)
        rows.append(row)
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)
