#!/usr/bin/env python
"""Stripes-style per-layer precision profiles of the CIFAR ResNets, written where the registry reads them.

For each model, ``workloads.profiling.profile_precisions`` finds the smallest dynamic fixed point widths of every
layer's activations and weights that keep top-1 agreement with the fp32 model on ``--target`` of the profiling
images (``--images`` evenly spaced CIFAR-10 test images), then writes ``workloads/data/profiles/<model>.csv``
(one row per layer) and ``<model>.json`` (the settings and the joint result). ``workloads.load_builtin`` quantizes
``resnet20-cifar10`` / ``resnet56-cifar10`` with these profiles by default (``precision="profile"``).

    python scripts/profile_precisions.py [--models resnet20-cifar10,resnet56-cifar10] [--images 200]
        [--target 0.99] [--out workloads/data/profiles] [--datasets DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from workloads.datasets import dataset_dir, load_cifar10_test
from workloads.registry import BUILTINS, PROFILES_DIR, model_path

MODELS = [name for name, entry in BUILTINS.items() if entry.importer == "pytorch"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default: {','.join(MODELS)})")
    parser.add_argument("--images", type=int, default=200, help="profiling images, evenly spaced (default 200)")
    parser.add_argument("--target", type=float, default=0.99, help="top-1 agreement with fp32 (default 0.99)")
    parser.add_argument("--out", default=str(PROFILES_DIR), help="output folder (default: the registry's)")
    parser.add_argument("--datasets", help="folder of the evaluation sets (default: ../shared/datasets)")
    args = parser.parse_args()
    from workloads.models.cifar_resnet import cifar_preprocess, load_cifar_resnet
    from workloads.profiling import profile_precisions

    idx = np.linspace(0, 9999, args.images).round().astype(np.int64)
    try:
        images, _ = load_cifar10_test(dataset_dir(args.datasets), idx)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; choose from {MODELS}")
        t0 = time.perf_counter()
        model = load_cifar_resnet(BUILTINS[name].depth, model_path(name))
        profile = profile_precisions(model, images, preprocess=cifar_preprocess, target_agreement=args.target)
        profile.to_csv(out / f"{name}.csv", index=False)
        info = {"model": name, "profiling_images": f"CIFAR-10 test np.linspace(0, 9999, {args.images}).round()",
                "command": " ".join(["python scripts/profile_precisions.py", *sys.argv[1:]]),
                **{k: (v.item() if isinstance(v, np.generic) else v) for k, v in profile.attrs.items()}}
        (out / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
        print(f"{name}: {len(profile)} layers, activations {profile.act_bits.min()}-{profile.act_bits.max()} bits, "
              f"weights {profile.weight_bits.min()}-{profile.weight_bits.max()} bits, joint agreement "
              f"{profile.attrs['joint_metric']:.4f} ({time.perf_counter() - t0:.0f} s) -> {out / (name + '.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
