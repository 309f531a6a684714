#!/usr/bin/env python
"""AUTO-PRUNE on ResNet-20 (CIFAR-10, 8-bit dynamic fixed point): occupied ReRAM crossbars and accuracy of three
per-layer ratio searches over ``crossbar_rows`` at equal search budget, no retraining.

Hardware feedback: the crossbars the ``reram`` preset occupies with AUTO-PRUNE's compaction
(``simulate(load_arch("reram", compaction="compact"), wl).layers["crossbars"].sum()``: a column block stores only
its rows holding a non-zero cell). Accuracy during the searches: top-1 on ``--images`` evenly spaced images of the
CIFAR-10 test copy's train half (``evaluate(wl, subset="train", limit=N)``); the final points are scored on the
holdout half (5,000 images), which no search sees. The searches, each allowed the same number of accuracy
evaluations (``pareto``'s count, the unpruned network's included):

- ``pareto``: ``pruning.pareto`` with per-layer crossbars as its additive cost, ``--rates`` (default: the ratios at
  which ResNet-20's 144-, 288- and 576-row matrices lose a 128-row crossbar), ``--budgets`` loss budgets;
- ``autoprune``: ``pruning.autoprune``, continuous ratios in [0, ``--max-ratio``], episodes = the budget - 1;
- ``autoprune-grid``: the same agent, its ratios rounded down to ``--rates``;
- ``uniform``: ``pruning.uniform_search`` over as many ratios, evenly spaced in (0, ``--max-ratio``].

Each picks its cheapest point within ``--max-drop`` of the unpruned network's search accuracy.

    python scripts/autoprune_results.py [--images 500] [--max-drop 0.01] [--only SEARCH ...] [--budget N]
                                        [--json out.json]

About 7 minutes on the project's 2-core machine when quiet (70 evaluations per search, about 1 s each at 500
images), 24 minutes under a load average of 5-7.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pruning  # noqa: E402
from simulator import load_arch, simulate, simulate_layer  # noqa: E402
from simulator.report import format_table  # noqa: E402
from workloads import Workload, evaluate, load_builtin  # noqa: E402

ARCH = load_arch("reram", compaction="compact")
# the ratios at which a matrix loses a 128-row crossbar: 144 rows 2 -> 1 at 0.12; 288: 3 -> 2 -> 1 at 0.12, 0.56; 576:
# 5 -> 4 -> 3 -> 2 at 0.12, 0.34, 0.56 (-> 1 at 0.78, far beyond what the network bears without retraining)
RATES = (0.12, 0.34, 0.56)
SEARCHES = ["pareto", "autoprune", "autoprune-grid", "uniform"]


def crossbars(wl: Workload) -> float:
    """Occupied crossbars of the compact ReRAM mapping (the hardware's direct feedback)."""
    return float(simulate(ARCH, wl).layers["crossbars"].sum())


def layer_crossbars(layer) -> float:
    return float(simulate_layer(ARCH, layer)["crossbars"])


class Counted:
    """The search accuracy (top-1 on the train half's evenly spaced ``images``), counting its calls."""

    def __init__(self, images: int):
        self.images, self.calls = images, 0

    def __call__(self, wl: Workload) -> float:
        self.calls += 1
        return evaluate(wl, subset="train", limit=self.images)["top1"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500, help="train-half images per search accuracy")
    ap.add_argument("--max-drop", type=float, default=0.01, help="accuracy drop (fraction) a point may have")
    ap.add_argument("--max-ratio", type=float, default=0.9)
    ap.add_argument("--rates", type=float, nargs="+", default=list(RATES), help="pareto's rates (and the grid)")
    ap.add_argument("--budgets", type=int, default=12, help="pareto's loss budgets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="+", choices=SEARCHES, default=SEARCHES, help="run only these searches")
    ap.add_argument("--budget", type=int, help="accuracy evaluations per search (default: pareto's count; needed "
                    "without pareto)")
    ap.add_argument("--json", help="write the rows and the search histories here")
    args = ap.parse_args()
    if "pareto" not in args.only and args.budget is None:
        ap.error("--budget is needed when pareto does not run")

    t_all = time.perf_counter()
    wl = load_builtin("resnet20-cifar10", precision="dfp8")
    base_xbars = crossbars(wl)
    base_holdout = evaluate(wl, subset="holdout")["top1"]
    rows, histories = [], {}

    def record(label: str, pruned: Workload, ratios, acc: Counted, seconds: float, search_acc: float,
               base_search: float) -> None:
        x = crossbars(pruned)
        rows.append({"method": label, "crossbars": x, "x_fewer": base_xbars / x, "search_top1": search_acc,
                     "search_drop": base_search - search_acc,
                     "holdout_top1": evaluate(pruned, subset="holdout")["top1"], "evaluations": acc.calls,
                     "seconds": seconds, "ratios": ratios})
        print(f"{label}: {x:.0f} crossbars, search {search_acc:.4f}, {acc.calls} evaluations, {seconds:.0f} s",
              flush=True)

    # pareto first: its evaluation count is every search's budget
    budget, base_search = args.budget, None
    if "pareto" in args.only:
        acc = Counted(args.images)
        t = time.perf_counter()
        par = pruning.pareto(wl, layer_cycles=layer_crossbars, accuracy=acc, method="crossbar_rows",
                             rates=args.rates, budgets=args.budgets, max_drop=args.max_drop)
        seconds = time.perf_counter() - t
        budget = budget or acc.calls
        base_search = float(par.frontier["baseline_accuracy"].iloc[0])
        # the cheapest measured point within max_drop, else the unpruned network (pareto itself falls back on its
        # most accurate point, which may lie far below the floor)
        f = par.frontier
        ok = f[f["accuracy"] >= base_search - args.max_drop]
        if len(ok):
            i = int(ok.sort_values(["cycles", "accuracy"], ascending=[True, False]).index[0])
            record("pareto", par.points[i].workload, par.points[i].params["rates"], acc, seconds,
                   float(f.loc[i, "accuracy"]), base_search)
        else:
            record("pareto", wl, None, acc, seconds, base_search, base_search)
        histories["pareto"] = par.frontier.to_dict("records")
    else:
        base_search = evaluate(wl, subset="train", limit=args.images)["top1"]
    rows.insert(0, {"method": "unpruned", "crossbars": base_xbars, "x_fewer": 1.0, "search_top1": base_search,
                    "search_drop": 0.0, "holdout_top1": base_holdout, "evaluations": 1, "seconds": 0.0,
                    "ratios": None})

    for label, extra in [("autoprune", {}), ("autoprune-grid", {"grid": args.rates})]:
        if label not in args.only:
            continue
        acc = Counted(args.images)
        t = time.perf_counter()
        res = pruning.autoprune(wl, cost=crossbars, accuracy=acc, method="crossbar_rows", max_drop=args.max_drop,
                                episodes=budget - 1, max_ratio=args.max_ratio, seed=args.seed, **extra)
        h = res.history
        best = h[h["feasible"]].sort_values(["reward", "episode"], ascending=[False, True]).iloc[0]
        record(label, res.workload, res.params["ratios"], acc, time.perf_counter() - t, float(best["accuracy"]),
               res.baseline_accuracy)
        histories[label] = res.history.to_dict("records")

    if "uniform" in args.only:
        acc = Counted(args.images)
        t = time.perf_counter()
        uni = pruning.uniform_search(wl, cost=crossbars, accuracy=acc, method="crossbar_rows", max_drop=args.max_drop,
                                     ratios=np.linspace(0, args.max_ratio, budget)[1:].round(4))
        h = uni.history
        ratio = next(iter(uni.params["ratios"].values()))
        row = h.loc[(h[f"ratio:{wl[0].name}"] == ratio) & h["feasible"]].iloc[0]
        record("uniform", uni.workload, ratio, acc, time.perf_counter() - t, float(row["accuracy"]),
               uni.baseline_accuracy)
        histories["uniform"] = h.to_dict("records")

    headers = ["method", "crossbars", "x fewer", "search top-1 %", "holdout top-1 %", "holdout drop", "evaluations",
               "s"]
    print(format_table(headers, [[r["method"], f"{r['crossbars']:.0f}", f"{r['x_fewer']:.2f}",
                                  f"{100 * r['search_top1']:.2f}", f"{100 * r['holdout_top1']:.2f}",
                                  f"{100 * (base_holdout - r['holdout_top1']):.2f}", r["evaluations"],
                                  f"{r['seconds']:.0f}"] for r in rows], left=1))
    # the trade-off each search measured on its way (search half; no extra evaluations): its cheapest point within
    # wider drops (the agent's reward is shaped for --max-drop only)
    drops = (0.01, 0.02, 0.05, 0.10)
    curve = []
    for label, h in histories.items():
        cost = "cycles" if label == "pareto" else "cost"
        h = pd.DataFrame(h)
        best = [h.loc[h["accuracy"] >= base_search - d, cost].min() for d in drops]
        curve.append([label, *("-" if np.isnan(b) else f"{b:.0f}" for b in best)])
    print("cheapest measured point (crossbars) within a drop of the search accuracy:")
    print(format_table(["search", *(f"<= {100 * d:g} pt" for d in drops)], curve, left=1))
    total = time.perf_counter() - t_all
    print(f"search accuracy on {args.images} train-half images, holdout on 5,000; budget {budget} evaluations per "
          f"search; max drop {args.max_drop}; wall time {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "histories": histories,
                                               "wall_seconds": total}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
