#!/usr/bin/env python
"""Write docs/reproductions.md from the reproductions' JSON outputs (``<paper>.py --json DIR/<paper>.json``) and draw
each store's speedup plot into docs/img/reproduce/.

    python scripts/reproduce/_collect.py JSON_DIR [--stores runs/reproduce] [--times JSON_DIR/times.txt]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from simulator.sweep_plots import plot_sweep, read_table  # noqa: E402

ORDER = ["stripes", "dynamic_stripes", "pragmatic", "loom", "laconic", "tactical", "bitfusion", "bitx", "swis",
         "bitpruner", "kang", "autoprune", "bitslice_l1", "bsq"]
HEAD = """# Reproductions

Each paper's figures beside ours, on the closest workloads we have, with the reason for every gap. Every table is
printed by `bitserial reproduce PAPER` (or `python scripts/reproduce/PAPER.py`), which runs the sweep file
`scripts/reproduce/PAPER.yaml` into a store (`runs/reproduce/PAPER`, resumed on a rerun) and computes our figures
from it; this page is written by `python scripts/reproduce/_collect.py` from their `--json` outputs.

Published figures carry the tags of `../shared/docs/REFERENCES.md`: [A] from the abstract, [R] recalled and
unchecked, [C] from the authors' code or README. Retrained points are fine-tuned on the train half of the CIFAR-10
test copy and scored on the other half (holdout, 5,000 images); points "not retrained" are scored on the images
named in their sweep file. Speedups are in cycles unless a row says wall time. Wall times are on the project's
2-core machine.
"""


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json_dir")
    ap.add_argument("--stores", default=str(REPO / "runs" / "reproduce"))
    ap.add_argument("--times", default=None, help="lines '<paper> wall <seconds> s' (GNU time output)")
    args = ap.parse_args()
    folder = Path(args.json_dir)
    times = {}
    for path in [Path(args.times)] if args.times else sorted([*folder.glob("*.log"), *folder.glob("*.txt")]):
        for m in re.finditer(r"^(\w+) wall ([\d.]+) s$", path.read_text(), re.M):
            times[m.group(1)] = float(m.group(2))
    parts = [HEAD]
    img = REPO / "docs" / "img" / "reproduce"
    for paper in ORDER:
        path = folder / f"{paper}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        took = f" ({times[paper]:.0f} s here, from an empty store)" if paper in times else ""
        parts.append(f"## {data['paper']}\n\n`bitserial reproduce {paper}`{took}\n")
        parts.append(md_table(["claim", "published", "ours", "why they differ"],
                              [[c["claim"], c["published"], c["ours"], c["reason"]] for c in data["claims"]]))
        detail = data.get("detail")
        if detail:
            heads = list(detail[0])
            parts.append("\n" + md_table(heads, [[fmt(r[h]) for h in heads] for r in detail]))
        store = Path(args.stores) / paper
        if store.is_dir():
            try:
                _, files = plot_sweep(read_table(store), "speedup", img / paper)
            except Exception as exc:  # noqa: BLE001 - a store without a speedup baseline: no plot
                print(f"{paper}: no plot ({exc})", file=sys.stderr)
                files = []
            for f in files:
                parts.append(f"\n![{paper} speedup]({f.relative_to(REPO / 'docs').as_posix()})")
        parts.append("")
    (REPO / "docs" / "reproductions.md").write_text("\n\n".join(parts).rstrip() + "\n")
    print(f"wrote {REPO / 'docs' / 'reproductions.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
