#!/usr/bin/env python
"""Bit-Pruner (Zhao et al., TCAD 2023): speedup over the unpruned network and over magnitude pruning on bsa, with
accuracy (bitpruner.yaml).

Retraining-based: about 20-40 minutes on a 2-core machine (Bit-Pruner's progressive stages, magnitude retraining,
5,000-image scoring); the store keeps finished points, so a rerun is immediate.

    python scripts/reproduce/bitpruner.py [--jobs N] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import pandas as pd
from _common import Claim, Run, main

BP = "bitpruner,epochs=2,final_epochs=2,target=0.85,threads=1"
MAG = "retrain,epochs=2,final_epochs=1,prune=magnitude,sparsity=0.5,threads=1"


def speedup(run: Run, pruning: str) -> float:
    return float(run.speedup("bsa", pruning=pruning).iloc[0])


def top1(run: Run, pruning: str) -> float:
    return 100 * float(run.top1("bsa", pruning=pruning).iloc[0])


CLAIMS = [
    Claim("speedup over the unpruned network on its accelerator", "2.1x [A]", lambda r: speedup(r, BP),
          "85 % bit sparsity on an 8-bit CIFAR ResNet-20 (the paper: ImageNet and CIFAR models)"),
    Claim("speedup over classical weight pruning", "1.6x [A]", lambda r: speedup(r, BP) / speedup(r, MAG),
          "magnitude 50 % retrained (about the same accuracy); zeroing whole weights rarely shortens a brick"),
    Claim("top-1: unpruned / Bit-Pruner / magnitude (holdout)", "negligible loss [A]",
          lambda r: f"{top1(r, 'none'):.1f} / {top1(r, BP):.1f} / {top1(r, MAG):.1f} %",
          "the unpruned network is not fine-tuned (fine-tuning alone adds ~3.5 points on this copy, docs/pruning.md)",
          fmt="{}"),
]


def detail(run: Run) -> pd.DataFrame:
    return pd.DataFrame({p: {"speedup": speedup(run, p), "top-1 %": top1(run, p)} for p in ("none", BP, MAG)}).T


if __name__ == "__main__":
    raise SystemExit(main(__file__, CLAIMS, baseline="bsa", title="Bit-Pruner (TCAD'23) on bsa", detail=detail))
