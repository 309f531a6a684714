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

With ``--refit lstsq`` (or ``bn``): every point every search measures is first re-fitted without training (the
least-squares re-fit of the kept weights to the unpruned network's outputs, on train-half images outside the
search's; ``autoprune(refit=...)``, ``uniform_search(refit=...)``, pareto's accuracy re-fits first), so the
searches rank points by what fine-tuning starts from.

With ``--finetune-epochs N`` (AUTO-PRUNE with retraining): the searches run with the looser constraint ``--search-drop``
(on the post-training search accuracy), then each fine-tunes the unpruned network and up to ``--finetune-runs`` points
of its search's Pareto front, by bisection on cost (``finetune=`` of ``autoprune`` and ``uniform_search``: the same
budget), with ``pruning.retrain_pruned`` (N epochs on the train half, the freed rows kept at zero, ``--lr``,
``--optimizer``, ``--recalibrate``), and keeps the cheapest whose fine-tuned search accuracy is within ``--max-drop`` of
the fine-tuned unpruned network's (``--against unpruned``: of the unpruned one's); pareto's chosen point (within
``--search-drop``) is fine-tuned once. The fine-tuning leaves out the ``--images`` search images (``validation``), so
the fine-tuned points are judged on images they never trained on (``--folds K``: each point is fine-tuned once per
validation fold, K disjoint sets of ``--images`` train-half images, and judged by its mean top-1 over them, the unpruned
network by its own on the same images); the holdout half scores everything. The tables then give the holdout top-1
before and after fine-tuning, the unpruned network's holdout top-1 unpruned and fine-tuned the same way, and every
fine-tuned point of every search.

    python scripts/autoprune_results.py [--images 500] [--max-drop 0.01] [--only SEARCH ...] [--budget N]
                                        [--refit lstsq] [--finetune-epochs N --search-drop D --finetune-runs R --folds K
                                         --lr LR --optimizer adam --recalibrate lstsq] [--json out.json]

About 7 minutes on the project's 2-core machine when quiet (70 evaluations per search, about 1 s each at 500
images), 24 minutes under a load average of 5-7. ``--refit lstsq`` adds about 10 s per evaluation; with
``--finetune-epochs 8`` each fine-tuning takes about 150 s (one thread): 22 minutes for the agent's search alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pruning  # noqa: E402
from simulator import load_arch, simulate, simulate_layer  # noqa: E402
from simulator.report import format_table  # noqa: E402
from workloads import Workload, evaluate, load_builtin  # noqa: E402
from workloads.datasets import CIFAR10_HALF  # noqa: E402

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


class Tuner:
    """Fine-tunes a pruned ResNet-20 with ``pruning.retrain_pruned`` (freed rows kept at zero), once per distinct
    set of weights (the searches all fine-tune the unpruned network), timing every run."""

    def __init__(self, args):
        self.train = {"epochs": args.finetune_epochs, "final_epochs": 0, "lr": args.lr, "optimizer": args.optimizer,
                      "recalibrate": args.recalibrate, "threads": 1, "validation": args.images}
        self.seed, self.cache, self.runs, self.seconds = args.seed, {}, 0, 0.0
        self.original: Workload | None = None
        self.limit = args.finetune_images

    def __call__(self, pruned: Workload, fold: int = 0) -> Workload:
        key = (hashlib.sha256(b"".join(layer.weights.tobytes() for layer in pruned)).hexdigest(), fold)
        if key not in self.cache:
            t = time.perf_counter()
            self.cache[key] = pruning.retrain_pruned(self.original, pruned, seed=self.seed, limit=self.limit,
                                                     validation_fold=fold, **self.train).workload
            self.runs += 1
            self.seconds += time.perf_counter() - t
            print(f"  fine-tuned a point of {crossbars(pruned):.0f} crossbars (fold {fold}) in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
        return self.cache[key]


class Counted:
    """The search accuracy (top-1 on the train half's evenly spaced ``images``, after ``refit`` if given),
    counting its calls."""

    def __init__(self, images: int, refit: Callable[[Workload], Workload] | None = None):
        self.images, self.calls, self.refit = images, 0, refit

    def __call__(self, wl: Workload) -> float:
        self.calls += 1
        return evaluate(wl if self.refit is None else self.refit(wl), subset="train", limit=self.images)["top1"]


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
    ft = ap.add_argument_group("fine-tuning (AUTO-PRUNE with retraining)")
    ft.add_argument("--finetune-epochs", type=int, default=0, help="epochs per fine-tuning (0: no fine-tuning)")
    ft.add_argument("--search-drop", type=float, help="the searches' accuracy drop before fine-tuning (default "
                    "--max-drop)")
    ft.add_argument("--finetune-runs", type=int, default=3, help="front points fine-tuned per search (bisection)")
    ft.add_argument("--against", choices=["finetuned", "unpruned"], default="finetuned",
                    help="a fine-tuned point must be within --max-drop of the fine-tuned unpruned network, or of the "
                    "unpruned one")
    ft.add_argument("--folds", type=int, default=1, help="k-fold acceptance: fine-tune every point once per "
                    "validation fold of --images train-half images, judge it by the mean (k times the fine-tuning)")
    ft.add_argument("--finetune-images", type=int, help="fine-tune on only this many train-half images (smoke "
                    "tests; default all 5,000)")
    ft.add_argument("--lr", type=float, default=1e-3)
    ft.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    ft.add_argument("--recalibrate", choices=["none", "bn", "lstsq"], default="none",
                    help="before fine-tuning: adaptive BN (bn) or a least-squares re-fit of the kept weights (lstsq)")
    ap.add_argument("--refit", choices=["none", "bn", "lstsq"], default="none",
                    help="judge every searched point after this re-fit (no training; about 10 s a point): "
                    "autoprune's and uniform_search's refit=, pareto's accuracy re-fits first")
    args = ap.parse_args()
    if "pareto" not in args.only and args.budget is None:
        ap.error("--budget is needed when pareto does not run")
    if args.finetune_epochs < 0:
        ap.error(f"--finetune-epochs ({args.finetune_epochs}) must be >= 0")
    search_drop = args.max_drop if args.search_drop is None else args.search_drop
    tuner = Tuner(args) if args.finetune_epochs else None
    if args.folds < 1 or args.folds * args.images > CIFAR10_HALF:
        ap.error(f"--folds ({args.folds}) must be >= 1, and --folds x --images ({args.images}) at most {CIFAR10_HALF}")
    ft_kw = {} if tuner is None else {"finetune": tuner, "finetune_runs": args.finetune_runs,
                                      "finetune_drop": args.max_drop, "finetune_against": args.against}
    if tuner is not None and args.folds > 1:
        ft_kw.update(finetune_folds=args.folds, fold_accuracy=lambda w, fold: evaluate(
            w, subset="train", limit=args.images, fold=fold)["top1"])

    t_all = time.perf_counter()
    wl = load_builtin("resnet20-cifar10", precision="dfp8")
    base_xbars = crossbars(wl)
    base_holdout = evaluate(wl, subset="holdout")["top1"]
    rows, histories = [], {}
    if tuner is not None:
        tuner.original = wl
    # --refit: adaptive BN or the least-squares re-fit of the kept weights, no training, on the train half minus the
    # search images (the unpruned network as it is)
    refit = None if args.refit == "none" else pruning.refitter(
        wl, {"recalibrate": args.refit, "threads": 1, "validation": args.images}, seed=args.seed)
    search_kw = {} if refit is None else {"refit": refit}

    def record(label: str, pruned: Workload, ratios, acc: Counted, seconds: float, search_acc: float,
               base_search: float, before: Workload | None = None, finetuned_search: float | None = None) -> None:
        x = crossbars(pruned)
        row = {"method": label, "crossbars": x, "x_fewer": base_xbars / x, "search_top1": search_acc,
               "search_drop": base_search - search_acc, "holdout_top1": evaluate(pruned, subset="holdout")["top1"],
               "evaluations": acc.calls, "seconds": seconds, "ratios": ratios}
        if tuner is not None:
            row["holdout_before"] = evaluate(before, subset="holdout")["top1"] if before is not None else math.nan
            row["finetuned_search_top1"] = finetuned_search
        rows.append(row)
        print(f"{label}: {x:.0f} crossbars, search {search_acc:.4f}, {acc.calls} evaluations, {seconds:.0f} s",
              flush=True)

    def record_search(label: str, res, acc: Counted, seconds: float) -> None:
        """An autoprune / uniform_search result: its chosen episode's figures (and fine-tuned ones)."""
        h = res.history
        ratios = res.params["ratios"]
        best = h.loc[(h[[f"ratio:{n}" for n in ratios]] == pd.Series({f"ratio:{n}": r for n, r in ratios.items()})
                      ).all(axis=1)].iloc[0]
        if label == "uniform":
            ratios = next(iter(ratios.values()))
        if res.finetuned is None:
            record(label, res.workload, ratios, acc, seconds, float(best["accuracy"]), res.baseline_accuracy)
        else:
            ft = res.finetuned.set_index("episode")
            record(label, res.workload, ratios, acc, seconds, float(best["accuracy"]), res.baseline_accuracy,
                   before=res.before_finetune, finetuned_search=float(ft.loc[int(best["episode"]),
                                                                             "finetuned_accuracy"]))
            finetuned[label] = res.finetuned.to_dict("records")
            base_ft[label] = res.finetuned_baseline_accuracy
        histories[label] = h.to_dict("records")

    finetuned, base_ft = {}, {}
    # pareto first: its evaluation count is every search's budget
    budget, base_search = args.budget, None
    if "pareto" in args.only:
        acc = Counted(args.images, refit)
        t = time.perf_counter()
        par = pruning.pareto(wl, layer_cycles=layer_crossbars, accuracy=acc, method="crossbar_rows",
                             rates=args.rates, budgets=args.budgets, max_drop=search_drop)
        budget = budget or acc.calls
        base_search = float(par.frontier["baseline_accuracy"].iloc[0])
        # the cheapest measured point within the drop, else the unpruned network (pareto itself falls back on its
        # most accurate point, which may lie far below the floor)
        f = par.frontier
        ok = f[f["accuracy"] >= base_search - search_drop]
        point, rates, point_acc = wl, None, base_search
        if len(ok):
            i = int(ok.sort_values(["cycles", "accuracy"], ascending=[True, False]).index[0])
            point, rates, point_acc = par.points[i].workload, par.points[i].params["rates"], float(f.loc[i, "accuracy"])
        if tuner is None:
            point = point if refit is None else refit(point)  # the network its search accuracy was measured on
            record("pareto", point, rates, acc, time.perf_counter() - t, point_acc, base_search)
        else:  # its chosen point, fine-tuned once
            tuned = tuner(point)
            record("pareto", tuned, rates, acc, time.perf_counter() - t, point_acc, base_search, before=point,
                   finetuned_search=acc(tuned))
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
        res = pruning.autoprune(wl, cost=crossbars, accuracy=acc, method="crossbar_rows", max_drop=search_drop,
                                episodes=budget - 1, max_ratio=args.max_ratio, seed=args.seed, **extra, **ft_kw,
                                **search_kw)
        record_search(label, res, acc, time.perf_counter() - t)

    if "uniform" in args.only:
        acc = Counted(args.images)
        t = time.perf_counter()
        uni = pruning.uniform_search(wl, cost=crossbars, accuracy=acc, method="crossbar_rows", max_drop=search_drop,
                                     ratios=np.linspace(0, args.max_ratio, budget)[1:].round(4), seed=args.seed,
                                     **ft_kw, **search_kw)
        record_search("uniform", uni, acc, time.perf_counter() - t)

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
    tuned_points = []
    if tuner is not None:
        base_tuned = evaluate(tuner(wl), subset="holdout")["top1"]
        how = f"{args.optimizer}, lr {args.lr:g}, recalibrate {args.recalibrate}"
        print(f"fine-tuned {args.finetune_epochs} epochs ({how}) on the train half; holdout top-1: unpruned "
              f"{100 * base_holdout:.2f} %, unpruned fine-tuned {100 * base_tuned:.2f} %")
        print(format_table(["method", "crossbars", "x fewer", "holdout before %", "holdout after %",
                            "drop vs unpruned", "drop vs unpruned fine-tuned", "s"],
                           [[r["method"], f"{r['crossbars']:.0f}", f"{r['x_fewer']:.2f}",
                             f"{100 * r['holdout_before']:.2f}", f"{100 * r['holdout_top1']:.2f}",
                             f"{100 * (base_holdout - r['holdout_top1']):.2f}",
                             f"{100 * (base_tuned - r['holdout_top1']):.2f}", f"{r['seconds']:.0f}"]
                            for r in rows if r["method"] != "unpruned"], left=1))
        # every fine-tuned point of every search (its fold-0 fine-tuning, the one a search returns), scored on the
        # holdout: the cheapest within 1 and 2 points
        for (pruned_key, fold), tuned in tuner.cache.items():
            if fold:
                continue
            tuned_points.append({"crossbars": crossbars(tuned), "holdout_top1": evaluate(tuned, subset="holdout")[
                "top1"], "search_top1": Counted(args.images)(tuned), "key": pruned_key})
        tuned_points.sort(key=lambda r: r["crossbars"])
        print("every fine-tuned point (holdout):")
        print(format_table(["crossbars", "x fewer", "fine-tuned search top-1 %", "holdout top-1 %",
                            "drop vs unpruned fine-tuned"],
                           [[f"{r['crossbars']:.0f}", f"{base_xbars / r['crossbars']:.2f}",
                             f"{100 * r['search_top1']:.2f}", f"{100 * r['holdout_top1']:.2f}",
                             f"{100 * (base_tuned - r['holdout_top1']):.2f}"] for r in tuned_points], left=1))
        for d in (0.01, 0.02):
            ok = [r for r in tuned_points if r["holdout_top1"] >= base_tuned - d]
            print(f"cheapest fine-tuned point within {100 * d:g} pt of the unpruned fine-tuned holdout: "
                  f"{ok[0]['crossbars']:.0f} crossbars ({base_xbars / ok[0]['crossbars']:.2f}x)")
        print(f"{tuner.runs} fine-tunings, {tuner.seconds:.0f} s")
    total = time.perf_counter() - t_all
    judged = "" if refit is None else f" after the {args.refit} re-fit"
    print(f"search accuracy on {args.images} train-half images{judged}, holdout on 5,000; budget {budget} "
          f"evaluations per search; max drop {args.max_drop}, search drop {search_drop}; wall time {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "histories": histories,
                                               "finetuned": finetuned, "finetuned_baseline_search": base_ft,
                                               "finetuned_points": tuned_points, "wall_seconds": total},
                                              indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
