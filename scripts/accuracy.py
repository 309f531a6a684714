#!/usr/bin/env python
"""Top-1 accuracy of the real models, and their Stripes-style precision profiles.

- ResNet-20 / ResNet-56 (CIFAR-10, PyTorch): fp32, dfp16, dfp8 and int8_per_channel fake quantization
  (``quantized_accuracy``), calibrated on a fixed set of 500 test images ``np.linspace(0, 9999, 500).round()``;
  then ``workloads.evaluate`` of the registry workloads: ``precision="dfp16"`` (calibrated on its one image) and
  the default ``precision="profile"`` (the committed per-layer profile of scripts/profile_precisions.py, printed
  with its MAC-weighted mean widths).
- TFLite models (``workloads.evaluate``): resnet8-cifar10-int8 (CIFAR-10, 10,000 images) and the two MobileNets
  (ImageNet validation, 1,300 images).

Calibration and profiling images are drawn from the test set they are scored on. ``--limit N`` scores an evenly
spaced subset of N CIFAR-10 images (ImageNet: ``evaluate`` takes the first N). Deterministic.

    python scripts/accuracy.py [--models a,b] [--limit N] [--json FILE] [--datasets DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from workloads import WorkloadError, evaluate, load_builtin
from workloads.datasets import dataset_dir, load_cifar10_test

PYTORCH = {"resnet20-cifar10": 20, "resnet56-cifar10": 56}
TFLITE = ["resnet8-cifar10-int8", "mobilenet-v2-imagenet-uint8", "mobilenet-v1-0.25-imagenet-uint8"]
MODELS = [*PYTORCH, *TFLITE]
SCHEMES = ["fp32", "dfp16", "dfp8", "int8_per_channel"]
CALIB = 500
T0 = time.perf_counter()


def progress(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def spaced(n: int) -> np.ndarray:
    """n evenly spaced indices into the 10,000 CIFAR-10 test images (the set is sorted by class)."""
    return np.linspace(0, 9999, min(n, 10000)).round().astype(np.int64)


def row(model: str, variant: str, res: dict) -> dict:
    return {"model": model, "variant": variant, "n": int(res["n"]), "top1": res["top1"], "top5": res.get("top5")}


def pytorch_rows(name: str, data: str, limit: int | None) -> list[dict]:
    from workloads.importers.pytorch import quantized_accuracy
    from workloads.models.cifar_resnet import cifar_preprocess, load_cifar_resnet
    from workloads.registry import model_path

    model = load_cifar_resnet(PYTORCH[name], model_path(name))
    images, labels = load_cifar10_test(data, None if limit is None else spaced(limit))
    calib, _ = load_cifar10_test(data, spaced(CALIB))
    rows = []
    for scheme in SCHEMES:
        progress(f"{name} {scheme}")
        acc = quantized_accuracy(model, images, labels, scheme, None if scheme == "fp32" else calib,
                                 preprocess=cifar_preprocess)
        rows.append(row(name, scheme if scheme == "fp32" else f"{scheme} (calib {CALIB})",
                        {"top1": acc, "n": len(labels)}))
    progress(f"{name} evaluate(load_builtin(precision='dfp16'))")
    rows.append(row(name, "evaluate(): registry dfp16 (calib 1)",
                    evaluate(load_builtin(name, precision="dfp16"), limit=limit, datasets_dir=data)))
    return rows


def tflite_rows(name: str, data: str, limit: int | None) -> list[dict]:
    progress(f"{name} evaluate(load_builtin)")
    return [row(name, "evaluate(): TFLite integer", evaluate(load_builtin(name), limit=limit, datasets_dir=data))]


def profile_row(name: str, data: str, limit: int | None) -> tuple[dict, dict]:
    """(a result row, the profile: per-layer table with MACs, settings, MAC-weighted mean widths) of the registry's
    profiled workload (``load_builtin(name)``: the committed profile of scripts/profile_precisions.py)."""
    from workloads.registry import PROFILES_DIR, precision_profile

    progress(f"{name}: evaluate(load_builtin(precision='profile'))")
    wl = load_builtin(name, precision="profile")
    table = precision_profile(name).assign(macs=[layer.macs for layer in wl])
    w = table["macs"] / table["macs"].sum()
    info = {
        "model": name, "layers": table.to_dict(orient="records"),
        "settings": json.loads((PROFILES_DIR / f"{name}.json").read_text()),
        "mac_weighted_act_bits": float((w * table["act_bits"]).sum()),
        "mac_weighted_weight_bits": float((w * table["weight_bits"]).sum()),
    }
    res = evaluate(wl, limit=limit, datasets_dir=data)
    return row(name, "evaluate(): registry profile (default)", res), info


def print_results(rows: list[dict], profiles: list[dict], limit: int | None) -> None:
    print(f"Calibration: {CALIB} CIFAR-10 test images np.linspace(0, 9999, {CALIB}).round(). "
          + ("Full evaluation sets." if limit is None else f"--limit {limit}."))
    print(f"{'model':34} {'variant':40} {'n':>6} {'top1 %':>7} {'top5 %':>7}")
    for r in rows:
        top5 = "-" if r["top5"] is None else f"{100 * r['top5']:.2f}"
        print(f"{r['model']:34} {r['variant']:40} {r['n']:>6} {100 * r['top1']:>7.2f} {top5:>7}")
    for p in profiles:
        a = p["settings"]
        print(f"\n{p['model']} precision profile ({a['profiling_images']}, target agreement {a['target_agreement']}): "
              f"joint agreement {a['joint_metric']:.4f}, {a['backoff_steps']} back-off steps")
        print(f"{'layer':18} {'act_bits':>8} {'weight_bits':>11} {'act_frac':>8} {'wgt_frac':>8} {'signed':>6} "
              f"{'macs':>9}")
        for r in p["layers"]:
            print(f"{r['layer']:18} {r['act_bits']:>8} {r['weight_bits']:>11} {r['act_frac_bits']:>8} "
                  f"{r['weight_frac_bits']:>8} {r['act_signed']!s:>6} {r['macs']:>9}")
        print(f"MAC-weighted mean: act {p['mac_weighted_act_bits']:.2f} bits, "
              f"weights {p['mac_weighted_weight_bits']:.2f} bits")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help=f"comma-separated subset of {','.join(MODELS)} (default: all)")
    parser.add_argument("--limit", type=int, help="score only N evenly spaced CIFAR-10 images (ImageNet: first N)")
    parser.add_argument("--json", help="also write the results as JSON to FILE")
    parser.add_argument("--datasets", help="folder of the evaluation sets (default: $BITSERIAL_DATASETS, "
                                           "then ../shared/datasets)")
    args = parser.parse_args()
    models = MODELS if not args.models else args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {MODELS}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be positive")
    data = str(dataset_dir(args.datasets))
    rows, profiles = [], []
    try:
        for name in models:
            if name in PYTORCH:
                rows += pytorch_rows(name, data, args.limit)
                prof_row, profile = profile_row(name, data, args.limit)
                rows.append(prof_row)
                profiles.append(profile)
            else:
                rows += tflite_rows(name, data, args.limit)
    except (FileNotFoundError, WorkloadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - T0
    print_results(rows, profiles, args.limit)
    print(f"\nwall time {wall:.0f} s")
    if args.json:
        out = {"calibration": f"np.linspace(0, 9999, {CALIB}).round()", "limit": args.limit,
               "results": rows, "profiles": profiles, "wall_s": round(wall, 1)}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    return 0


if __name__ == "__main__":
    sys.exit(main())
