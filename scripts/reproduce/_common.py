"""What every reproduction shares: run its sweep file into a store, then print our figure beside the published one.

A reproduction is ``scripts/reproduce/<paper>.py`` (its claims and how our figure is computed) and
``<paper>.yaml`` beside it (the sweep: the paper's design, its baseline, the closest workloads we have). ``main``
runs the sweep (resuming a previous run's store, default ``runs/reproduce/<paper>``), builds a ``Run`` over the
finished points and prints, per claim, the published figure (with REFERENCES.md's tag: [A] abstract, [R]
recalled), ours, and the reason for the gap; then the per-workload figures behind them. ``--json`` writes both.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from simulator.config import arch_from_dict  # noqa: E402
from simulator.energy import area_mm2  # noqa: E402
from simulator.executors import LocalExecutor  # noqa: E402
from simulator.report import format_table  # noqa: E402
from simulator.sweep import PointStore, expand, run_sweep  # noqa: E402
from simulator.sweep_plots import point_totals  # noqa: E402


@dataclass(frozen=True)
class Claim:
    """One published figure: what it is, its value as published (with its tag), how ours is computed from a
    ``Run`` (a number, or text), the format of ours, and why they differ."""

    what: str
    published: str
    ours: Callable[[Run], float | str | None]
    reason: str
    fmt: str = "{:.2f}x"


def geomean(values) -> float:
    values = [float(v) for v in values]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


class Run:
    """A reproduction's finished points: ``layers`` (one row per point and layer), their totals, and helpers."""

    def __init__(self, layers: pd.DataFrame, archs: dict[str, dict], baseline: str):
        self.layers = layers
        self.totals = point_totals(layers)
        self.archs = archs  # label -> arch dict (the first point of each label)
        self.baseline = baseline

    def rows(self, label: str, pruning: str = "none", kind: str | None = None, **knobs) -> pd.DataFrame:
        """One row per workload: the point of ``label`` with ``pruning`` and ``knobs`` (layers of ``kind`` only)."""
        totals = self.totals if kind is None else point_totals(self.layers[self.layers["kind"] == kind])
        t = totals[(totals["label"] == label) & (totals["pruning"] == pruning)]
        for k, v in knobs.items():
            t = t[t[f"knob:{k}"] == v]
        if t.empty:
            raise KeyError(f"no finished point for {label} ({pruning}, {knobs})")
        return t.set_index("workload_spec")

    def ratio(self, label: str, column: str, *, base: str | None = None, invert: bool = False, pruning: str = "none",
              base_pruning: str = "none", knobs: dict | None = None, base_knobs: dict | None = None,
              kind: str | None = None) -> pd.Series:
        """Per workload: base / label of ``column`` (``invert``: label / base), over layers of ``kind`` if given."""
        mine = self.rows(label, pruning, kind, **(knobs or {}))[column]
        theirs = self.rows(base or self.baseline, base_pruning, kind, **(base_knobs or {}))[column]
        theirs = theirs.reindex(mine.index)
        return (mine / theirs) if invert else (theirs / mine)

    def speedup(self, label: str, basis: str = "cycles", **kw) -> pd.Series:
        return self.ratio(label, "cycles" if basis == "cycles" else "time_us", **kw)

    def energy_efficiency(self, label: str, group: str | None = None, **kw) -> pd.Series:
        column = "energy_pj" if group is None else f"energy_{group.replace('-', '')}_pj"
        return self.ratio(label, column, **kw)

    def area_ratio(self, label: str, group: str | None = "compute", base: str | None = None) -> float:
        mine = arch_from_dict(self.archs[label], label)
        theirs = arch_from_dict(self.archs[base or self.baseline], base or self.baseline)
        return area_mm2(mine, group) / area_mm2(theirs, group)

    def top1(self, label: str, **kw) -> pd.Series:
        return self.rows(label, **kw)["top1"]


def _ours(claim: Claim, run: Run) -> str:
    try:
        value = claim.ours(run)
    except KeyError as exc:  # a point that did not finish
        return f"- ({exc.args[0]})"
    if value is None:
        return "-"
    return value if isinstance(value, str) else claim.fmt.format(value)


def main(script: str, claims: list[Claim], *, baseline: str, title: str, detail: Callable[[Run], pd.DataFrame]
         | None = None, argv: list[str] | None = None) -> int:
    """Run ``<script>.yaml`` and print the claims; ``detail(run)`` gives the per-workload table shown under them."""
    paper = Path(script).stem
    ap = argparse.ArgumentParser(description=f"Reproduce {title}: our figures beside the published ones.")
    ap.add_argument("--out", default=str(REPO / "runs" / "reproduce" / paper), help="the sweep store (resumed)")
    ap.add_argument("--jobs", type=int, default=None, help="local worker processes (default: the cores)")
    ap.add_argument("--json", metavar="FILE", help="also write the claims and the detail table as JSON")
    args = ap.parse_args(argv)
    sweep = Path(script).with_suffix(".yaml")
    start = time.monotonic()
    points = expand(sweep)
    store = PointStore(args.out)
    status = run_sweep(points, store, LocalExecutor(args.jobs))
    archs = {}
    for p in points:
        archs.setdefault(p.labels["label"], p.arch)
    run = Run(store.table(points), archs, baseline)
    rows = [[c.what, c.published, _ours(c, run), c.reason] for c in claims]
    print(f"{title}  ({len(points)} points, {status['failed']} failed, {time.monotonic() - start:.0f} s; store "
          f"{args.out})\n")
    print(format_table(["claim", "published", "ours", "why they differ"], rows, width=200))
    table = detail(run) if detail else None
    if table is not None:
        print()
        print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    if status["failed"]:
        errors = store.errors()
        for row in errors[errors["key"].isin({p.key for p in points})].itertuples():
            print(f"failed {row.key}: {row.error}", file=sys.stderr)
    if args.json:
        data = {"paper": title, "claims": [dict(zip(["claim", "published", "ours", "reason"], r, strict=True))
                                           for r in rows],
                "detail": None if table is None else json.loads(table.reset_index().to_json(orient="records"))}
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0 if status["failed"] == 0 else 1
