#!/usr/bin/env python
"""Speed of scoring TFLite models with the integer ops (``workloads.evaluate``), per image, at a few batch sizes.

Each model runs in its own process with an empty numba cache. ``first_call_s`` is that process's first
``evaluate(load_builtin(model), limit=2)`` (numba compilation included; the workload is loaded, and cached,
beforehand) and ``second_call_s`` the same call again, so ``first - second`` is what compiling costs;
``cached_first_call_s`` is the first call of a second fresh process that finds the compiled kernels in the cache.
Then, for every batch size N, after one warm-up call:

* ``evaluate_ms``: the median over ``--repeats`` calls of ``evaluate(workload, limit=N)`` (reading and decoding
  the N labelled images included), divided by N;
* ``ops_ms``: the median of ``tflite_scores(model, images, weights_override=the workload's weights)`` on the
  same images, already decoded, divided by N: the integer ops alone.

The machine's load average is recorded around each model's runs (on a shared machine the times move with it);
``--blas-threads N`` runs the children with OPENBLAS_NUM_THREADS=N. Prints a table and writes JSON. Run it
against another checkout with ``PYTHONPATH=<checkout>`` (default: the checkout this script is in)::

    python scripts/bench_evaluate.py [--models resnet8-cifar10-int8,mobilenet-v2-imagenet-uint8]
        [--batches resnet8-cifar10-int8=1,16,256 --batches mobilenet-v2-imagenet-uint8=1,8,32] [--repeats 3]
        [--blas-threads 1] [--label base] [--json bench_evaluate.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = ("resnet8-cifar10-int8", "mobilenet-v2-imagenet-uint8")
BATCHES = {"resnet8-cifar10-int8": (1, 16, 256, 1000), "mobilenet-v2-imagenet-uint8": (1, 8, 32)}
REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def _images(name: str, n: int):
    """The first n images of the model's evaluation set, as evaluate picks them (decoded)."""
    import numpy as np

    from workloads import registry
    from workloads.datasets import dataset_dir, load_cifar10_test, load_imagenet_val

    folder = dataset_dir()
    if registry.BUILTINS[name].image_set == "cifar10":
        idx = np.linspace(0, 9999, min(n, 10000)).round().astype(np.int64)
        return load_cifar10_test(folder, idx)[0]
    return load_imagenet_val(folder, slice(0, n))[0]


def measure(name: str, batches: list[int], repeats: int, first_only: bool) -> dict:
    """Runs inside a child process."""
    import resource
    import statistics
    import time

    import workloads
    from workloads import evaluate, load_builtin
    from workloads.importers.tflite import tflite_scores
    from workloads.registry import model_path

    wl = load_builtin(name)
    t0 = time.perf_counter()
    first = evaluate(wl, limit=2)
    first_s = time.perf_counter() - t0
    if first_only:
        return {"first_call_s": round(first_s, 3)}
    where = str(Path(workloads.__file__).resolve().parent.parent)
    t0 = time.perf_counter()
    second = evaluate(wl, limit=2)
    second_s = time.perf_counter() - t0
    assert first == second
    weights = {layer.name: layer.weights for layer in wl}
    path = model_path(name)
    rows = []
    for n in batches:
        evaluate(wl, limit=n)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = evaluate(wl, limit=n)
            times.append(time.perf_counter() - t0)
        images = _images(name, n)
        tflite_scores(path, images, weights_override=weights)  # warm-up
        ops = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            tflite_scores(path, images, weights_override=weights)
            ops.append(time.perf_counter() - t0)
        rows.append({"batch": n, "evaluate_ms": round(statistics.median(times) / n * 1e3, 3),
                     "ops_ms": round(statistics.median(ops) / n * 1e3, 3), "top1": result["top1"],
                     "evaluate_runs_s": [round(t, 4) for t in times], "ops_runs_s": [round(t, 4) for t in ops]})
    return {"checkout": where, "first_call_s": round(first_s, 3), "second_call_s": round(second_s, 3), "rows": rows,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _child(name: str, args, cache: str, first_only: bool = False) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    if args.blas_threads:
        env["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    env.setdefault("PYTHONPATH", str(REPO))
    env.setdefault("BITSERIAL_DATA", str(SHARED / "workloads"))
    env.setdefault("BITSERIAL_DATASETS", str(SHARED / "datasets"))
    cmd = [sys.executable, __file__, "--child", name, "--repeats", str(args.repeats),
           "--batches", f"{name}=" + ",".join(map(str, args.batch_sizes[name]))]
    if first_only:
        cmd.append("--first-only")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        print(out.stderr, file=sys.stderr)
        raise SystemExit(1)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", action="append", default=[], metavar="MODEL=N,N,...",
                        help="batch sizes of a model (default: " + "; ".join(
                            f"{k}={','.join(map(str, v))}" for k, v in BATCHES.items()) + ")")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="bench_evaluate.json", help="where to write the JSON results")
    parser.add_argument("--label", default="", help="a name for this run in the JSON (e.g. base / branch)")
    parser.add_argument("--blas-threads", type=int, help="OPENBLAS_NUM_THREADS of the children (default: as set)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--first-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch_sizes = {k: list(v) for k, v in BATCHES.items()}
    for item in args.batches:
        model, _, sizes = item.partition("=")
        args.batch_sizes[model] = [int(v) for v in sizes.split(",")]
    if args.child:
        print(json.dumps(measure(args.child, args.batch_sizes.get(args.child, [1]), args.repeats,
                                 args.first_only)))
        return 0

    results = []
    for name in args.models.split(","):
        args.batch_sizes.setdefault(name, [1])
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as cache:
            res = _child(name, args, cache)
            res["cached_first_call_s"] = _child(name, args, cache, first_only=True)["first_call_s"]
        results.append({"model": name, **res, "load_before": round(load, 2),
                        "load_after": round(os.getloadavg()[0], 2)})
        print(f"  {name} done ({res['checkout']})", file=sys.stderr)
    header = f"{'model':<30}{'batch':>6}{'evaluate ms/img':>17}{'ops ms/img':>12}{'top-1':>8}"
    print(header)
    print("-" * len(header))
    for res in results:
        for row in res["rows"]:
            print(f"{res['model']:<30}{row['batch']:>6}{row['evaluate_ms']:>17.2f}{row['ops_ms']:>12.2f}"
                  f"{row['top1']:>8.3f}")
    print()
    header = f"{'model':<30}{'first call s':>14}{'second call s':>15}{'cached first s':>16}{'peak RSS MB':>13}" \
             f"{'load avg':>12}"
    print(header)
    print("-" * len(header))
    for res in results:
        print(f"{res['model']:<30}{res['first_call_s']:>14.2f}{res['second_call_s']:>15.2f}"
              f"{res['cached_first_call_s']:>16.2f}{res['peak_rss_mb']:>13.0f}"
              f"{res['load_before']:>6.1f}-{res['load_after']:<5.1f}")
    import numpy

    Path(args.json).write_text(json.dumps({
        "label": args.label, "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                         "numpy": numpy.__version__},
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS") if not args.blas_threads else args.blas_threads,
        "repeats": args.repeats, "results": results}, indent=2))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
