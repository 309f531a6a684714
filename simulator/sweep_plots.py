"""Plots of a sweep's results (a ``PointStore`` folder, or its table as CSV / Parquet): ``bitserial plot``.

Every plot is drawn from ``point_totals`` (one row per point: the layers summed) and written as PNG and / or SVG,
one figure per workload (its name in the title), axes labelled with units. Each function returns the table it
drew, so that tests check the data rather than pixels.

* ``speedup``: bars of the speedup (baseline cycles / cycles, same workload and pruning) per design label;
* ``energy``: stacked bars of dynamic and static energy (uJ) per design label;
* ``pareto``: top-1 accuracy against speedup, one series per pruning method, its Pareto front drawn as a line;
* ``knob``: speedup against one knob's values, a line per design label.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ConfigError
from .report import _pyplot, _save

ID = ["key", "arch", "preset", "label", "design", "workload_spec", "pruning"]
# per-layer columns that a point's total does not sum (how it combines them instead; None: dropped)
NOT_SUMMED = {"pe_utilization": None, "lane_utilization": None, "weight_rel_error": "max", "adc_bits_max": "max",
              "lossless": "all", "top1": "first"}
KINDS = ("speedup", "energy", "pareto", "knob")


def read_table(source: str | os.PathLike) -> pd.DataFrame:
    """A sweep's per-layer table from a store folder, a .csv or a .parquet file."""
    from .sweep import PointStore

    path = Path(source)
    if path.is_dir():
        table = PointStore(path).table()
    elif path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix == ".csv":
        table = pd.read_csv(path)
    else:
        raise ConfigError(f"{path}: not a sweep store folder, .csv or .parquet file")
    if table.empty:
        raise ConfigError(f"{path}: no finished points")
    missing = [c for c in ("key", "label", "workload_spec", "pruning", "cycles") if c not in table]
    if missing:
        raise ConfigError(f"{path}: not a sweep table (no column {missing[0]!r})")
    return table


def point_totals(table: pd.DataFrame) -> pd.DataFrame:
    """One row per point: its identifying columns and knobs, the layers' sums of every additive counter (cycles,
    energies, a design's own counters such as ``crossbars``), the largest ``adc_bits_max``, whether every layer is
    ``lossless``, and ``top1`` where measured."""
    knobs = [c for c in table if c.startswith("knob:")]
    ids = [c for c in ID if c in table]
    agg = {c: "sum" for c in table if c not in ids and c not in knobs and c not in NOT_SUMMED
           and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])}
    agg.update({c: how for c, how in NOT_SUMMED.items() if c in table and how})
    agg.update({c: "first" for c in knobs})
    totals = table.groupby(ids, sort=False, dropna=False).agg(agg).reset_index()
    order = list(dict.fromkeys(totals["label"]))
    totals["_label_order"] = totals["label"].map(order.index)
    return totals.sort_values(["workload_spec", "_label_order", *knobs, "pruning"], kind="stable").drop(
        columns="_label_order").reset_index(drop=True)


def with_speedup(totals: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """``speedup`` = the baseline label's cycles / cycles, per (workload, pruning); ``baseline`` defaults to
    dadiannao's label if the sweep has it, else the first label."""
    labels = list(dict.fromkeys(totals["label"]))
    base = baseline or ("dadiannao" if "dadiannao" in labels else labels[0])
    if base not in labels:
        raise ConfigError(f"baseline {base!r} is not a design label of the sweep ({', '.join(labels)})")
    ref = totals[totals["label"] == base].groupby(["workload_spec", "pruning"])["cycles"].first()
    if ref.empty:
        raise ConfigError(f"baseline {base!r} has no finished point")
    out = totals.copy()
    idx = pd.MultiIndex.from_frame(out[["workload_spec", "pruning"]])
    out["baseline"] = base
    out["speedup"] = ref.reindex(idx).to_numpy() / out["cycles"].to_numpy()
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _write(fig, out: Path, name: str, formats: Sequence[str]) -> list[Path]:
    return [_save(fig, out / f"{name}.{fmt}", 120) for fmt in formats]


def plot_sweep(table: pd.DataFrame, kind: str, out: str | os.PathLike, *, baseline: str | None = None,
               knob: str | None = None, formats: Sequence[str] = ("png",)) -> tuple[pd.DataFrame, list[Path]]:
    """Draw ``kind`` (one of ``KINDS``) per workload into ``out``; returns the data drawn and the files."""
    if kind not in KINDS:
        raise ConfigError(f"plot kind ({kind!r}) must be one of: {', '.join(KINDS)}")
    bad = [f for f in formats if f not in ("png", "svg")]
    if bad:
        raise ConfigError(f"plot format ({bad[0]!r}) must be png or svg")
    totals = point_totals(table)
    out = Path(out)
    plt = _pyplot()
    files: list[Path] = []
    if kind in ("speedup", "pareto", "knob"):
        totals = with_speedup(totals, baseline)
    if kind == "pareto" and "top1" not in totals:
        raise ConfigError("a pareto plot needs accuracy: run the sweep with outputs: [cycles, accuracy]")
    if kind == "knob":
        column = f"knob:{knob}"
        if knob is None or column not in totals:
            varied = [c.split(":", 1)[1] for c in totals if c.startswith("knob:")]
            raise ConfigError(f"a knob plot needs --knob, one of the sweep's grid knobs: {', '.join(varied) or 'none'}")
        totals = totals[totals[column].notna()]
    for workload, part in totals.groupby("workload_spec", sort=False):
        tall = max(map(len, _bar_labels(part))) * 0.06 if kind in ("speedup", "energy") else 0.0
        fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(part) + 2), 3.6 + tall))
        try:
            if kind == "speedup":
                _bars(ax, part, "speedup")
                ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
                ax.set_ylabel(f"speedup over {part['baseline'].iloc[0]} (cycles ratio)")
            elif kind == "energy":
                _stacked_energy(ax, part)
                ax.set_ylabel("energy per inference (uJ)")
            elif kind == "pareto":
                _pareto(ax, part)
                ax.set_xlabel(f"speedup over {part['baseline'].iloc[0]} (cycles ratio)")
                ax.set_ylabel("top-1 accuracy (%)")
            else:
                for label, line in part.groupby("label", sort=False):
                    line = line.sort_values(f"knob:{knob}")
                    ax.plot(line[f"knob:{knob}"], line["speedup"], marker="o", label=label)
                ax.set_xlabel(knob)
                ax.set_ylabel(f"speedup over {part['baseline'].iloc[0]} (cycles ratio)")
                ax.legend(fontsize=7)
            ax.set_title(f"{kind}: {workload}")
            files += _write(fig, out, f"{kind}_{_slug(workload)}", formats)
        finally:
            plt.close(fig)
    return totals, files


def _bar_labels(part: pd.DataFrame) -> list[str]:
    """A bar's label: the design label, its grid knobs and the pruning step (when not none)."""
    knobs = [c for c in part if c.startswith("knob:") and part[c].notna().any()]
    labels = []
    for _, row in part.iterrows():
        extra = [f"{c[5:]}={_value(row[c])}" for c in knobs if pd.notna(row[c])]
        labels.append(" ".join([row["label"], *extra] + ([] if row["pruning"] == "none" else [row["pruning"]])))
    return labels


def _value(v) -> str:
    """A knob value as written in a sweep file (knob columns mixing values and gaps come back as floats)."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _bars(ax, part: pd.DataFrame, column: str) -> None:
    x = np.arange(len(part))
    ax.bar(x, part[column].to_numpy())
    ax.set_xticks(x, _bar_labels(part), rotation=60, ha="right", fontsize=7)


def _stacked_energy(ax, part: pd.DataFrame) -> None:
    x = np.arange(len(part))
    dynamic, static = part["dynamic_energy_pj"].to_numpy() / 1e6, part["static_energy_pj"].to_numpy() / 1e6
    ax.bar(x, dynamic, label="dynamic")
    ax.bar(x, static, bottom=dynamic, label="static (leakage)")
    ax.set_xticks(x, _bar_labels(part), rotation=60, ha="right", fontsize=7)
    ax.legend(fontsize=7)


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """The points no other point beats in both speedup and accuracy (at least as good in both, better in one),
    by speedup."""
    keep = []
    for row in points.itertuples():
        beaten = ((points["speedup"] >= row.speedup) & (points["top1"] >= row.top1)
                  & ((points["speedup"] > row.speedup) | (points["top1"] > row.top1))).any()
        keep.append(not beaten)
    return points[keep].sort_values("speedup")


def _pareto(ax, part: pd.DataFrame) -> None:
    method = part["pruning"].str.split(",").str[0]
    for name, series in part.groupby(method, sort=False):
        dots = ax.scatter(series["speedup"], 100 * series["top1"], s=18, label=name)
        front = pareto_front(series)
        ax.plot(front["speedup"], 100 * front["top1"], color=dots.get_facecolor()[0], linewidth=1)
    ax.legend(fontsize=7)
