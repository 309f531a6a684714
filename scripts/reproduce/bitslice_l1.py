#!/usr/bin/env python
"""Bit-slice L1 (Zhang et al., 2019): slice sparsity, ADC bits and ADC energy on ReRAM crossbars, with and without
the slice penalty (bitslice_l1.yaml).

Retraining-based: about 10 minutes on a 2-core machine (two fine-tunings of 3 epochs, 5,000-image scoring); the
store keeps finished points, so a rerun is immediate.

    python scripts/reproduce/bitslice_l1.py [--jobs N] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import pandas as pd
from _common import Claim, Run, main

BASE = "bitslice_l1,epochs=2,final_epochs=1,l1=0.0,sparsity=0.5,threads=1"
L1 = "bitslice_l1,epochs=2,final_epochs=1,l1=10.0,sparsity=0.5,threads=1"


def layers(run: Run, pruning: str) -> pd.DataFrame:
    t = run.layers
    return t[(t["label"] == "reram") & (t["pruning"] == pruning)]


def zero_share(run: Run, pruning: str) -> float:
    """Zero share of the weights' 2-bit slices (on |w|, one array per weight, as the paper counts)."""
    t = layers(run, pruning)
    return 1 - t["nonzero_cells"].sum() / t["weight_slices"].sum()


def total(run: Run, pruning: str, column: str) -> float:
    return float(layers(run, pruning)[column].sum())


CLAIMS = [
    Claim("zero share of 2-bit slices, with / without the L1 penalty", "2x [A]",
          lambda r: zero_share(r, L1) / zero_share(r, BASE),
          "50 % magnitude pruning already empties ~73 % of the slices here; the paper trains 150 epochs on 50,000 "
          "images and compares with weight-L1 fine-tuning, we fine-tune 3 epochs on 5,000"),
    Claim("ADC bits the densest column needs, without / with", "1 bit (top slice), 3 bits (others) [A]",
          lambda r: f"{int(layers(r, BASE)['adc_bits_max'].max())} / {int(layers(r, L1)['adc_bits_max'].max())} bits",
          "a 128-row column of the low slices still sums to 64-117 (7 bits); per slice: docs/pruning.md", fmt="{}"),
    Claim("ADC energy (full-resolution conversions), without / with", "-",
          lambda r: total(r, BASE, "adc_full_conversions") / total(r, L1, "adc_full_conversions"),
          "column-resolution ADCs: fewer bits where slices are sparser"),
    Claim("top-1 (holdout), without / with", "-",
          lambda r: f"{100 * r.top1('reram', pruning=BASE).iloc[0]:.1f} / "
                    f"{100 * r.top1('reram', pruning=L1).iloc[0]:.1f} %", "", fmt="{}"),
]


def detail(run: Run) -> pd.DataFrame:
    return pd.DataFrame({p: {"slice zero share": zero_share(run, p), "crossbars": total(run, p, "crossbars"),
                             "ADC conversions": total(run, p, "adc_conversions"),
                             "ADC full-res. equivalents": total(run, p, "adc_full_conversions"),
                             "energy (uJ)": total(run, p, "energy_pj") / 1e6} for p in (BASE, L1)}).T


if __name__ == "__main__":
    raise SystemExit(main(__file__, CLAIMS, baseline="reram", title="Bit-slice L1 (2019) on ReRAM crossbars",
                          detail=detail))
