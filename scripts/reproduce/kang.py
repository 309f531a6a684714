#!/usr/bin/env python
"""Accelerator-aware pruning (Kang, TCSVT 2020): N-of-g vs magnitude pruning on an indexed sparse PE (kang.yaml).

Retraining-based: about 15-25 minutes on a 2-core machine (two retrained points of 5 epochs on 5,000 images, then
5,000-image scoring); the store keeps finished points, so a rerun is immediate.

    python scripts/reproduce/kang.py [--jobs N] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import pandas as pd
from _common import Claim, Run, main

NOFG = "retrain,epochs=4,final_epochs=1,group=16,keep=8,prune=n_of_g,threads=1"
MAG = "retrain,epochs=4,final_epochs=1,prune=magnitude,sparsity=0.5,threads=1"


def speedup(run: Run, pruning: str) -> float:
    return float(run.speedup("cambricon_x", pruning=pruning, base="cambricon_x").iloc[0])


def top1(run: Run, pruning: str) -> float:
    return 100 * float(run.top1("cambricon_x", pruning=pruning).iloc[0])


CLAIMS = [
    Claim("speedup of 8-of-16 over the dense network on its accelerator", '"doubles" the performance [A]',
          lambda r: speedup(r, NOFG), "half the weights kept: at most 2x by construction on this PE"),
    Claim("8-of-16 over magnitude pruning at equal density", "-", lambda r: speedup(r, NOFG) / speedup(r, MAG),
          "unbalanced groups cost the slowest row's count on an indexed PE"),
    Claim("top-1: dense / 8-of-16 / magnitude 50 % (holdout)", "ImageNet top-5 within ~1 point [C]",
          lambda r: f"{top1(r, 'none'):.1f} / {top1(r, NOFG):.1f} / {top1(r, MAG):.1f} %",
          "CIFAR-10 ResNet-20, 5 epochs on 5,000 images; dense not fine-tuned (docs/pruning.md has the fine-tuned "
          "reference)", fmt="{}"),
]


def detail(run: Run) -> pd.DataFrame:
    return pd.DataFrame({p: {"speedup": speedup(run, p), "top-1 %": top1(run, p)} for p in ("none", NOFG, MAG)}).T


if __name__ == "__main__":
    raise SystemExit(main(__file__, CLAIMS, baseline="cambricon_x", title="Accelerator-aware N-of-g pruning (Kang)",
                          detail=detail))
