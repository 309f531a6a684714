#!/usr/bin/env python
"""BitX (Li et al., ICPP 2021): speedup over the non-pruned datapath and accuracy per kept columns (bitx.yaml).

    python scripts/reproduce/bitx.py [--jobs N] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import pandas as pd
from _common import Claim, Run, main

ALL = {"kept_columns": 16}


def speedup(run: Run, k: int) -> float:
    return float(run.speedup("bitx", knobs={"kept_columns": k}, base_knobs=ALL).iloc[0])


def top1(run: Run, k: int) -> float:
    return float(run.top1("bitx", kept_columns=k).iloc[0])


CLAIMS = [
    Claim("speedup over the non-pruned DNN (the best within 1 point of top-1)", "up to 4.82x [A]",
          lambda r: max(speedup(r, k) for k in (8, 6, 5, 4) if top1(r, k) >= top1(r, 16) - 0.01),
          "16-bit fixed-point weights span fewer columns than fp32's 24 (the fp32 table: scripts/bitx_study.py, "
          "4.79x at k = 5)"),
    Claim("top-1 change at 5 kept columns (500 images)", "+0.9 % (fixed point) [A]",
          lambda r: f"{100 * (top1(r, 5) - top1(r, 16)):+.1f} points", "no retraining here", fmt="{}"),
]


def detail(run: Run) -> pd.DataFrame:
    return pd.DataFrame({k: {"speedup": speedup(run, k), "top-1 %": 100 * top1(run, k)} for k in (16, 8, 6, 5, 4)}).T


if __name__ == "__main__":
    raise SystemExit(main(__file__, CLAIMS, baseline="bitx", title="BitX (ICPP'21): run-time column pruning",
                          detail=detail))
