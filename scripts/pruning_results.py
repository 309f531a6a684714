#!/usr/bin/env python
"""Pruning results on ResNet-20 (CIFAR-10, 8-bit dynamic fixed point): accuracy, bit sparsity and speedup.

Every retrained point fine-tunes on the CIFAR-10 test copy's train half (5,000 images, 500 per class, seed 0);
every accuracy is measured on the other half (the holdout 5,000), which no point trains or searches on. Fine-tuning
alone raises the holdout accuracy (the copy's JPEG images differ from what the model was trained on), so the
retrained points are also compared with the unpruned network fine-tuned the same way. Speedup
= the unpruned network's cycles / the point's cycles on the same preset. Points are cached in ``--out`` (a re-run
skips finished ones; ``--fresh`` recomputes). Prints the tables, writes ``results.csv``, ``results.json`` and
``accuracy_vs_speedup.png``.

    python scripts/pruning_results.py [--out pruning_out] [--epochs 2] [--kang-epochs 12] [--quick]
                                      [--only bits|kang|pareto]

Takes about an hour on a 2-core machine (retraining: about 20-40 s per epoch); ``--quick`` trains on 500 images
and scores 1,000 (a smoke run, not results).
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

BITS_PRESETS = {"bsa": {}, "pragmatic-w": {"serial": "weight", "encoding": "binary"}, "bitlet": {}}
KANG_PRESETS = {"cambricon_x": {}, "tactical": {}}
ALL_PRESETS = {**BITS_PRESETS, **KANG_PRESETS}


def arch(name: str):
    base = "pragmatic" if name == "pragmatic-w" else name
    return load_arch(base, **BITS_PRESETS.get(name, {}), **({"name": name} if name != base else {}))


def points(epochs: int, kang_epochs: int) -> list[tuple[str, str, str | None, dict]]:
    """(label, family, method, params) of every point; method None = the unpruned network."""
    train = {"epochs": epochs, "final_epochs": 1}
    kang_train = {"epochs": kang_epochs, "final_epochs": 1}
    bits = [("unpruned", "unpruned", None, {}),
            # fine-tuning alone moves accuracy (the test copy's JPEG images differ from the training set): the
            # retrained points compare with this one too
            ("unpruned, fine-tuned", "unpruned", "retrain", {"method": "magnitude", "sparsity": 0.0, **train})]
    for s in (0.3, 0.5, 0.7):
        bits.append((f"magnitude {s:.0%} retrained", "magnitude (retrained)", "retrain",
                     {"method": "magnitude", "sparsity": s, **train}))
    for t in (2, 1):
        bits.append((f"bit budget {t} post-training", "bit budget (post-training)", "bit_budget", {"max_terms": t}))
        bits.append((f"bit budget {t} retrained (STE)", "bit budget (STE)", "retrain",
                     {"method": "bit_budget", "max_terms": t, **train}))
        bits.append((f"bit budget {t} retrained (ADMM)", "bit budget (ADMM)", "retrain",
                     {"method": "bit_budget", "max_terms": t, "admm": True, **train}))
    for target in (0.8, 0.85, 0.9):
        bits.append((f"bit balance {target:.0%} post-training", "bit balance (post-training)", "bit_balance",
                     {"target": target}))
        bits.append((f"Bit-Pruner {target:.0%} (STE)", "Bit-Pruner (STE)", "bitpruner",
                     {"target": target, "epochs": epochs, "final_epochs": 2}))
    bits.append(("Bit-Pruner 85% (ADMM)", "Bit-Pruner (ADMM)", "bitpruner",
                 {"target": 0.85, "epochs": epochs, "final_epochs": 2, "admm": True}))
    kang = []
    for keep, sparsity in ((8, 0.5), (4, 0.75)):
        kang.append((f"{keep}-of-16 post-training", "N-of-g (post-training)", "n_of_g", {"keep": keep}))
        kang.append((f"{keep}-of-16 retrained", "N-of-g (retrained)", "retrain",
                     {"method": "n_of_g", "keep": keep, **kang_train}))
        kang.append((f"magnitude {sparsity:.0%} post-training", "magnitude (post-training)", "magnitude",
                     {"sparsity": sparsity}))
        kang.append((f"magnitude {sparsity:.0%} retrained", "magnitude (retrained)", "retrain",
                     {"method": "magnitude", "sparsity": sparsity, **kang_train}))
    # two stages, as Kang prunes gradually: 4-of-16 from the retrained 8-of-16 network, magnitude 75 % from the
    # retrained 50 % one (``from``: the label of the point whose workload a point starts from)
    kang.append(("4-of-16 from 8-of-16, retrained", "N-of-g (two stages)", "retrain",
                 {"method": "n_of_g", "keep": 4, "from": "8-of-16 retrained", **kang_train}))
    kang.append(("magnitude 75% from 50%, retrained", "magnitude (two stages)", "retrain",
                 {"method": "magnitude", "sparsity": 0.75, "from": "magnitude 50% retrained", **kang_train}))
    return [(*p, "bits") for p in bits] + [(*p, "kang") for p in kang]


def key_of(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def run_point(wl: Workload, label, family, method, params, group, args, cache: Path) -> dict:
    key = f"{group}-{key_of(label)}"
    done = cache / f"{key}.json"
    if done.is_file() and not args.fresh:
        row = json.loads(done.read_text())
        if row.get("params") == params:
            if any(f"cycles:{name}" not in row for name in ALL_PRESETS):  # a preset added since: simulate it
                row.update(cycles_on_every_preset(Workload.load(cache / f"{key}.npz")))
                done.write_text(json.dumps(row, indent=1))
            return row
    t = time.perf_counter()
    kwargs = dict(params)
    if "from" in kwargs:  # start from an earlier point of the same group
        wl = Workload.load(cache / f"{group}-{key_of(kwargs.pop('from'))}.npz")
    if method in ("retrain", "bitpruner"):  # retraining: on the train half (or its first images with --quick)
        kwargs.update(threads=2, limit=args.train_images)
    result = pruning.prune(wl, method, **kwargs) if method else None
    pruned = result.workload if result is not None else wl
    seconds = time.perf_counter() - t
    acc = evaluate(pruned, subset="holdout", limit=args.eval_images)
    totals = result.totals() if result is not None else pruning.prune(wl, "magnitude", sparsity=0.0).totals()
    row = {"label": label, "family": family, "group": group, "method": method or "", "params": params,
           "top1": acc["top1"], "top5": acc["top5"], "images": acc["n"], "bit_sparsity": totals["bit_sparsity"],
           "density": totals["density"], "mean_terms": totals["mean_terms"], "rel_error": totals["rel_error"],
           "seconds": round(seconds, 1), **cycles_on_every_preset(pruned)}
    if result is not None and "history" in result.params:
        row["train_loss"] = result.params["history"]["loss"]
    pruned.save(cache / f"{key}.npz")
    done.write_text(json.dumps(row, indent=1))
    return row


def cycles_on_every_preset(workload: Workload) -> dict[str, int]:
    return {f"cycles:{name}": simulate(arch(name), workload).cycles for name in ALL_PRESETS}


def run_pareto(wl: Workload, args, cache: Path) -> list[dict]:
    done = cache / "pareto.json"
    if done.is_file() and not args.fresh:
        return json.loads(done.read_text())
    bsa = arch("bsa")
    res = pruning.pareto(wl, layer_cycles=lambda layer: simulate_layer(bsa, layer)["cycles"],
                         accuracy=lambda w: evaluate(w, subset="train", limit=args.search_images)["top1"],
                         method="bit_balance", rates=(0.7, 0.8, 0.85, 0.9, 0.95), budgets=10, max_drop=0.01)
    rows = []
    for i, (point, f) in enumerate(zip(res.points, res.frontier.itertuples(), strict=True)):
        if not f.on_frontier:
            continue
        acc = evaluate(point.workload, subset="holdout", limit=args.eval_images)
        totals = point.totals()
        rows.append({"label": f"pareto point {i}", "family": "Pareto per-layer bit balance (post-training)",
                     "group": "bits", "method": "pareto", "params": {"rates": point.params.get("rates")},
                     "top1": acc["top1"], "top5": acc["top5"], "images": acc["n"],
                     "bit_sparsity": totals["bit_sparsity"], "density": totals["density"],
                     "mean_terms": totals["mean_terms"], "rel_error": totals["rel_error"], "seconds": 0.0,
                     "search_top1_train": f.accuracy,
                     **{f"cycles:{k}": simulate(arch(k), point.workload).cycles for k in BITS_PRESETS}})
    done.write_text(json.dumps(rows, indent=1))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="pruning_out")
    ap.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (per stage for Bit-Pruner)")
    ap.add_argument("--kang-epochs", type=int, default=12,
                    help="fine-tuning epochs of the N-of-g points and the magnitude points they compare with")
    ap.add_argument("--quick", action="store_true", help="500 training images, 1,000 scored: a smoke run")
    ap.add_argument("--only", choices=["bits", "kang", "pareto"])
    ap.add_argument("--fresh", action="store_true", help="recompute cached points")
    args = ap.parse_args()
    args.train_images = 500 if args.quick else None
    args.eval_images = 1000 if args.quick else None
    args.search_images = 200 if args.quick else 500
    out = Path(args.out)
    cache = out / "points"
    cache.mkdir(parents=True, exist_ok=True)
    wl = load_builtin("resnet20-cifar10", precision="dfp8")
    rows = []
    for label, family, method, params, group in points(args.epochs, args.kang_epochs):
        if args.only in ("bits", "kang") and group != args.only or args.only == "pareto" and method:
            continue
        rows.append(run_point(wl, label, family, method, params, group, args, cache))
        print(f"{label}: top-1 {100 * rows[-1]['top1']:.2f} %, {rows[-1]['seconds']} s", flush=True)
    if args.only in (None, "pareto"):
        rows += run_pareto(wl, args, cache)
    table = pd.DataFrame(rows)
    base = table[table["method"] == ""].iloc[0] if (table["method"] == "").any() else None
    if base is not None:
        for col in [c for c in table.columns if c.startswith("cycles:")]:
            table[col.replace("cycles:", "speedup:")] = base[col] / table[col] if not pd.isna(base[col]) else np.nan
        table["top1_drop"] = 100 * (base["top1"] - table["top1"])
    table.to_csv(out / "results.csv", index=False)
    (out / "results.json").write_text(table.to_json(orient="records", indent=1))
    for group, presets in (("bits", BITS_PRESETS), ("kang", KANG_PRESETS)):
        part = table[table["group"] == group]
        if part.empty:
            continue
        heads = ["point", "bit sparsity", "density", "top-1 %", "drop", *[f"x {p}" for p in presets]]
        body = [[r["label"], f"{r['bit_sparsity']:.3f}", f"{r['density']:.3f}", f"{100 * r['top1']:.2f}",
                 f"{r.get('top1_drop', float('nan')):.2f}", *[f"{r.get(f'speedup:{p}', float('nan')):.2f}"
                                                              for p in presets]] for r in part.to_dict("records")]
        print(format_table(heads, body, left=1))
    print("accuracy: top-1 on the CIFAR-10 test copy's holdout half (5,000 images); retraining used the other half")
    plot(table, out / "accuracy_vs_speedup.png")
    return 0


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, group, preset, title in ((axes[0], "bits", "bsa", "bit pruning on bsa (Bit-Pruner's target)"),
                                     (axes[1], "kang", "cambricon_x", "N-of-g vs magnitude on cambricon_x")):
        part_of_group = table[table["group"] == group]
        if part_of_group.empty or f"speedup:{preset}" not in part_of_group:
            continue
        for family, part in part_of_group.groupby("family", sort=False):
            part = part.sort_values(f"speedup:{preset}")
            ax.plot(part[f"speedup:{preset}"], 100 * part["top1"], marker="o", label=family)
        ax.set_xlabel(f"speedup over the unpruned network on {preset} (cycles ratio)")
        ax.set_ylabel("top-1 accuracy (%), CIFAR-10 holdout half")
        ax.set_title(f"ResNet-20 (8-bit): {title}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
