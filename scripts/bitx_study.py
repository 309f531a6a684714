#!/usr/bin/env python
"""BitX on the CIFAR-10 ResNets: speedup over every candidate "non-pruned" reference, with accuracy.

BitX (Li et al., ICPP 2021) reports "up to 4.82x speedup over the original non-pruned DNN" (abstract). This script
runs ResNet-20 and ResNet-56 through ``bitx`` at several ``kept_columns`` (k), under the readings of the sources
that change the gain, and scores the weights each configuration actually multiplies (``effective_weights``):

- formats: ``fp32`` (the trained float32 weights, batch norm folded, as the PyTorch importer folds them; the
  activations of the ``dfp16`` import, which do not change a weight-serial design's cycles), and the fixed-point
  registry workloads ``dfp16`` (16-bit) and ``dfp8`` (8-bit);
- ``column_schedule``: ``parallel`` (Bitlet's PE: a group costs its largest kept column popcount) or ``serial``
  (one non-empty kept column per cycle, msb first);
- group: ``group_size`` weights interleaved, on 16-lane PEs (groups of 8, the preset, or 16) or on 64-lane PEs with
  64-weight groups (the Bitlet PE's N_total = 64);
- ``run_ahead`` 0 (the preset) or 4.

Speedups are over the same machine (lanes, group, run-ahead) with nothing pruned (``kept_columns`` 32 keeps every
column of every format): with the parallel schedule (``Bitlet``: bitx keeping every column, which is the bitlet
design; ``bitlet`` itself refuses fp32 layers), with the serial schedule (``serial-all``: a bit-serial weight design
processing every column of the group, for fp32 the 24 aligned mantissa columns), and over the bit-parallel
``dadiannao`` preset with the same lanes. Accuracy: top-1 on an evenly spaced subset of the CIFAR-10 test copy
(``--images``, default 1,000: indices ``np.linspace(0, 9999, N).round()``); fp32 runs the folded float model with
the effective weights in place, the fixed-point forms run ``workloads.evaluate`` (fake-quantized activations) on a
workload whose weights are the effective ones. The effective weights depend on the group and k only, so each
(group, k) is scored once. Deterministic.

    python scripts/bitx_study.py [--models resnet20-cifar10,resnet56-cifar10] [--formats fp32,dfp16,dfp8]
                                 [--kept all,12,8,6,5,4,3] [--images 1000] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

from simulator import load_arch, simulate
from simulator.compare import effective_workload
from workloads import Workload, WorkloadError, evaluate, load_builtin
from workloads.datasets import dataset_dir, load_cifar10_test
from workloads.layer import WeightFormat

DEPTH = {"resnet20-cifar10": 20, "resnet56-cifar10": 56}
FORMATS = ("fp32", "dfp16", "dfp8")
ALL = 32  # kept_columns that keeps every column of every format (fp32: 24 aligned columns; integers <= 16 bits)
MACHINES = [  # (lanes, group_size, run_ahead)
    (16, 8, 0), (16, 8, 4), (16, 16, 0), (64, 64, 0), (64, 64, 4),
]
SCHEDULES = ("parallel", "serial")
T0 = time.perf_counter()


def progress(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def spaced(n: int) -> np.ndarray:
    """n evenly spaced indices into the 10,000 CIFAR-10 test images (as ``workloads.evaluate`` takes them)."""
    return np.linspace(0, 9999, min(n, 10000)).round().astype(np.int64)


def fp32_model(name: str):
    """The folded float model (torch.fx GraphModule) of a CIFAR ResNet and its conv / linear modules by name."""
    from workloads.importers.pytorch import fold_batchnorm, quant_modules
    from workloads.models.cifar_resnet import load_cifar_resnet
    from workloads.registry import model_path

    gm = fold_batchnorm(load_cifar_resnet(DEPTH[name], model_path(name)))
    return gm, quant_modules(gm)


def fp32_workload(name: str) -> Workload:
    """The registry's dfp16 workload of ``name`` with every layer's weights replaced by the folded float32 weights
    (``weight_format="fp32"``)."""
    wl = load_builtin(name, precision="dfp16")
    _, mods = fp32_model(name)
    layers = []
    for layer in wl:
        w = mods[layer.name].weight.detach().numpy().astype(np.float32)
        if w.shape != layer.weights.shape:
            raise WorkloadError(f"{name}: layer {layer.name!r}: float weights {w.shape}, workload weights "
                                f"{layer.weights.shape}")
        layers.append(dataclasses.replace(layer, weights=w, weight_format=WeightFormat.FP32))
    return Workload(f"{wl.name}-fp32", layers, {**wl.meta, "weights": "fp32 (folded)"})


def score_fp32(name: str, weights: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 of the folded float model with ``weights`` (module name -> float32 array) in place."""
    import torch

    from workloads.importers.pytorch import predict
    from workloads.models.cifar_resnet import cifar_preprocess

    gm, mods = fp32_model(name)
    for module, w in weights.items():
        mods[module].weight = torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(w)), requires_grad=False)
    logits = predict(gm, images, preprocess=cifar_preprocess, scheme="fp32")
    return float(np.mean(logits.argmax(1) == labels))


def with_weights(wl: Workload, arch) -> tuple[Workload, dict[str, np.ndarray]]:
    """``wl`` with every layer's weights replaced by what ``arch`` multiplies, and those weights by layer name."""
    out = effective_workload(arch, wl)
    return out, {layer.name: layer.weights for layer in out}


def study(models: list[str], formats: list[str], kept: list[int], images: int, machines, schedules) -> list[dict]:
    rows = []
    data = dataset_dir(None)
    imgs, labels = load_cifar10_test(data, spaced(images))
    for name in models:
        for fmt in formats:
            progress(f"{name} {fmt}: loading")
            wl = fp32_workload(name) if fmt == "fp32" else load_builtin(name, precision=fmt)
            int_wl = wl if fmt != "fp32" else load_builtin(name, precision="dfp16")  # same shapes, for dadiannao
            accuracy: dict[tuple[int, int, int], float] = {}
            for lanes, group, run_ahead in machines:
                geometry = dict(lanes=lanes, group_size=group, run_ahead=run_ahead)
                dadn = simulate(load_arch("dadiannao", lanes=lanes), int_wl).cycles
                ref = {s: simulate(load_arch("bitx", **geometry, kept_columns=ALL, column_schedule=s), wl).cycles
                       for s in schedules}
                for schedule in schedules:
                    for k in kept:
                        arch = load_arch("bitx", **geometry, kept_columns=k, column_schedule=schedule)
                        cycles = simulate(arch, wl).cycles
                        key = (lanes, group, k)
                        if key not in accuracy:
                            pruned, eff = with_weights(wl, arch)
                            if fmt == "fp32":
                                accuracy[key] = score_fp32(name, eff, imgs, labels)
                            else:
                                accuracy[key] = evaluate(pruned, limit=images)["top1"]
                        rows.append({
                            "model": name, "format": fmt, "schedule": schedule, "lanes": lanes, "group_size": group,
                            "run_ahead": run_ahead, "kept_columns": "all" if k == ALL else k, "cycles": int(cycles),
                            "x_unpruned": ref[schedule] / cycles,
                            "x_bitlet": ref.get("parallel", np.nan) / cycles,
                            "x_serial_all": ref.get("serial", np.nan) / cycles,
                            "x_dadiannao": dadn / cycles, "top1": accuracy[key], "images": len(labels),
                        })
                    progress(f"{name} {fmt} lanes {lanes} group {group} run_ahead {run_ahead} {schedule}: "
                             f"{len(kept)} points")
    return rows


def table(rows: list[dict]) -> str:
    head = ("| model | format | schedule | lanes / group | run-ahead | k | cycles | x unpruned (same schedule) "
            "| x Bitlet | x serial-all | x DaDianNao | top-1 % |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append(f"| {r['model'].split('-')[0]} | {r['format']} | {r['schedule']} | {r['lanes']} / "
                   f"{r['group_size']} | {r['run_ahead']} | {r['kept_columns']} | {r['cycles']:,} | "
                   f"{r['x_unpruned']:.2f} | {r['x_bitlet']:.2f} | {r['x_serial_all']:.2f} | "
                   f"{r['x_dadiannao']:.2f} | {100 * r['top1']:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(DEPTH), help="comma-separated: " + ", ".join(DEPTH))
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: " + ", ".join(FORMATS))
    ap.add_argument("--kept", default="all,12,8,6,5,4,3", help="kept_columns values ('all' = every column)")
    ap.add_argument("--images", type=int, default=1000, help="CIFAR-10 test images scored (evenly spaced)")
    ap.add_argument("--quick", action="store_true", help="only the preset machine (16 lanes, groups of 8, "
                                                          "no run-ahead)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    formats = args.formats.split(",")
    bad = [m for m in models if m not in DEPTH] + [f for f in formats if f not in FORMATS]
    if bad:
        ap.error(f"unknown model or format: {', '.join(bad)}")
    kept = [ALL if k == "all" else int(k) for k in args.kept.split(",")]
    machines = MACHINES[:1] if args.quick else MACHINES
    rows = study(models, formats, kept, args.images, machines, SCHEDULES)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"images": args.images, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
