#!/usr/bin/env python
"""BSQ on ResNet-20 (CIFAR-10, 8-bit dynamic fixed point): per-layer weight precisions, accuracy, Stripes / Loom.

Runs ``pruning.bsq`` at each ``--strength``, plus (unless ``--no-baseline``) the unpruned network fine-tuned the
same number of epochs without BSQ (plain float-weight fine-tuning, ``pruning.finetune``), on the CIFAR-10 test
copy's train half (5,000 images, 500 per class, split seed 0); every accuracy is top-1 on the other half (the
holdout 5,000, ``evaluate(subset="holdout")``). Each workload is simulated on the ``stripes`` and ``loom`` presets
and on ``dadiannao``; speedup = dadiannao's cycles / the preset's cycles on the same workload. Stripes runs the
activations serially (the weights' precision does not matter to it); Loom runs both serially, weights at each
layer's ``weight_bits``, so BSQ's precisions show in Loom only.

    python scripts/bsq_results.py [--strength 0.1 0.3] [--epochs 2] [--final-epochs 1] [--batch-size 32]
                                  [--threads 1] [--no-baseline] [--limit N] [--eval-limit N] [--json [PATH]]

``--json`` prints the results as JSON instead of the tables (``--json PATH`` writes them to PATH as well as
printing the tables). About 45 s per epoch on one thread of the project's 2-core machine (batch 32), 40 s per
5,000-image evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pruning  # noqa: E402
from simulator import load_arch, simulate  # noqa: E402
from simulator.report import format_table  # noqa: E402
from workloads import Workload, evaluate, load_builtin  # noqa: E402

PRESETS = ("stripes", "loom")
BASE = "dadiannao"


def finetuned(wl: Workload, epochs: int, batch_size: int, threads: int, limit: int | None) -> Workload:
    """The unpruned network fine-tuned ``epochs`` epochs as BSQ's training (same data, lr, batch), no constraint."""
    from pruning.finetune import QuantNet, TrainConfig, TrainData, finetune

    net = QuantNet(wl)
    finetune(net, TrainData.cifar10(0, None, limit), TrainConfig(epochs=epochs, batch_size=batch_size,
                                                                  threads=threads or None, limit=limit))
    return net.to_workload()


def mean_bits(wl: Workload) -> float:
    """Weight bits per weight over the network (sign included)."""
    n = sum(layer.weights.size for layer in wl)
    return sum(layer.weights.size * layer.weight_bits for layer in wl) / n


def measure(label: str, wl: Workload, archs: dict, eval_limit: int | None, seconds: float) -> dict:
    score = evaluate(wl, subset="holdout", limit=eval_limit)
    cycles = {name: int(simulate(arch, wl).cycles) for name, arch in archs.items()}
    return {"point": label, "top1": score["top1"], "n": score["n"], "mean_weight_bits": mean_bits(wl),
            "bits": {layer.name: layer.weight_bits for layer in wl}, "cycles": cycles,
            "speedup": {p: cycles[BASE] / cycles[p] for p in PRESETS}, "train_seconds": round(seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strength", type=float, nargs="+", default=[0.1, 0.3], help="BSQ strengths (alpha)")
    ap.add_argument("--epochs", type=int, default=2, help="BSQ epochs (the baseline fine-tunes epochs + final)")
    ap.add_argument("--final-epochs", type=int, default=1, help="fine-tuning epochs at the reached precisions")
    ap.add_argument("--requant-every", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--no-baseline", action="store_true", help="skip the fine-tuned (not BSQ) network")
    ap.add_argument("--limit", type=int, default=None, help="train on that many images (a smoke run)")
    ap.add_argument("--eval-limit", type=int, default=None, help="score that many holdout images (a smoke run)")
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                    help="print JSON instead of the tables, or write it to PATH")
    args = ap.parse_args()

    start = time.time()
    wl = load_builtin("resnet20-cifar10", precision="dfp8")
    archs = {name: load_arch(name) for name in (BASE, *PRESETS)}
    points = [measure("imported (8-bit)", wl, archs, args.eval_limit, 0.0)]
    if not args.no_baseline:
        t = time.time()
        ft = finetuned(wl, args.epochs + args.final_epochs, args.batch_size, args.threads, args.limit)
        points.append(measure(f"fine-tuned {args.epochs + args.final_epochs} epochs (not BSQ)", ft, archs,
                              args.eval_limit, time.time() - t))
    reports = {}
    for strength in args.strength:
        t = time.time()
        res = pruning.bsq(wl, strength=strength, epochs=args.epochs, final_epochs=args.final_epochs,
                          requant_every=args.requant_every, batch_size=args.batch_size, threads=args.threads,
                          limit=args.limit)
        label = f"BSQ strength {strength:g}"
        points.append(measure(label, res.workload, archs, args.eval_limit, time.time() - t))
        points[-1]["history"] = {k: v for k, v in res.params["history"].items() if k != "bits"}
        rep = res.report.set_index("layer")
        reports[label] = {name: {**{k: int(rep.loc[name, k]) for k in ("bits_after", "lsb_dropped", "msb_dropped")},
                                 "plane_density": float(rep.loc[name, "plane_density"])} for name in rep.index}
    wall = time.time() - start
    out = {"command": " ".join(["python", *sys.argv]), "wall_seconds": round(wall, 1),
           "settings": {k: v for k, v in vars(args).items() if k != "json"},
           "training_data": "CIFAR-10 test copy, train half (5,000 images, 500 per class, split seed 0)",
           "scored_on": "CIFAR-10 test copy, holdout half" + (f" (first {args.eval_limit})" if args.eval_limit
                                                                else " (5,000 images)"),
           "points": points, "bsq_layers": reports}
    if args.json is not None:
        text = json.dumps(out, indent=1)
        if args.json == "-":
            print(text)
            return 0
        Path(args.json).write_text(text)
    heads = ["point", "top1 %", "mean w bits", *[f"x {p}" for p in PRESETS], f"{BASE} cycles", "train s"]
    body = [[p["point"], f"{100 * p['top1']:.2f}", f"{p['mean_weight_bits']:.2f}",
             *[f"{p['speedup'][q]:.2f}" for q in PRESETS], p["cycles"][BASE], f"{p['train_seconds']:.0f}"]
            for p in points]
    print(format_table(heads, body, left=1))
    print()
    layers = list(points[0]["bits"])
    bsq_points = [p for p in points if p["point"] in reports]
    heads = ["layer", "weights", "bits before", *[p["point"].replace("BSQ strength", "BSQ") for p in bsq_points]]
    body = [[name, wl[name].weights.size, wl[name].weight_bits,
             *[f"{p['bits'][name]} ({reports[p['point']][name]['lsb_dropped']}L "
               f"{reports[p['point']][name]['msb_dropped']}M, {reports[p['point']][name]['plane_density']:.2f})"
               for p in bsq_points]] for name in layers]
    print(format_table(heads, body, left=1))
    print("\nper BSQ point: bits after (LSB planes dropped L, MSB planes dropped M, density of ones in kept planes)")
    print(f"wall time {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
