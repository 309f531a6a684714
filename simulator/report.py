"""Tables and plots of results, knobs and workloads: what the command line prints and draws, usable from Python.

Text tables fit a terminal of ``WIDTH`` columns (long cells wrap); plots are written atomically as PNG files.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workloads import Workload
from workloads.atomic import atomic_write

from .config import ArchConfig, design_knobs, preset_path
from .knobs import MACHINE, Design, Knob, plain
from .results import Results
from .stats import bits_histogram

WIDTH = 100  # terminal columns the listings fit


# ----------------------------------------------------------------------------- text tables
def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 2, width: int | None = None,
                 wrap: int | None = None) -> str:
    """Plain aligned text: the first ``left`` columns left-aligned, the rest right-aligned; a rule before TOTAL.

    With ``width``, column ``wrap`` (default: the last) is wrapped so that every line fits ``width`` columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    n = len(headers)
    widths = [max(len(r[i]) for r in cells) for i in range(n)]
    col = n - 1 if wrap is None else wrap
    if width is not None:
        room = width - (sum(widths) - widths[col]) - 2 * (n - 1)
        widths[col] = max(12, min(widths[col], room))

    def lines_of(row: list[str]) -> list[str]:
        pieces = [textwrap.wrap(c, widths[i]) or [""] if i == col and len(c) > widths[i] else [c]
                  for i, c in enumerate(row)]
        out = []
        for k in range(max(len(p) for p in pieces)):
            parts = [(p[k] if k < len(p) else "") for p in pieces]
            out.append("  ".join(c.ljust(w) if i < left or i == col else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(parts, widths))).rstrip())
        return out

    rule = "  ".join("-" * w for w in widths)
    out = [*lines_of(cells[0]), rule]
    for row in cells[1:]:
        if row[0] == "TOTAL":
            out.append(rule)
        out.extend(lines_of(row))
    return "\n".join(out)


def indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe_workload(workload: Workload) -> str:
    """One line naming a workload: its origin, layers and inputs."""
    meta = workload.meta
    if meta.get("generator") == "synthetic":
        return f"{workload.name} (synthetic, seed {meta.get('seed')}, {plural(len(workload), 'layer')})"
    if meta.get("builtin"):
        return (f"{workload.name} ({plural(len(workload), 'layer')}, {Path(str(meta.get('model_file'))).name}, "
                f"{plural(int(meta.get('images', 1)), 'input')})")
    return f"{workload.name} ({plural(len(workload), 'layer')})"


def preset_description(name: str) -> str:
    """The first comment line of preset ``name``'s YAML file, or ""."""
    path = preset_path(name)
    if path is None:
        return ""
    try:
        first = path.read_text().splitlines()[:1]
    except OSError:
        return ""
    return first[0].lstrip("#").strip() if first and first[0].startswith("#") else ""


def knob_rows(knobs: Sequence[Knob], values: dict[str, Any] | None = None) -> list[list[str]]:
    """One row per knob: name, the values it takes (with the unit), its default (or its value in ``values``),
    meaning."""
    rows = []
    for knob in knobs:
        value = plain(values[knob.name] if values is not None else knob.default)
        if isinstance(value, bool):
            value = str(value).lower()
        values_text = f"{knob.type_text()} {knob.unit}" if knob.unit else knob.type_text()
        rows.append([knob.name, values_text, f"{value:g}" if isinstance(value, float) else str(value), knob.help])
    return rows


def knob_table(design: Design | str | None = None, arch: ArchConfig | None = None, width: int = WIDTH) -> str:
    """The knobs of ``design`` (with ``arch``'s values if given; the machine knobs alone if no design), fitting
    ``width`` columns: a line per knob (name, default or value, the values it takes), its meaning wrapped below."""
    knobs = list(MACHINE) if design is None else list(design_knobs(design).values())
    rows = knob_rows(knobs, dict(arch.knobs) if arch is not None else None)
    head = ["knob", "value" if arch is not None else "default", "values"]
    w0 = max(len(head[0]), *(len(r[0]) for r in rows))
    w1 = max(len(head[1]), *(len(r[2]) for r in rows))
    out = [f"{head[0]:<{w0}}  {head[1]:<{w1}}  {head[2]}", f"{'-' * w0}  {'-' * w1}  {'-' * (width - w0 - w1 - 4)}"]
    body = textwrap.TextWrapper(width=width, initial_indent=" " * (w0 + 2), subsequent_indent=" " * (w0 + 2))
    for name, values, value, meaning in rows:
        out.append(f"{name:<{w0}}  {value:<{w1}}  {values}".rstrip())
        out.extend(body.wrap(meaning))
    return "\n".join(out)


# ----------------------------------------------------------------------------- results
def long_table(results: Sequence[Results], baseline: Results | None = None) -> pd.DataFrame:
    """The concatenated per-layer tables, plus ``speedup_vs_<baseline>`` = baseline cycles / cycles per layer."""
    table = pd.concat([r.layers for r in results], ignore_index=True)
    if baseline is not None:
        base = baseline.layers.set_index("layer")["cycles"]
        with np.errstate(divide="ignore"):
            table[f"speedup_vs_{baseline.arch.name}"] = table["layer"].map(base) / table["cycles"]
    return table


def speedup(base_cycles: float, cycles: float) -> float:
    return base_cycles / cycles if cycles else float("inf")


def layer_rows(results: Sequence[Results], baseline: Results | None, *, cycles: bool = True,
               speedups: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the per-layer table (layer, kind, cycles per arch, speedup per arch) plus TOTAL."""
    first = results[0].layers
    headers = ["layer", "kind"]
    if cycles:
        headers += [f"cycles:{r.arch.name}" for r in results]
    if baseline is not None and speedups:
        headers += [f"speedup:{r.arch.name}" for r in results]
    base = baseline.layers["cycles"].to_numpy() if baseline is not None else None
    rows: list[list[Any]] = []
    for i, (name, kind) in enumerate(zip(first["layer"], first["kind"])):
        row: list[Any] = [name, kind]
        layer_cycles = [int(r.layers["cycles"].iat[i]) for r in results]
        if cycles:
            row += layer_cycles
        if base is not None and speedups:
            row += [f"{speedup(base[i], c):.2f}" for c in layer_cycles]
        rows.append(row)
    total: list[Any] = ["TOTAL", ""]
    if cycles:
        total += [r.cycles for r in results]
    if baseline is not None and speedups:
        total += [f"{speedup(baseline.cycles, r.cycles):.2f}" for r in results]
    rows.append(total)
    return headers, rows


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


STAT_COLUMNS = {"act_zero_frac": "a_zero", "act_bits_binary": "a_bin", "act_bits_booth": "a_booth",
                "act_group_precision": "a_grp", "weight_zero_frac": "w_zero", "weight_bits_binary": "w_bin",
                "weight_bits_booth": "w_booth", "weight_group_precision": "w_grp"}


def stats_rows(table: pd.DataFrame, totals: dict[str, float], baseline: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of ``bitserial stats``: value statistics and ideal speedups per layer, plus TOTAL."""
    speed_cols = [c for c in table.columns if c.startswith("ideal_speedup:") and c != f"ideal_speedup:{baseline}"]
    headers = ["layer", "kind", "a/w bits", *STAT_COLUMNS.values(), *[c.split(":", 1)[1] for c in speed_cols]]
    rows = []
    for rec in table.to_dict("records"):
        rows.append([rec["layer"], rec["kind"], f"{rec['act_bits']}/{rec['weight_bits']}",
                     *[fmt(rec[c]) for c in STAT_COLUMNS], *[fmt(rec[c], 2) for c in speed_cols]])
    macs = table["macs"].to_numpy(dtype=float)
    mean = [fmt(float((table[c] * macs).sum() / macs.sum())) if c.startswith("act") else "" for c in STAT_COLUMNS]
    rows.append(["TOTAL", "", "", *mean, *[fmt(totals[c.split(":", 1)[1]], 2) for c in speed_cols]])
    return headers, rows


# ----------------------------------------------------------------------------- plots
def _save(fig, path: Path, dpi: int) -> Path:
    """Lay out and write a figure atomically, as PNG or SVG by ``path``'s suffix."""
    fig.tight_layout()
    with atomic_write(path) as fh:
        fig.savefig(fh, format="svg" if path.suffix.lower() == ".svg" else "png", dpi=dpi)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_speedup(results: Sequence[Results], baseline: Results, title: str, path: str | os.PathLike) -> Path:
    """A bar chart of every result's speedup over ``baseline``, written atomically to ``path`` (PNG)."""
    plt = _pyplot()
    path = Path(path)
    names = [r.arch.name for r in results]
    values = [speedup(baseline.cycles, r.cycles) for r in results]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names) + 1.5), 4.0))
    try:
        bars = ax.bar(names, values, color="tab:blue")
        ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
        ax.bar_label(bars, labels=[f"{s:.2f}x" for s in values], padding=2)
        ax.set_xlabel("architecture (preset)")
        ax.set_ylabel(f"speedup over {baseline.arch.name} (cycles ratio)")
        ax.set_title(title)
        finite = [v for v in values if np.isfinite(v)] or [1.0]
        ax.set_ylim(0, max(finite) * 1.15)
        return _save(fig, path, 120)
    finally:
        plt.close(fig)


def plot_bit_sparsity(workload: Workload, path: str | os.PathLike) -> Path:
    """A heat map (layers x essential one-bits per activation value, share of the layer's values), written
    atomically to ``path`` (PNG)."""
    plt = _pyplot()
    path = Path(path)
    hist = bits_histogram(workload, "activations", "binary").astype(np.float64)
    top = max(int(np.nonzero(hist.sum(axis=0))[0].max()) + 1 if hist.any() else 1, 2)
    share = hist[:, :top] / np.maximum(hist.sum(axis=1, keepdims=True), 1)
    n = len(workload)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * top + 3), max(3.0, 0.22 * n + 1.5)))
    try:
        im = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(top))
        ax.set_xlabel("essential bits (one bits of |a|) per activation")
        ax.set_yticks(range(n))
        ax.set_yticklabels([layer.name for layer in workload], fontsize=max(4, min(9, 400 // max(n, 1))))
        ax.set_title(f"Activation bit sparsity: {workload.name}")
        fig.colorbar(im, ax=ax, label="share of the layer's activations")
        return _save(fig, path, 110)
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------- energy and area plots
def _stacked(ax, table: pd.DataFrame, index: str, column: str, value: str) -> None:
    """Stacked bars of ``value`` summed per (index, column), one bar per index value (in first-seen order)."""
    pivot = table.pivot_table(index=index, columns=column, values=value, aggfunc="sum", sort=False).fillna(0.0)
    bottom = np.zeros(len(pivot))
    for name in pivot.columns:
        ax.bar(pivot.index.astype(str), pivot[name].to_numpy(), bottom=bottom, label=str(name))
        bottom += pivot[name].to_numpy()
    ax.legend(fontsize=7, ncol=2)


def plot_energy_breakdown(results: Sequence[Results], title: str, path: str | os.PathLike) -> Path:
    """Stacked bars: each design's energy of one inference (uJ) split by component (PNG, written atomically)."""
    plt = _pyplot()
    parts = []
    for r in results:
        br = r.energy_breakdown()
        parts.append(pd.DataFrame({"arch": r.arch.name, "component": br["component"],
                                   "energy_uj": br["energy_pj"] * 1e-6}))
    table = pd.concat(parts, ignore_index=True)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(results) + 3), 4.5))
    try:
        _stacked(ax, table, "arch", "component", "energy_uj")
        ax.set_xlabel("architecture (preset)")
        ax.set_ylabel("energy per inference (uJ)")
        ax.set_title(title)
        return _save(fig, Path(path), 120)
    finally:
        plt.close(fig)


def plot_area_breakdown(archs: Sequence, title: str, path: str | os.PathLike, group: str | None = "compute") -> Path:
    """Stacked bars: each design's area (mm2) split by part; ``group`` "compute" (default) or None (whole chip)."""
    from .energy import area_breakdown

    plt = _pyplot()
    parts = []
    for arch in archs:
        br = area_breakdown(arch)
        if group is not None:
            br = br[br["group"] == group]
        parts.append(br.assign(arch=arch.name))
    table = pd.concat(parts, ignore_index=True)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(archs) + 3), 4.5))
    try:
        _stacked(ax, table, "arch", "component", "area_mm2")
        ax.set_xlabel("architecture (preset)")
        ax.set_ylabel(f"{'PE-array' if group == 'compute' else 'chip'} area (mm2)")
        ax.set_title(title)
        return _save(fig, Path(path), 120)
    finally:
        plt.close(fig)


def plot_speedup_vs_efficiency(table: pd.DataFrame, title: str, path: str | os.PathLike) -> Path:
    """Scatter of ``speedup_time`` against ``energy_efficiency`` (a ``simulator.compare`` table), one labelled point
    per architecture; lossy designs drawn hollow (PNG, written atomically)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    try:
        for row in table.itertuples(index=False):
            face = "tab:blue" if row.lossless else "none"
            ax.scatter(row.speedup_time, row.energy_efficiency, s=40, facecolors=face, edgecolors="tab:blue")
            ax.annotate(row.arch, (row.speedup_time, row.energy_efficiency), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
        ax.axvline(1.0, color="gray", linewidth=0.8, linestyle="--")
        base = table["arch"].iloc[0]
        ax.set_xlabel(f"speedup over {base} (wall time)")
        ax.set_ylabel(f"energy efficiency over {base} (energy ratio)")
        ax.set_title(title)
        return _save(fig, Path(path), 120)
    finally:
        plt.close(fig)
