#!/usr/bin/env python
"""Speed of the pruning methods: each integer method on the synthetic ResNet-50 (25 M weights), and one
fine-tuning epoch of ResNet-20 on the 5,000 training images (the CIFAR-10 test copy's train half).

Median of ``--repeats`` runs after a warm-up run (which also compiles the numba kernels); prints a table and
writes JSON.

    python scripts/bench_pruning.py [--repeats 3] [--json bench_pruning.json] [--no-epoch]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pruning  # noqa: E402
from workloads import synthetic  # noqa: E402

TARGETS = {"integer method on ResNet-50": 2.0, "fine-tuning epoch": 60.0}
METHODS = [("magnitude", {"sparsity": 0.7}), ("magnitude", {"sparsity": 0.7, "scope": "global"}),
           ("n_of_g", {"keep": 4, "group": 16}), ("bit_budget", {"max_terms": 2}),
           ("bit_balance", {"target": 0.85})]


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call, median of ``repeats`` later calls), seconds."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return first, statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="bench_pruning.json")
    ap.add_argument("--no-epoch", action="store_true", help="skip the fine-tuning epoch (needs torch and data)")
    args = ap.parse_args()
    wl = synthetic.build("resnet50", seed=0)
    rows = []
    for name, params in METHODS:
        first, median = timed(lambda name=name, params=params: pruning.prune(wl, name, **params), args.repeats)
        rows.append({"what": f"{name} {params}", "weights": wl.macs and sum(x.weights.size for x in wl),
                     "first_s": round(first, 3), "median_s": round(median, 3),
                     "target_s": TARGETS["integer method on ResNet-50"]})
    if not args.no_epoch:
        from pruning.finetune import QuantNet, TrainConfig, TrainData, finetune
        from workloads import load_builtin

        r20 = load_builtin("resnet20-cifar10", precision="dfp8")
        data = TrainData.cifar10()
        net = QuantNet(r20)
        first, median = timed(lambda: finetune(net, data, TrainConfig(epochs=1, threads=2)), 1)
        rows.append({"what": "fine-tuning epoch, ResNet-20, 5,000 images, batch 128, 2 threads",
                     "weights": sum(x.weights.size for x in r20), "first_s": round(first, 2),
                     "median_s": round(median, 2), "target_s": TARGETS["fine-tuning epoch"]})
    width = max(len(r["what"]) for r in rows)
    print(f"{'what':<{width}}  {'weights':>10}  {'first s':>8}  {'median s':>9}  {'target s':>9}")
    for r in rows:
        print(f"{r['what']:<{width}}  {r['weights']:>10}  {r['first_s']:>8}  {r['median_s']:>9}  {r['target_s']:>9}")
    Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["median_s"] < r["target_s"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
