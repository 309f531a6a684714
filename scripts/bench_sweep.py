#!/usr/bin/env python
"""Sweep throughput: presets x knob settings x real workloads through the sweep store and an executor.

Builds the sweep (default: 12 presets x 20 machine settings, tiles {1, 2, 4, 8, 16} x rows {4, 8, 12, 16}, x 4 real
workloads = 960 points), expands it, then runs it twice with the local executor (``--jobs``) or a local Dask
cluster (``--dask N``): a cold run into a throwaway store (the workers start, import, load the numba cache and the
workloads), then, on the same workers (loky reuses its pool; the Dask executor holds its cluster in a ``with``
block), the timed warm run into a fresh store. The numba cache and the workloads' import cache are filled first in
this process (one point per preset and workload).

Reported (a table, and ``--json``), for the warm run:

- ``points``, ``wall_s``, ``points_per_s``, and ``cold_wall_s`` (the first run, starting the workers);
- ``simulate_s``: the sum over points of the time ``simulate`` took (each worker's own measure); the shares below
  are of this time;
- ``results_pct``: building each point's results beyond ``simulate`` (its architecture from the sweep's knobs, the
  cached workload, the energy per part group, the per-layer Arrow table with the point's columns): the provenance
  record's ``seconds`` minus ``simulate_seconds``;
- ``store_pct``: the store, per point: the Arrow IPC file and the atomic write (the time ``run_point`` took
  in its worker minus the record's ``seconds``);
- ``executor_pct``: the executor: every other worker-second (dispatch, results coming back, the idle tail when
  fewer points than workers are left): ``wall_s x workers`` minus the time ``run_point`` took, summed;
- ``overhead_pct``: all three, ``(wall_s x workers - simulate_s) / simulate_s``; the sweep issue's target (the
  store and the executor under 5 %) is ``store_pct + executor_pct``;
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


class Timed:
    """An executor wrapper summing the seconds each point took in its worker."""

    def __init__(self, executor):
        self.executor, self.seconds = executor, 0.0

    def map_points(self, points, store_root, **kw):
        for outcome in self.executor.map_points(points, store_root, **kw):
            self.seconds += outcome[2]
            yield outcome


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
    for p in points:  # one point per (design, workload): numba kernels and workload caches warm in this process
        warm.setdefault((p.arch["name"], str(p.workload)), p)
    for p in warm.values():
        compute_point(p)
    executor = DaskExecutor(local_workers=args.dask) if args.dask else LocalExecutor(args.jobs)
    workers = args.dask or args.jobs
    with tempfile.TemporaryDirectory() as tmp:
        store = PointStore(Path(tmp) / "store")
        table, _ = compute_point(points[0])
        writes = []
        for _ in range(20):
            start = time.perf_counter()
            store.write(points[0], table, 0.0)
            writes.append(time.perf_counter() - start)
        with executor:  # the same workers (and Dask cluster) for both runs
            start = time.perf_counter()
            run_sweep(points, PointStore(Path(tmp) / "cold"), executor)  # starts the workers
            cold = time.perf_counter() - start
            store = PointStore(Path(tmp) / "sweep")
            timed = Timed(executor)
            start = time.perf_counter()
            status = run_sweep(points, store, timed)
            wall = time.perf_counter() - start
        records = store.records()
        simulate_s, computed_s = float(records["simulate_seconds"].sum()), float(records["seconds"].sum())

    def pct(seconds: float) -> float:
        return round(100 * seconds / simulate_s, 1)

    row = {"points": len(points), "executor": f"dask x{args.dask}" if args.dask else f"local x{args.jobs}",
           "done": status["done"], "failed": status["failed"], "expand_s": round(expand_s, 2),
           "cold_wall_s": round(cold, 1), "wall_s": round(wall, 1), "points_per_s": round(len(points) / wall, 2),
           "simulate_s": round(simulate_s, 1), "results_pct": pct(computed_s - simulate_s),
           "store_pct": pct(timed.seconds - computed_s), "executor_pct": pct(wall * workers - timed.seconds),
           "overhead_pct": pct(wall * workers - simulate_s),
           "store_ms_per_point": round(1e3 * statistics.median(writes), 2)}
    width = max(len(k) for k in row)
    for k, v in row.items():
        print(f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=1))
    return 0 if status["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
