"""Regenerate the CACTI rows of simulator/tables (buffer area, leakage and access energy, SRAM and eDRAM).

Needs a built CACTI 7 (https://github.com/HewlettPackard/cacti, commit 1ffd8df; ``make`` in the checkout). Each buffer
bank is modelled as CACTI's sample ``cache.cfg`` with these changes: a scratchpad (``cache type "ram"``, direct
mapped, 8-byte blocks, a 64-bit port), ``technology (u) 0.045``, and the data-array cell type: ``itrs-lstp`` for SRAM
(low-standby-power cells; CACTI's high-performance cells leak 2.4 W per 2 MiB bank at the sample's 360 K) or
``lp-dram`` for eDRAM (logic-process DRAM, refresh included in its leakage). The periphery stays ``itrs-hp`` (with
low-standby-power periphery a 2 MiB bank needs 5.4 ns per access, over five cycles at 980 MHz). Prints the CSV rows
for ``area.csv`` (area, leakage) and ``energy.csv`` (64-bit read and write):

    python scripts/cacti_buffers.py --cacti /path/to/cacti [--patch]

One correction to CACTI itself: its DRAM bitline write energy (``mat.cc``, ``Mat::compute_bitline_delay``) is the
read's per-bitline energy times ``num_act_mats_hor_dir * 100``, an undocumented factor (the mats are counted again
in ``uca.cc``) that makes a 64-bit eDRAM write cost 21x a read (2 MiB: 1.54 nJ vs 72 pJ). A written bitline swings
the full rail where a read's restore swings half, so ``--patch`` replaces the factor by 2 and rebuilds (``make``);
the eDRAM writes then cost 1.15-1.4x a read (2 MiB: 87 pJ). SRAM figures are unchanged. The script refuses an
unpatched build.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

CAPACITIES_KIB = (8, 32, 256, 1024, 2048)
CELLS = {"sram": "itrs-lstp", "edram": "lp-dram"}
COMMIT = "1ffd8df"
DRAM_WRITE_FACTOR = ("/* subarray.num_cols * num_subarrays_per_mat*/ * num_act_mats_hor_dir*100;",
                     "/* subarray.num_cols * num_subarrays_per_mat*/ * 2;")


def patch_dram_write(source: str) -> str:
    """``mat.cc`` with the DRAM bitline write factor ``num_act_mats_hor_dir*100`` replaced by 2 (full swing)."""
    old, new = DRAM_WRITE_FACTOR
    if source.count(new) == 1 and old not in source:
        return source
    if source.count(old) != 1:
        raise ValueError(f"mat.cc: expected one DRAM write-energy line ending {old!r}, found {source.count(old)}")
    return source.replace(old, new)


def check_patched(cacti: Path, patch: bool) -> None:
    """Apply the DRAM write fix to ``cacti``'s mat.cc and rebuild (``patch``), or fail when it is not applied."""
    mat = cacti / "mat.cc"
    source = mat.read_text()
    fixed = patch_dram_write(source)
    if fixed == source:
        return
    if not patch:
        raise SystemExit(f"{mat}: CACTI's DRAM write factor (x100) is not patched; rerun with --patch")
    mat.write_text(fixed)
    subprocess.run(["make"], cwd=cacti, check=True, capture_output=True)


def config(template: str, size_kib: int, cell: str) -> str:
    """CACTI's sample configuration changed to one bank of ``size_kib`` with a 64-bit port and ``cell`` cells."""
    edits = [(r"^-size \(bytes\) \d+", f"-size (bytes) {size_kib * 1024}"),
             (r"^-block size \(bytes\) \d+", "-block size (bytes) 8"),
             (r"^-associativity \d+", "-associativity 1"),
             (r"^-technology \(u\) [\d.]+", "-technology (u) 0.045"),
             (r'^-Data array cell type - "[^"]+"', f'-Data array cell type - "{cell}"'),
             (r"^-output/input bus width \d+", "-output/input bus width 64"),
             (r'^-cache type "[^"]+"', '-cache type "ram"')]
    for pattern, line in edits:
        template, n = re.subn(pattern, line, template, flags=re.M)
        if n != 1:
            raise ValueError(f"cache.cfg: expected one line matching {pattern!r}, found {n}")
    return template


def run(cacti: Path, size_kib: int, cell: str) -> dict[str, float]:
    """Area (um2), leakage (nW) and 64-bit read / write energy (pJ) of one bank, from CACTI's report."""
    with tempfile.NamedTemporaryFile("w", suffix=".cfg") as fh:
        fh.write(config((cacti / "cache.cfg").read_text(), size_kib, cell))
        fh.flush()
        out = subprocess.run([str(cacti / "cacti"), "-infile", fh.name], capture_output=True, text=True,
                             cwd=cacti, check=True).stdout

    def number(label: str) -> float:
        m = re.search(re.escape(label) + r" ([\d.e+-]+)", out)
        if m is None:
            raise ValueError(f"CACTI output for {cell} {size_kib} KiB has no {label!r}")
        return float(m.group(1))

    height, width = re.search(r"Cache height x width \(mm\): ([\d.]+) x ([\d.]+)", out).groups()
    return {"area_um2": float(height) * float(width) * 1e6,
            "leakage_nw": number("Total leakage power of a bank (mW):") * 1e6,
            "read_pj": number("Total dynamic read energy per access (nJ):") * 1e3,
            "write_pj": number("Total dynamic write energy per access (nJ):") * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cacti", type=Path, required=True, help="a CACTI 7 checkout with the cacti binary built")
    parser.add_argument("--patch", action="store_true", help="apply the DRAM write-energy fix to mat.cc and rebuild")
    args = parser.parse_args()
    check_patched(args.cacti, args.patch)
    for component, cell in CELLS.items():
        for kib in CAPACITIES_KIB:
            r = run(args.cacti, kib, cell)
            source = (f"CACTI 7 ({COMMIT}), 45 nm, one {kib} KiB RAM bank, 64-bit port, {cell} cells, itrs-hp "
                      f"periphery, 360 K" + (", DRAM write factor x100 -> x2" if cell == "lp-dram" else "")
                      + " (scripts/cacti_buffers.py)")
            print(f'area.csv: {component},64,{kib},45,{r["area_um2"]:.0f},{r["leakage_nw"]:.0f},capacity,"{source}"')
            for action in ("read", "write"):
                print(f'energy.csv: {component},{action},64,{kib},45,1.0,{r[action + "_pj"]:.2f},64,'
                      f'sqrt_capacity,"{source}"')


if __name__ == "__main__":
    main()
