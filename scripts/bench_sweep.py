#!/usr/bin/env python
"""Sweep throughput: presets x knob settings x real workloads through the sweep store and an executor.

Builds the sweep (default: 12 presets x 20 machine settings, tiles {1, 2, 4, 8, 16} x rows {4, 8, 12, 16}, x 4 real
workloads = 960 points), expands it, then runs it into a fresh store with the local executor (``--jobs``) or a
local Dask cluster (``--dask N``). Warm: the numba cache and the workloads' import cache are filled by a first,
untimed run of one point per (preset, workload) in this process.

Reported (a table, and ``--json``):

- ``points``, ``wall_s``, ``points_per_s``;
- ``simulate_s``: the sum over points of the time ``simulate`` took (each worker's own measure);
- ``overhead_pct``: what the store and the executor add, ``(wall_s x workers - simulate_s) / simulate_s``, i.e.
  every worker-second not spent simulating (loading a cached workload, building the point's table, Parquet and
  JSON writes, dispatch, the pool's start and its idle tail), as a share of the simulation time;
- ``store_ms_per_point``: the median time ``PointStore.write`` takes, timed here on one point's table.

    python scripts/bench_sweep.py [--presets a,b] [--workloads w1,w2] [--jobs 2 | --dask 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.executors import DaskExecutor, LocalExecutor  # noqa: E402
from simulator.sweep import PointStore, compute_point, expand, run_sweep  # noqa: E402

PRESETS = ["dadiannao", "stripes", "dynamic_stripes", "pragmatic", "loom", "laconic", "tactical", "bitlet", "bitx",
           "swis", "bsa", "cambricon_x"]
WORKLOADS = ["resnet8-cifar10-int8", "vww-int8", "resnet20-cifar10", "mobilenet-v1-0.25-imagenet-uint8"]
GRID = {"tiles": [1, 2, 4, 8, 16], "rows": [4, 8, 12, 16]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--jobs", type=int, default=2, help="local worker processes (default 2)")
    ap.add_argument("--dask", type=int, default=None, metavar="N", help="a local Dask cluster of N workers instead")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    sweep = {"designs": [{"preset": p, "grid": GRID} for p in args.presets.split(",")],
             "workloads": args.workloads.split(",")}
    t0 = time.perf_counter()
    points = expand(sweep)
    expand_s = time.perf_counter() - t0
    warm = {}
    for p in points:  # one point per (design, workload): numba kernels and workload caches warm
        warm.setdefault((p.arch["name"], str(p.workload)), p)
    for p in warm.values():
        compute_point(p)
    with tempfile.TemporaryDirectory() as tmp:
        store = PointStore(Path(tmp) / "store")
        table, _ = compute_point(points[0])
        writes = []
        for _ in range(20):
            start = time.perf_counter()
            store.write(points[0], table, 0.0)
            writes.append(time.perf_counter() - start)
        store = PointStore(Path(tmp) / "sweep")
        executor = DaskExecutor(local_workers=args.dask) if args.dask else LocalExecutor(args.jobs)
        workers = args.dask or args.jobs
        start = time.perf_counter()
        status = run_sweep(points, store, executor)
        wall = time.perf_counter() - start
        simulate_s = float(store.records()["simulate_seconds"].sum())
    row = {"points": len(points), "executor": f"dask x{args.dask}" if args.dask else f"local x{args.jobs}",
           "done": status["done"], "failed": status["failed"], "expand_s": round(expand_s, 2),
           "wall_s": round(wall, 1), "points_per_s": round(len(points) / wall, 2), "simulate_s": round(simulate_s, 1),
           "overhead_pct": round(100 * (wall * workers - simulate_s) / simulate_s, 1),
           "store_ms_per_point": round(1e3 * statistics.median(writes), 2)}
    width = max(len(k) for k in row)
    for k, v in row.items():
        print(f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=1))
    return 0 if status["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
