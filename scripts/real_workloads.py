#!/usr/bin/env python
"""Every preset on every built-in real workload: speedup over DaDianNao, and how long import + simulation take.

For each real model (``workloads.load_builtin``, one input unless ``--images``) this prints the whole-network
speedup of every preset over the DaDianNao preset (cycles and ideal cycles) and the wall time of the import
(``--refresh`` re-imports instead of reading the cache) and of simulating it with all presets. Run it twice: the
first run also compiles the numba kernels (cached on disk). Writes JSON with ``--json``.

    python scripts/real_workloads.py [--models a,b] [--presets a,b] [--images N] [--refresh] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from simulator import load_arch, preset_names, simulate
from workloads import WorkloadError, builtin_names, load_builtin

BASELINE = "dadiannao"


def run_model(name: str, presets: list[str], images: int, refresh: bool, data_dir: str | None) -> dict:
    t0 = time.perf_counter()
    workload = load_builtin(name, images=images, data_dir=data_dir, refresh=refresh)
    import_s = time.perf_counter() - t0
    cycles, ideal, seconds = {}, {}, {}
    for preset in presets:
        t0 = time.perf_counter()
        res = simulate(load_arch(preset), workload)
        seconds[preset] = time.perf_counter() - t0
        cycles[preset], ideal[preset] = res.cycles, res.ideal_cycles
    base = cycles[BASELINE]
    return {
        "model": name, "layers": len(workload), "macs": workload.macs, "images": images,
        "import_s": round(import_s, 3), "refreshed": refresh, "simulate_s": round(sum(seconds.values()), 3),
        "simulate_s_per_preset": {p: round(s, 3) for p, s in seconds.items()},
        "cycles": cycles, "speedup": {p: base / c for p, c in cycles.items()},
        "ideal_speedup": {p: ideal[BASELINE] / i for p, i in ideal.items()},
    }


def print_tables(rows: list[dict], presets: list[str]) -> None:
    others = [p for p in presets if p != BASELINE]
    width = max(len(r["model"]) for r in rows)
    for key, title in (("speedup", "Speedup over DaDianNao (cycles)"),
                       ("ideal_speedup", "Ideal speedup over DaDianNao (each design's own work, no stalls)")):
        print(title)
        print(f"{'model':<{width}}  " + "  ".join(f"{p:>15}" for p in others))
        for r in rows:
            print(f"{r['model']:<{width}}  " + "  ".join(f"{r[key][p]:>15.2f}" for p in others))
        print()
    print("Wall time (s)")
    print(f"{'model':<{width}}  {'layers':>6}  {'GMACs':>7}  {'import':>7}  {'simulate':>8}  {'total':>7}  "
          "slowest preset")
    for r in rows:
        slow = max(r["simulate_s_per_preset"], key=r["simulate_s_per_preset"].get)
        total = r["import_s"] + r["simulate_s"]
        print(f"{r['model']:<{width}}  {r['layers']:>6}  {r['macs'] / 1e9:>7.3f}  {r['import_s']:>7.2f}  "
              f"{r['simulate_s']:>8.2f}  {total:>7.2f}  {slow} {r['simulate_s_per_preset'][slow]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated built-in workloads (default: all)")
    parser.add_argument("--presets", help="comma-separated presets (default: all)")
    parser.add_argument("--images", type=int, default=1, help="inputs per model (default 1)")
    parser.add_argument("--refresh", action="store_true", help="re-import instead of reading the workload cache")
    parser.add_argument("--data-dir", help="folder of the model files (default: $BITSERIAL_DATA, ../shared/workloads)")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args()
    models = args.models.split(",") if args.models else builtin_names()
    presets = args.presets.split(",") if args.presets else preset_names()
    if BASELINE not in presets:
        presets.insert(0, BASELINE)
    rows = []
    for name in models:
        print(f"{name} ...", file=sys.stderr, flush=True)
        try:
            rows.append(run_model(name, presets, args.images, args.refresh, args.data_dir))
        except (WorkloadError, OSError) as exc:
            print(f"skipped {name}: {exc}", file=sys.stderr)
    if not rows:
        print("error: no model could be run", file=sys.stderr)
        return 1
    print_tables(rows, presets)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
