#!/usr/bin/env python
"""Speed benchmark: every preset on the AlexNet-shaped and ResNet-50 synthetic workloads.

Each preset runs twice in fresh processes sharing one new numba cache folder, as a user meets it:

- ``compile_s``: the first process starts with an empty cache; its first ``simulate`` of each workload is the JIT
  compile plus one run (the first workload pays for most of the compiling);
- ``median_s``: a second process loads the compiled kernels from that cache and times ``--repeats`` runs after a
  first one (the median; ``min_s`` too); ``peak_rss_mb`` is that process's peak memory (workloads included);
- ``energy_memory_pct`` / ``lossless_pct``: the time those runs spend on the memory and energy columns / on the
  lossless columns (the effective weights of lossy designs), as a percentage of the rest of ``simulate`` (medians).

Prints a table and writes JSON. ``--src DIR`` benchmarks the source tree at DIR instead (e.g. a checkout of an
earlier revision); ``--vs DIR`` benchmarks DIR too, preset by preset in turn with this one (so that a machine's
drift hits both alike), and adds its times and the ratios (this tree / DIR's) and checks that the cycles agree:
a before / after table.

    python scripts/bench.py [--presets a,b] [--workloads alexnet,resnet50] [--repeats 5] [--json out.json]
                            [--src DIR] [--vs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_S = {"alexnet": 0.25, "resnet50": 2.0}
REPO = Path(__file__).resolve().parent.parent


def measure(preset: str, workloads: list[str], repeats: int, warm: bool) -> list[dict]:
    """Runs inside a child process: the first run of every workload (compile or cache load), then, if ``warm``,
    ``repeats`` timed runs."""
    import resource
    import statistics
    import time

    from simulator import load_arch, simulate
    from simulator.config import ConfigError
    from workloads.synthetic import build

    arch = load_arch(preset)
    spent = [0.0, 0.0]  # seconds spent in the energy and memory columns, and in the lossless columns, of a run
    try:
        from simulator import engine
    except ImportError:
        engine = None

    def timed(fn, slot):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[slot] += time.perf_counter() - t0
        return wrapper

    for name, slot in (("layer_memory", 0), ("row_energy", 0), ("_fidelity", 1)):  # absent in older trees
        if engine is not None and hasattr(engine, name):
            setattr(engine, name, timed(getattr(engine, name), slot))
    rows = []
    for name in workloads:
        wl = build(name, seed=0)
        wl.digest()  # hashing the inputs is part of loading, not of simulating
        t0 = time.perf_counter()
        try:
            result = simulate(arch, wl)
        except ConfigError as exc:  # e.g. an 8-bit preset on a 9-bit layer: not a speed question
            print(f"{preset} on {name}: refused ({exc})", file=sys.stderr)
            continue
        first = time.perf_counter() - t0
        row = {"preset": preset, "workload": name, "layers": len(wl), "cycles": result.cycles,
               "first_s": round(first, 3)}
        if warm:
            times, extras = [], []
            for _ in range(repeats):
                spent[:] = [0.0, 0.0]
                t0 = time.perf_counter()
                simulate(arch, wl)
                times.append(time.perf_counter() - t0)
                extras.append(tuple(spent))
            rest = [t - e - f for t, (e, f) in zip(times, extras)]
            share = [e / r for r, (e, _) in zip(rest, extras) if r > 0]
            fid = [f / r for r, (_, f) in zip(rest, extras) if r > 0]
            row.update(median_s=round(statistics.median(times), 4), min_s=round(min(times), 4), repeats=repeats,
                       energy_memory_pct=round(100 * statistics.median(share), 1) if share else None,
                       lossless_pct=round(100 * statistics.median(fid), 1) if fid else None,
                       peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        rows.append(row)
    return rows


def _child(src: Path, cache: str, preset: str, args, warm: bool) -> list[dict]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--child", preset, "--workloads", args.workloads, "--repeats", str(args.repeats)]
    out = subprocess.run([*cmd, *(["--warm"] if warm else [])], env=env, capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", help="comma-separated presets (default: all)")
    parser.add_argument("--workloads", default="alexnet,resnet50")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="bench.json", help="where to write the JSON results")
    parser.add_argument("--src", default=str(REPO), help="the source tree to benchmark (default: this one)")
    parser.add_argument("--vs", help="a second source tree (e.g. before a change), measured in turn with --src")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    if args.child:
        print(json.dumps(measure(args.child, workloads, args.repeats, args.warm)))
        return 0

    src = Path(args.src).resolve()
    sys.path.insert(0, str(src))
    from simulator import preset_names

    presets = args.presets.split(",") if args.presets else preset_names()
    other = Path(args.vs).resolve() if args.vs else None
    rows: list[dict] = []
    for preset in presets:
        try:
            mine = _measure_tree(src, preset, args)
            theirs = _measure_tree(other, preset, args) if other and _has_preset(other, preset) else None
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        for i, row in enumerate(mine):
            if theirs is not None:
                was = theirs[i]
                row.update(vs_compile_s=was["compile_s"], vs_median_s=was["median_s"], vs_cycles=was["cycles"],
                           median_ratio=round(row["median_s"] / was["median_s"], 3),
                           compile_ratio=round(row["compile_s"] / was["compile_s"], 3) if was["compile_s"] else None)
            rows.append(row)
        print(f"  {preset} done", file=sys.stderr)
    _print_table(rows, other is not None)
    Path(args.json).write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                                           "src": str(src), "vs": str(other) if other else None, "rows": rows},
                                          indent=2))
    print(f"wrote {args.json}", file=sys.stderr)
    if any(r.get("vs_cycles", r["cycles"]) != r["cycles"] for r in rows):
        print("cycles differ between the two trees (see vs_cycles)", file=sys.stderr)
        return 1
    return 0 if all(r["meets_target"] for r in rows) else 1


def _measure_tree(src: Path, preset: str, args) -> list[dict]:
    """Cold (empty numba cache) then warm rows of one preset in the source tree ``src``."""
    with tempfile.TemporaryDirectory() as cache:
        cold = _child(src, cache, preset, args, warm=False)
        warm = _child(src, cache, preset, args, warm=True)
    return [{**w, "compile_s": c["first_s"], "load_s": w.pop("first_s")} for c, w in zip(cold, warm, strict=True)]


def _has_preset(src: Path, preset: str) -> bool:
    return (src / "arch_configs" / f"{preset}.yaml").is_file()


def _print_table(rows: list[dict], versus: bool) -> None:
    base = {r["workload"]: r["cycles"] for r in rows if r["preset"] == "dadiannao"}
    heads = ["preset", "workload", "cycles", "speedup", "compile s", "median s", "target s", "energy+mem %",
             "lossless %", "peak RSS MB"]
    if versus:
        heads += ["vs compile s", "vs median s", "median ratio"]
    body = []
    for r in rows:
        r["speedup_vs_dadiannao"] = round(base[r["workload"]] / r["cycles"], 3) if r["workload"] in base else None
        r["target_s"] = TARGET_S.get(r["workload"])
        r["meets_target"] = r["target_s"] is None or r["median_s"] < r["target_s"]
        line = [r["preset"], r["workload"], str(r["cycles"]),
                f"{r['speedup_vs_dadiannao']:.2f}" if r["speedup_vs_dadiannao"] else "-", f"{r['compile_s']:.2f}",
                f"{r['median_s']:.4f}", str(r["target_s"] or "-"),
                "-" if r.get("energy_memory_pct") is None else f"{r['energy_memory_pct']:.1f}",
                "-" if r.get("lossless_pct") is None else f"{r['lossless_pct']:.1f}",
                f"{r['peak_rss_mb']:.0f}"]
        if versus:
            line += ([f"{r['vs_compile_s']:.2f}", f"{r['vs_median_s']:.4f}", f"{r['median_ratio']:.2f}"]
                     if "vs_median_s" in r else ["-", "-", "-"])
        body.append(line)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
    print("  ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(zip(heads, widths, strict=True))))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for b in body:
        print("  ".join(v.rjust(w) if i > 1 else v.ljust(w) for i, (v, w) in enumerate(zip(b, widths, strict=True))))


if __name__ == "__main__":
    raise SystemExit(main())
