"""Energy and area of an architecture: its parts (``simulator.components``) priced by the technology tables.

* Dynamic energy of a layer = sum over parts of ``counter x uses x energy of one action`` (pJ), the counter being the
  part's ``per`` column of the layer's results row.
* Static energy = the chip's leakage power x the layer's wall time (``total_cycles / clock_mhz``).
* Area = sum over parts of ``count x cell area`` (mm2), grouped as compute, buffers (off-chip parts have none).

Every number comes from ``simulator/tables`` at the architecture's ``tech_node_nm``; a part whose component or action
the tables lack raises ``TechnologyError``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .components import COUNTERS, Part, memory_parts
from .config import ArchConfig, ConfigError
from .technology import cell_area_um2, cell_energy_pj, cell_leakage_nw

ENERGY_COLUMNS = ["dynamic_energy_pj", "static_energy_pj", "energy_pj"]


@dataclass(frozen=True)
class PricedPart:
    """A part with its prices: pJ per unit of its counter, um2 and nW for all its cells."""

    part: Part
    pj_per_unit: float
    area_um2: float
    leakage_nw: float


@functools.lru_cache(maxsize=512)
def priced_parts(arch: ArchConfig) -> tuple[PricedPart, ...]:
    """Every part of the chip (the design's compute parts, then buffers and DRAM) with its prices."""
    node = arch.tech_node_nm
    counters = (*COUNTERS, *arch.model.extra_columns)
    out = []
    for p in (*arch.model.parts(arch), *memory_parts(arch)):
        if p.per not in counters:
            raise ConfigError(f"{arch.design}: part {p.name!r} is driven by {p.per!r}, which is not a counter "
                              f"({', '.join(counters)})")
        energy = cell_energy_pj(p.component, p.action, p.bits, p.capacity_kib, node)
        area = cell_area_um2(p.component, p.bits, p.capacity_kib, node) if p.count else 0.0
        leak = cell_leakage_nw(p.component, p.bits, p.capacity_kib, node) if p.count else 0.0
        out.append(PricedPart(p, p.uses * energy, p.count * area, p.count * leak))
    return tuple(out)


def leakage_nw(arch: ArchConfig) -> float:
    """Leakage power of the whole chip (nW)."""
    return sum(pp.leakage_nw for pp in priced_parts(arch))


def row_energy(arch: ArchConfig, row: dict) -> dict:
    """``dynamic_energy_pj``, ``static_energy_pj`` and ``energy_pj`` of one results row (its counters and
    ``total_cycles``)."""
    dynamic = sum(row[pp.part.per] * pp.pj_per_unit for pp in priced_parts(arch))
    static = leakage_nw(arch) * row["total_cycles"] / arch.clock_mhz * 1e-3  # nW x us = 1e-3 pJ
    return {"dynamic_energy_pj": dynamic, "static_energy_pj": static, "energy_pj": dynamic + static}


def group_energy(arch: ArchConfig, layers: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per part group (compute, buffers, off-chip): each layer's energy (pJ), dynamic and static; the groups add up
    to ``energy_pj`` (the sums of ``energy_breakdown`` by group, without building it)."""
    parts = priced_parts(arch)
    time_us = layers["total_cycles"].to_numpy(dtype=float) / arch.clock_mhz
    counters = {per: layers[per].to_numpy(dtype=float) for per in {pp.part.per for pp in parts}}
    out: dict[str, np.ndarray] = {}
    for pp in parts:
        group = pp.part.group
        out[group] = out.get(group, 0.0) + counters[pp.part.per] * pp.pj_per_unit + pp.leakage_nw * time_us * 1e-3
    return out


def energy_breakdown(arch: ArchConfig, layers: pd.DataFrame) -> pd.DataFrame:
    """Tidy energy table: one row per (layer, part, action) with ``count`` (actions of one cell) and ``energy_pj``,
    ``kind`` dynamic; and one static row per layer (``count``: leakage nW x us)."""
    parts = priced_parts(arch)
    frames = []
    for pp in parts:
        p = pp.part
        units = layers[p.per].to_numpy(dtype=float)
        frames.append(pd.DataFrame({"layer": layers["layer"], "component": p.name, "cell": p.component,
                                    "group": p.group, "action": p.action, "count": units * p.uses,
                                    "energy_pj": units * pp.pj_per_unit, "kind": "dynamic"}))
    time_us = layers["total_cycles"].to_numpy(dtype=float) / arch.clock_mhz
    for group in dict.fromkeys(pp.part.group for pp in parts):
        leak = sum(pp.leakage_nw for pp in parts if pp.part.group == group)
        if leak:
            frames.append(pd.DataFrame({"layer": layers["layer"], "component": f"{group} leakage", "cell": "",
                                        "group": group, "action": "leak", "count": leak * time_us,
                                        "energy_pj": leak * time_us * 1e-3, "kind": "static"}))
    return pd.concat(frames, ignore_index=True)


def area_breakdown(arch: ArchConfig) -> pd.DataFrame:
    """One row per part with area: part, cell, group (compute / buffers), count, bits, area_mm2."""
    rows = [{"component": pp.part.name, "cell": pp.part.component, "group": pp.part.group, "count": pp.part.count,
             "bits": pp.part.bits, "area_mm2": pp.area_um2 * 1e-6} for pp in priced_parts(arch) if pp.area_um2]
    return pd.DataFrame(rows, columns=["component", "cell", "group", "count", "bits", "area_mm2"])


def area_mm2(arch: ArchConfig, group: str | None = None) -> float:
    """Chip area (mm2) at ``tech_node_nm``; ``group`` ("compute" or "buffers") restricts it to those parts."""
    return sum(pp.area_um2 for pp in priced_parts(arch) if group is None or pp.part.group == group) * 1e-6


SCALE_ALONG = ("tiles", "columns", "rows")


def scale_to_area(arch: ArchConfig, target_mm2: float, along: str = "tiles", group: str | None = None
                  ) -> ArchConfig:
    """A copy of ``arch`` with ``along`` (tiles, columns or rows) set so that its area (of ``group``, default the whole
    chip) is the closest to ``target_mm2`` that an integer count gives; named ``<name>@<area>mm2``. Buffer capacities
    stay. Designs whose knobs tie ``along`` to others (a ``group_size`` that must divide it) keep only valid values."""
    if along not in SCALE_ALONG:
        raise ConfigError(f"scale_to_area: along ({along!r}) must be one of {', '.join(SCALE_ALONG)}")
    if not target_mm2 > 0:
        raise ConfigError(f"scale_to_area: target_mm2 ({target_mm2}) must be > 0")

    def candidate(n: int) -> ArchConfig | None:
        try:
            return arch.replace(**{along: n})
        except ConfigError:
            return None

    lo, hi = 1, 4096
    while lo < hi:  # smallest n whose area reaches the target (area grows with n)
        mid = (lo + hi) // 2
        c = candidate(mid)
        if c is not None and area_mm2(c, group) >= target_mm2:
            hi = mid
        else:
            lo = mid + 1
    options = [c for n in range(max(1, lo - 8), min(4096, lo + 8) + 1) if (c := candidate(n)) is not None]
    if not options:
        raise ConfigError(f"scale_to_area: no valid value of {along} for {arch.name}")
    best = min(options, key=lambda c: abs(area_mm2(c, group) - target_mm2))
    return best.replace(name=f"{arch.name}@{target_mm2:g}mm2")
