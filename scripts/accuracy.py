#!/usr/bin/env python
"""Top-1 accuracy of the real models, and a Stripes-style precision profile of ResNet-20.

- ResNet-20 / ResNet-56 (CIFAR-10, PyTorch): fp32, dfp16, dfp8 and int8_per_channel fake quantization
  (``quantized_accuracy``), calibrated on a fixed set of 500 test images ``np.linspace(0, 9999, 500).round()``,
  plus ``workloads.evaluate`` of the registry workload (dfp16 calibrated on one image).
- TFLite models (``workloads.evaluate``): resnet8-cifar10-int8 (CIFAR-10, 10,000 images) and the two MobileNets
  (ImageNet validation, 1,300 images).
- resnet20-profile: ``profile_precisions`` (target agreement 0.99 with fp32) on 200 test images
  ``np.linspace(0, 9999, 200).round()``, the per-layer table, its MAC-weighted mean widths, and the top-1 of the
  profiled model, quantized as ``import_pytorch(model, calib, scheme="dfp16", profile=profile)`` does.

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
PROFILE = "resnet20-profile"
MODELS = [*PYTORCH, *TFLITE, PROFILE]
SCHEMES = ["fp32", "dfp16", "dfp8", "int8_per_channel"]
CALIB, PROFILE_IMAGES = 500, 200
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
    progress(f"{name} evaluate(load_builtin)")
    rows.append(row(name, "evaluate(): registry dfp16 (calib 1)", evaluate(load_builtin(name), limit=limit,
                                                                        datasets_dir=data)))
    return rows


def tflite_rows(name: str, data: str, limit: int | None) -> list[dict]:
    progress(f"{name} evaluate(load_builtin)")
    return [row(name, "evaluate(): TFLite integer", evaluate(load_builtin(name), limit=limit, datasets_dir=data))]


def profile_run(data: str, limit: int | None) -> tuple[dict, dict]:
    """(a result row, the profile: per-layer table with MACs, attrs, MAC-weighted mean widths)."""
    from workloads.importers.pytorch import import_pytorch, predict
    from workloads.models.cifar_resnet import cifar_preprocess, load_cifar_resnet
    from workloads.profiling import profile_precisions
    from workloads.quantize import LayerQuant
    from workloads.registry import model_path

    model = load_cifar_resnet(20, model_path("resnet20-cifar10"))
    prof_images, _ = load_cifar10_test(data, spaced(PROFILE_IMAGES))
    progress(f"{PROFILE}: profile_precisions on {PROFILE_IMAGES} images")
    profile = profile_precisions(model, prof_images, preprocess=cifar_preprocess, target_agreement=0.99)
    calib, _ = load_cifar10_test(data, spaced(CALIB))
    wl = import_pytorch(model, calib, preprocess=cifar_preprocess, scheme="dfp16", profile=profile)
    quants = {layer.name: LayerQuant.from_meta(layer.meta) for layer in wl}
    macs = {layer.name: layer.macs for layer in wl}
    table = profile.assign(macs=profile["layer"].map(macs))
    w = table["macs"] / table["macs"].sum()
    images, labels = load_cifar10_test(data, None if limit is None else spaced(limit))
    progress(f"{PROFILE}: scoring the profiled model on {len(labels)} images")
    logits = predict(model, images, preprocess=cifar_preprocess, quants=quants)
    res = {"top1": float(np.mean(logits.argmax(1) == labels)), "n": len(labels)}
    info = {
        "layers": table.to_dict(orient="records"), "attrs": dict(profile.attrs),
        "mac_weighted_act_bits": float((w * table["act_bits"]).sum()),
        "mac_weighted_weight_bits": float((w * table["weight_bits"]).sum()),
    }
    return row("resnet20-cifar10", f"profile (target 0.99 on {PROFILE_IMAGES})", res), info


def print_results(rows: list[dict], profile: dict | None, limit: int | None) -> None:
    print(f"Calibration: {CALIB} CIFAR-10 test images np.linspace(0, 9999, {CALIB}).round(); profiling: "
          f"{PROFILE_IMAGES} images np.linspace(0, 9999, {PROFILE_IMAGES}).round(). "
          + ("Full evaluation sets." if limit is None else f"--limit {limit}."))
    print(f"{'model':34} {'variant':40} {'n':>6} {'top1 %':>7} {'top5 %':>7}")
    for r in rows:
        top5 = "-" if r["top5"] is None else f"{100 * r['top5']:.2f}"
        print(f"{r['model']:34} {r['variant']:40} {r['n']:>6} {100 * r['top1']:>7.2f} {top5:>7}")
    if profile is None:
        return
    a = profile["attrs"]
    print(f"\nResNet-20 precision profile: joint agreement {a['joint_metric']:.4f} (ok {a['joint_ok']}, "
          f"{a['backoff_steps']} back-off steps, {a['images']} images)")
    print(f"{'layer':18} {'act_bits':>8} {'weight_bits':>11} {'act_frac':>8} {'wgt_frac':>8} {'signed':>6} {'macs':>9}")
    for r in profile["layers"]:
        print(f"{r['layer']:18} {r['act_bits']:>8} {r['weight_bits']:>11} {r['act_frac_bits']:>8} "
              f"{r['weight_frac_bits']:>8} {r['act_signed']!s:>6} {r['macs']:>9}")
    print(f"MAC-weighted mean: act {profile['mac_weighted_act_bits']:.2f} bits, "
          f"weights {profile['mac_weighted_weight_bits']:.2f} bits")


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
    rows, profile = [], None
    try:
        for name in models:
            if name in PYTORCH:
                rows += pytorch_rows(name, data, args.limit)
            elif name == PROFILE:
                prof_row, profile = profile_run(data, args.limit)
                rows.append(prof_row)
            else:
                rows += tflite_rows(name, data, args.limit)
    except (FileNotFoundError, WorkloadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - T0
    print_results(rows, profile, args.limit)
    print(f"\nwall time {wall:.0f} s")
    if args.json:
        out = {"calibration": f"np.linspace(0, 9999, {CALIB}).round()",
               "profile_images": f"np.linspace(0, 9999, {PROFILE_IMAGES}).round()", "limit": args.limit,
               "results": rows, "profile": profile, "wall_s": round(wall, 1)}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    return 0


if __name__ == "__main__":
    sys.exit(main())
