#!/usr/bin/env python
"""Bit-Tactical (Delmas Lascorz et al., ASPLOS 2019): speedup and energy efficiency over a bit-parallel baseline
on a pruned network (tactical.yaml).

    python scripts/reproduce/tactical.py [--jobs N] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import pandas as pd
from _common import Claim, Run, geomean, main

PRUNED = "magnitude,sparsity=0.6"
CLAIMS = [
    Claim("TCLp speedup over bit-parallel, pruned network", "5.05x [A, arXiv]",
          lambda r: geomean(r.speedup("tclp", pruning=PRUNED, base_pruning=PRUNED)),
          "the paper's ImageNet networks were pruned and retrained by Han et al. to 60-90 % sparsity with 16-bit "
          "profiles; ours: ResNet-20 at 60 % magnitude sparsity, not retrained (top-1 below)"),
    Claim("TCLe speedup, pruned network", "-",
          lambda r: geomean(r.speedup("tcle", pruning=PRUNED, base_pruning=PRUNED)), "not a published figure"),
    Claim("TCLp energy efficiency, chip", "2.98x [A, arXiv]",
          lambda r: geomean(r.energy_efficiency("tclp", pruning=PRUNED, base_pruning=PRUNED)),
          "our chip energy (eDRAM buffers, CACTI) is dominated by the baseline's per-MAC weight reads and by "
          "leakage over the runtime"),
    Claim("TCLp area, PE arrays", "1.22x [A, arXiv]", lambda r: r.area_ratio("tclp", "compute"),
          "our Dynamic Stripes back end at 16 columns x 16 rows plus the scheduler's multiplexers"),
    Claim("top-1, unpruned / pruned (500 images)", "- (networks pruned and retrained by Han et al.)",
          lambda r: f"{100 * r.top1('dadiannao').iloc[0]:.1f} % / "
                    f"{100 * r.top1('dadiannao', pruning=PRUNED).iloc[0]:.1f} %",
          "no retraining here (pruning.retrain recovers accuracy; docs/pruning.md)", fmt="{}"),
]


def detail(run: Run) -> pd.DataFrame:
    rows = {}
    for label in ("tcle", "tclp"):
        for pruning in ("none", PRUNED):
            rows[f"{label} {pruning}"] = {
                "speedup": float(run.speedup(label, pruning=pruning, base_pruning=pruning).iloc[0]),
                "energy eff (chip)": float(run.energy_efficiency(label, pruning=pruning, base_pruning=pruning).iloc[0])}
    return pd.DataFrame(rows).T


if __name__ == "__main__":
    raise SystemExit(main(__file__, CLAIMS, baseline="dadiannao", title="Bit-Tactical (ASPLOS'19) vs DaDianNao",
                          detail=detail))
