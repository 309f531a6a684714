#!/usr/bin/env python
"""Pragmatic (Albericio et al., MICRO 2017): speedup, energy efficiency and area over DaDianNao (pragmatic.yaml).

    python scripts/reproduce/pragmatic.py [--jobs N] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import pandas as pd
from _common import Claim, Run, geomean, main

CLAIMS = [
    Claim("speedup over DaDianNao, conv layers (geomean)", "2.6x pallet / 3.1x column sync [A, arXiv v1]",
          lambda r: geomean(r.speedup("pragmatic", kind="conv")),
          "our preset synchronizes columns with one run-ahead register (between the paper's two); random synthetic "
          "AlexNet values and low-precision CIFAR profiles"),
    Claim("speedup over DaDianNao, all layers (geomean)", "4.31x [R]", lambda r: geomean(r.speedup("pragmatic")),
          "recalled, unchecked figure; FC layers gain little on a bit-parallel-weight engine"),
    Claim("energy efficiency, PE arrays (geomean)", "1.70x [R]",
          lambda r: geomean(r.energy_efficiency("pragmatic", group="compute")),
          "our speedups are higher (random AlexNet values, low-precision CIFAR profiles), which cuts the PE arrays' "
          "busy cycles and leakage, though per lane our first-stage shifters and sign XORs cost more than the "
          "paper's PIPs"),
    Claim("energy efficiency, chip with eDRAM buffers and DRAM (geomean)",
          "1.28x pallet / 1.48x 1 SSR, chip [A, arXiv v1, p. 11]; 1.70x [R]",
          lambda r: geomean(r.energy_efficiency("pragmatic")),
          "the paper's DaDianNao draws 18.8 W in all [arXiv v1]; ours reads a weight per MAC from CACTI eDRAM banks "
          "and burns 3.3x that in buffer reads on AlexNet (scripts/check_papers.py), so our chip ratio tracks speedup"),
    Claim("area, chip with eDRAM buffers", "1.36x (122 vs 90 mm2) [arXiv v1, p. 10]",
          lambda r: r.area_ratio("pragmatic", None),
          "within 20 %: our cell-level PE arrays (no wiring or clock tree) add 10-13 mm2 to a 78.7 mm2 DaDianNao "
          "where the paper's PIPs add 32 mm2 to 90 mm2"),
    Claim("area, PE arrays", "1.68x [R]", lambda r: r.area_ratio("pragmatic", "compute"),
          "recalled figure whose scope (PE arrays or chip) is unchecked; ours prices 2-stage shifting from mux / XOR "
          "cells: per lane the first-stage shifter costs as much as the lane's share of the adder tree (2.33x with "
          "the paper's unsigned oneffsets)"),
]


def detail(run: Run) -> pd.DataFrame:
    return pd.DataFrame({"speedup": run.speedup("pragmatic"), "speedup conv": run.speedup("pragmatic", kind="conv"),
                         "energy eff (compute)": run.energy_efficiency("pragmatic", group="compute"),
                         "energy eff (chip)": run.energy_efficiency("pragmatic")})


if __name__ == "__main__":
    raise SystemExit(main(__file__, CLAIMS, baseline="dadiannao", title="Pragmatic (MICRO'17) vs DaDianNao",
                          detail=detail))
