"""Technology tables: the energy of one action and the area of one hardware cell, and their scaling across nodes.

The data are CSV files in ``simulator/tables/`` with the source of every number:

* ``energy.csv``: component, action, bits, capacity_kib, node_nm, voltage_v, energy_pj, word_bits, scaling, source;
* ``area.csv``: component, bits, capacity_kib, node_nm, area_um2, leakage_nw (memories: CACTI's leakage of the
  bank; NanGate cells: the library's; blank where the logic density applies), scaling, source;
* ``nodes.csv``: per technology node, the nominal supply and Stillmaker and Baas's (Integration 58, 2017) fitted
  energy and power polynomials in Vdd and area factors, plus the leakage density of logic (nW per um2 at 45 nm).

A lookup takes the table row of the same component (and action) nearest in ``log2(bits)`` (ties: the smaller
width; memories: then nearest in ``log2(capacity)``) and scales it by the row's ``scaling`` rule: ``linear`` or
``quadratic`` in the width, ``exponential`` (x2 per bit: converter resolution), ``sqrt_capacity`` (memory access
energy: linear in the word, square root of the capacity), ``capacity`` (memory area: linear in the capacity), or
``none`` (the width must be tabulated). A ``linear`` width between two tabulated ones interpolates their per-bit
values linearly in ``log2(bits)`` instead, so cost grows with the width (a 16-bit adder lies between Horowitz's 8-
and 32-bit figures; scaled from the nearest entry it cost more than a 17-bit one). A
component, action or node the tables lack is an error, never a default.

Across nodes, energy scales by the ratio of the energy polynomials evaluated at each node's supply, leakage by the
ratio of the power polynomials, and area by the ratio of the area factors, only at the tabulated nodes (no
interpolation between nodes).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .knobs import ConfigError

TABLES = Path(__file__).resolve().parent / "tables"
_SCALINGS = ("linear", "quadratic", "exponential", "sqrt_capacity", "capacity", "none")


class TechnologyError(ConfigError):
    """A component, action or technology node the tables do not hold."""


@dataclass(frozen=True)
class Node:
    """One tabulated technology node: nominal supply (V), Stillmaker-Baas energy and power polynomials in Vdd
    (c2 V^2 + c1 V + c0; only ratios are meaningful), area relative to 45 nm."""

    node_nm: int
    nominal_vdd: float
    energy: tuple[float, float, float]
    power: tuple[float, float, float]
    area_vs_45nm: float
    leakage_nw_per_um2: float  # NaN where not tabulated (only 45 nm is)

    def energy_at(self, vdd: float) -> float:
        c2, c1, c0 = self.energy
        return c2 * vdd * vdd + c1 * vdd + c0

    def power_at(self, vdd: float) -> float:
        c2, c1, c0 = self.power
        return c2 * vdd * vdd + c1 * vdd + c0


def _read(name: str, required: tuple[str, ...]) -> pd.DataFrame:
    path = TABLES / name
    table = pd.read_csv(path)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise TechnologyError(f"{path}: missing column(s) {', '.join(missing)}")
    if "scaling" in table:
        bad = table.loc[~table["scaling"].isin(_SCALINGS), "scaling"]
        if len(bad):
            raise TechnologyError(f"{path}: scaling {bad.iloc[0]!r} must be one of {', '.join(_SCALINGS)}")
    if "source" in table and table["source"].isna().any():
        raise TechnologyError(f"{path}: row {int(table['source'].isna().idxmax()) + 2} has no source")
    return table


@functools.cache
def energy_table() -> pd.DataFrame:
    """Per-action energies (pJ per action of one cell, at the row's node and voltage)."""
    return _read("energy.csv", ("component", "action", "bits", "capacity_kib", "node_nm", "voltage_v", "energy_pj",
                                "word_bits", "scaling", "source"))


@functools.cache
def area_table() -> pd.DataFrame:
    """Per-component areas (um2 of one cell at the row's node)."""
    return _read("area.csv", ("component", "bits", "capacity_kib", "node_nm", "area_um2", "leakage_nw", "scaling",
                              "source"))


@functools.cache
def _nodes() -> dict[int, Node]:
    table = _read("nodes.csv", ("node_nm", "nominal_vdd", "energy_c2", "energy_c1", "energy_c0", "power_c2",
                                "power_c1", "power_c0", "area_vs_45nm", "leakage_nw_per_um2", "source"))
    return {int(r.node_nm): Node(int(r.node_nm), float(r.nominal_vdd), (r.energy_c2, r.energy_c1, r.energy_c0),
                                 (r.power_c2, r.power_c1, r.power_c0), float(r.area_vs_45nm),
                                 float(r.leakage_nw_per_um2))
            for r in table.itertuples()}


def tabulated_nodes() -> tuple[int, ...]:
    """Technology nodes (nm) the scaling tables hold, largest first."""
    return tuple(sorted(_nodes(), reverse=True))


def node(node_nm: int) -> Node:
    try:
        return _nodes()[int(node_nm)]
    except KeyError:
        raise TechnologyError(f"technology node {node_nm} nm is not tabulated (Stillmaker and Baas 2017 give "
                              f"{', '.join(map(str, tabulated_nodes()))} nm; nodes are not interpolated)") from None


def energy_factor(src_nm: int, src_vdd: float, dst_nm: int, dst_vdd: float | None = None) -> float:
    """Energy at (dst node, dst supply; default its nominal) / energy at (src node, src supply)."""
    dst = node(dst_nm)
    return dst.energy_at(dst.nominal_vdd if dst_vdd is None else dst_vdd) / node(src_nm).energy_at(src_vdd)


def power_factor(src_nm: int, src_vdd: float, dst_nm: int, dst_vdd: float | None = None) -> float:
    """Power at (dst node, dst supply; default its nominal) / power at (src node, src supply)."""
    dst = node(dst_nm)
    return dst.power_at(dst.nominal_vdd if dst_vdd is None else dst_vdd) / node(src_nm).power_at(src_vdd)


def area_factor(src_nm: int, dst_nm: int) -> float:
    """Area at the dst node / area at the src node."""
    return node(dst_nm).area_vs_45nm / node(src_nm).area_vs_45nm


def leakage_density_nw_per_um2() -> float:
    """Leakage power density at 45 nm, nominal supply (nW per um2 of cell area; nodes.csv)."""
    value = node(45).leakage_nw_per_um2
    if math.isnan(value):
        raise TechnologyError(f"{TABLES / 'nodes.csv'}: no leakage_nw_per_um2 for 45 nm")
    return value


def _nearest(rows: pd.DataFrame, bits: int, capacity_kib: float) -> pd.Series:
    """The row nearest in log2(bits) (ties: the smaller width), then in log2(capacity) (ties: the smaller)."""
    dist = (rows["bits"].map(lambda b: abs(math.log2(b / bits))), rows["bits"],
            rows["capacity_kib"].map(lambda c: abs(math.log2(c / capacity_kib)) if c > 0 and capacity_kib > 0
                                     else 0.0), rows["capacity_kib"].fillna(0))
    order = sorted(range(len(rows)), key=lambda i: tuple(d.iloc[i] for d in dist))
    return rows.iloc[order[0]]


def _scale(row: pd.Series, value: float, bits: int, capacity_kib: float, what: str) -> float:
    rule, ratio = row["scaling"], bits / row["bits"]
    if rule == "linear":
        return value * ratio
    if rule == "quadratic":
        return value * ratio * ratio
    if rule == "exponential":  # converters: x2 per bit of resolution
        return value * 2.0 ** (bits - row["bits"])
    if rule == "sqrt_capacity":
        return value * ratio * math.sqrt(capacity_kib / row["capacity_kib"])
    if rule == "capacity":
        return value * ratio * capacity_kib / row["capacity_kib"]
    if bits != row["bits"]:
        raise TechnologyError(f"{what}: {bits} bits is not tabulated and its scaling is 'none'")
    return value


def _lookup(rows: pd.DataFrame, column: str, bits: int, capacity_kib: float, what: str) -> tuple[float, pd.Series]:
    """The value of ``column`` for ``bits`` (and ``capacity_kib``) and the row whose node and supply it is at."""
    row = _nearest(rows, bits, capacity_kib)
    if row["scaling"] == "linear" and row["bits"] != bits:
        same = rows[(rows["scaling"] == "linear") & (rows["node_nm"] == row["node_nm"])]
        if "voltage_v" in rows:
            same = same[same["voltage_v"] == row["voltage_v"]]
        below, above = same[same["bits"] < bits], same[same["bits"] > bits]
        if len(below) and len(above):
            lo, hi = below.loc[below["bits"].idxmax()], above.loc[above["bits"].idxmin()]
            t = math.log2(bits / lo["bits"]) / math.log2(hi["bits"] / lo["bits"])
            per_bit = (1 - t) * lo[column] / lo["bits"] + t * hi[column] / hi["bits"]
            return float(per_bit * bits), lo
    return _scale(row, float(row[column]), bits, capacity_kib, what), row


def _rows(table: pd.DataFrame, component: str, action: str | None, file: str) -> pd.DataFrame:
    rows = table[table["component"] == component]
    if action is not None:
        if rows.empty:
            raise TechnologyError(f"{TABLES / file}: unknown component {component!r}")
        rows = rows[rows["action"] == action]
    if rows.empty:
        what = f"component {component!r}" + (f" action {action!r}" if action is not None else "")
        raise TechnologyError(f"{TABLES / file}: no entry for {what}")
    return rows


def _check(component: str, bits: int, capacity_kib: float, rows: pd.DataFrame) -> None:
    if bits < 1:
        raise TechnologyError(f"{component}: bits ({bits}) must be >= 1")
    memory = rows["capacity_kib"].notna().any()
    if memory and not capacity_kib > 0:
        raise TechnologyError(f"{component}: a memory needs capacity_kib > 0 (got {capacity_kib})")


@functools.cache
def cell_energy_pj(component: str, action: str, bits: int, capacity_kib: float = 0.0, node_nm: int = 45) -> float:
    """Energy (pJ) of one ``action`` of one ``component`` cell of ``bits`` (memories: a ``bits``-wide access to
    ``capacity_kib``) at ``node_nm`` and its nominal supply."""
    rows = _rows(energy_table(), component, action, "energy.csv")
    _check(component, bits, capacity_kib, rows)
    value, row = _lookup(rows, "energy_pj", bits, capacity_kib, f"{component} {action}")
    if component == "dram":  # the off-chip interface does not scale with the logic node
        return value
    return value * energy_factor(int(row["node_nm"]), float(row["voltage_v"]), node_nm)


@functools.cache
def cell_area_um2(component: str, bits: int, capacity_kib: float = 0.0, node_nm: int = 45) -> float:
    """Area (um2) of one ``component`` cell of ``bits`` (memories: of ``capacity_kib``) at ``node_nm``."""
    rows = _rows(area_table(), component, None, "area.csv")
    _check(component, bits, capacity_kib, rows)
    value, row = _lookup(rows, "area_um2", bits, capacity_kib, f"{component} area")
    return value * area_factor(int(row["node_nm"]), node_nm)


@functools.cache
def cell_leakage_nw(component: str, bits: int, capacity_kib: float = 0.0, node_nm: int = 45) -> float:
    """Leakage power (nW) of one cell at ``node_nm``, nominal supply: its tabulated leakage (CACTI memories, NanGate
    cells; scaled like its area), else its 45 nm area x the 45 nm logic leakage density; scaled across nodes by the
    power polynomials."""
    rows = _rows(area_table(), component, None, "area.csv")
    _check(component, bits, capacity_kib, rows)
    row = _nearest(rows, bits, capacity_kib)
    if pd.notna(row["leakage_nw"]):
        value, row = _lookup(rows, "leakage_nw", bits, capacity_kib, f"{component} leakage")
        src = int(row["node_nm"])
        return value * power_factor(src, node(src).nominal_vdd, node_nm)
    at45 = cell_area_um2(component, bits, capacity_kib, 45)
    return at45 * leakage_density_nw_per_um2() * power_factor(45, node(45).nominal_vdd, node_nm)
