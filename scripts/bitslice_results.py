#!/usr/bin/env python
"""Bit-slice L1 on ResNet-20 (CIFAR-10, 8-bit dynamic fixed point): slice sparsity, ADC bits and accuracy with and
without the slice penalty.

Runs ``pruning.bitslice_l1`` with ``l1=0`` (magnitude pruning and the same fine-tuning: the baseline) and with each
``--l1`` value, at the same sparsity, epochs and seeds; every run fine-tunes on the CIFAR-10 test copy's train half
(5,000 images, 500 per class, split seed 0) and is scored on the other half (``evaluate(subset="holdout")``).
Prints, per slice (lowest first), the zero share over both differential arrays and the ADC bits a crossbar column
needs (the most over every layer's columns, and the mean over layers of each layer's most), then one row per run
(top-1, zero shares); ``--json`` writes every figure and the per-layer reports.

    python scripts/bitslice_results.py [--l1 5 10 15] [--normalize network|layer] [--sparsity 0.5] [--epochs 2]
                                       [--final-epochs 1] [--train-images N] [--eval-images N] [--threads 1]
                                       [--json out.json]

One thread of the project's 2-core machine: 25-45 s per fine-tuning epoch over the 5,000 train-half images and
8 s per holdout scoring; ``--l1 5 10 15`` with the defaults (four runs of 2 + 1 epochs) took 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pruning  # noqa: E402
from simulator.report import format_table  # noqa: E402
from workloads import evaluate, load_builtin  # noqa: E402
from workloads.slices import adc_bits_for  # noqa: E402


def network_figures(result: pruning.PruneResult) -> dict:
    """Whole-network slice figures from the per-layer report: zero shares over every cell (both arrays), the ADC bits
    per slice (most over all layers; mean over layers of each layer's most)."""
    rep = result.report
    arrays = np.array([2 if layer.weight_signed else 1 for layer in result.workload])
    cells = rep["weights"].to_numpy() * arrays
    n = sum(1 for c in rep.columns if c.startswith("slice") and c.endswith("_adc_bits"))
    out = {"slice_zero": float((rep["slice_zero"] * cells).sum() / cells.sum())}
    for j in range(n):
        out[f"slice{j}_zero"] = float((rep[f"slice{j}_zero"] * cells).sum() / cells.sum())
        out[f"slice{j}_adc_bits_max"] = int(rep[f"slice{j}_adc_bits"].max())
        out[f"slice{j}_adc_bits_mean"] = float(rep[f"slice{j}_adc_bits"].mean())
    out["slices"] = n
    return out


def run(wl, l1: float, args) -> dict:
    t = time.perf_counter()
    res = pruning.prune(wl, "bitslice_l1", l1=l1, normalize=args.normalize, sparsity=args.sparsity,
                        cell_bits=args.cell_bits, xbar_rows=args.xbar_rows, input_bits=args.input_bits,
                        epochs=args.epochs, final_epochs=args.final_epochs, lr=args.lr, threads=args.threads,
                        seed=args.seed, limit=args.train_images)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    acc = evaluate(res.workload, subset="holdout", limit=args.eval_images)
    totals = res.totals()
    figures = network_figures(res)
    row = {"l1": l1, "top1": acc["top1"], "top5": acc["top5"], "images": acc["n"], "density": totals["density"],
           "bit_sparsity": totals["bit_sparsity"], **figures,
           "abs_slice_zero": 2 * figures["slice_zero"] - 1,  # over the slices of |w| alone (one array)
           "history": res.params["history"], "train_seconds": round(train_s, 1),
           "eval_seconds": round(time.perf_counter() - t, 1),
           "layers": res.report.drop(columns=["sq_error", "sq_norm"]).to_dict(orient="records")}
    print(f"l1 {l1:g}: top-1 {acc['top1']:.2%}, slice zero {figures['slice_zero']:.4f} "
          f"({train_s:.0f} s training)", flush=True)
    return row


def tables(rows: list[dict], args) -> str:
    base = rows[0]
    n = base["slices"]
    head = ["slice"]
    for r in rows:
        head.append(f"zero l1={r['l1']:g}")
    for r in rows:
        head.append(f"ADC bits max / mean l1={r['l1']:g}")
    body = []
    for j in [*range(n), None]:
        key = f"slice{j}_zero" if j is not None else "slice_zero"
        line = [str(j) if j is not None else "all"] + [f"{r[key]:.4f}" for r in rows]
        if j is not None:
            line += [f"{r[f'slice{j}_adc_bits_max']} / {r[f'slice{j}_adc_bits_mean']:.2f}" for r in rows]
        else:
            line += ["" for _ in rows]
        body.append(line)
    dense = int(adc_bits_for(args.xbar_rows * ((1 << args.cell_bits) - 1) * ((1 << args.input_bits) - 1)))
    per_run = [[f"{r['l1']:g}", f"{100 * r['top1']:.2f}", f"{100 * (r['top1'] - base['top1']):+.2f}",
                f"{r['slice_zero']:.4f}", f"{r['abs_slice_zero']:.4f}",
                f"{r['abs_slice_zero'] / base['abs_slice_zero']:.3f}",
                f"{(1 - r['abs_slice_zero']) / (1 - base['abs_slice_zero']):.3f}", f"{r['density']:.4f}",
                f"{r['train_seconds']:.0f}"] for r in rows]
    return "\n\n".join([
        format_table(head, body, left=1),
        format_table(["l1", "top-1 %", "vs l1=0", "slice zero (both arrays)", "slice zero (|w|)", "x zero (|w|)",
                      "x nonzero slices", "density", "train s"], per_run, left=1),
        f"(a dense column of {args.xbar_rows} rows, {args.cell_bits}-bit cells, {args.input_bits}-bit inputs needs "
        f"{dense} ADC bits)",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--l1", type=float, nargs="+", default=[pruning.METHODS["bitslice_l1"].bind({})["l1"]],
                    help="penalty strengths to compare with l1=0")
    ap.add_argument("--normalize", choices=("layer", "network"),
                    default=pruning.METHODS["bitslice_l1"].bind({})["normalize"])
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--cell-bits", type=int, default=2)
    ap.add_argument("--xbar-rows", type=int, default=128)
    ap.add_argument("--input-bits", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--final-epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-images", type=int, default=None, help="train on that many images (default all 5,000)")
    ap.add_argument("--eval-images", type=int, default=None, help="score that many holdout images (default 5,000)")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)  # evaluate too
    wl = load_builtin("resnet20-cifar10", precision="dfp8")
    t = time.perf_counter()
    rows = [run(wl, l1, args) for l1 in [0.0, *[v for v in args.l1 if v != 0]]]
    print()
    print(tables(rows, args))
    print(f"\nwall time {time.perf_counter() - t:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v)
                                                  for k, v in vars(args).items()}, "runs": rows}, indent=1,
                                        default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
