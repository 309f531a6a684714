#!/usr/bin/env python
"""BSQ (Yang et al., ICLR 2021): accuracy and the speedup its per-layer weight precisions give Loom (bsq.yaml).

Retraining-based: about 10 minutes on a 2-core machine (a 3-epoch fine-tuning and a 3-epoch BSQ run, 5,000-image
scoring); the store keeps finished points, so a rerun is immediate.

    python scripts/reproduce/bsq.py [--jobs N] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import pandas as pd
from _common import Claim, Run, main

TUNED = "retrain,epochs=2,final_epochs=1,prune=magnitude,sparsity=0.0,threads=1"
BSQ = "bsq,epochs=2,final_epochs=1,strength=0.1,threads=1"


def speedup(run: Run, label: str, pruning: str) -> float:
    return float(run.speedup(label, pruning=pruning, base_pruning=pruning).iloc[0])


CLAIMS = [
    Claim("Loom speedup from BSQ's precisions (BSQ / 8-bit fine-tuned, both over DaDianNao)",
          "- (the paper reports precisions and accuracy, not a design's speed)",
          lambda r: speedup(r, "loom", BSQ) / speedup(r, "loom", TUNED),
          "Loom runs weights serially at each layer's weight_bits; docs/pruning.md has the per-layer precisions"),
    Claim("Stripes speedup from BSQ's precisions", "-",
          lambda r: speedup(r, "stripes", BSQ) / speedup(r, "stripes", TUNED),
          "Stripes is activation-serial: weight precision does not matter to it (1.00x expected)"),
    Claim("top-1 (holdout): 8-bit fine-tuned / BSQ", "higher accuracy and more bit reduction than earlier "
          "mixed-precision methods [A]",
          lambda r: f"{100 * r.top1('dadiannao', pruning=TUNED).iloc[0]:.1f} / "
                    f"{100 * r.top1('dadiannao', pruning=BSQ).iloc[0]:.1f} %",
          "3 epochs on 5,000 images vs the paper's 350 on the training set with 4-bit activations", fmt="{}"),
]


def detail(run: Run) -> pd.DataFrame:
    return pd.DataFrame({label: {"8-bit fine-tuned": speedup(run, label, TUNED), "BSQ 0.1": speedup(run, label, BSQ)}
                         for label in ("stripes", "loom")}).T


if __name__ == "__main__":
    raise SystemExit(main(__file__, CLAIMS, baseline="dadiannao", title="BSQ (ICLR'21): precisions on Loom / Stripes",
                          detail=detail))
