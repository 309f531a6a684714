"""The ``bitserial`` command line: parsing and printing over the public API (only this module prints).

    bitserial [--data-dir DIR] simulate ARCH [ARCH ...] --workload W [--out FILE.csv] [--baseline ARCH] [--set k=v ...]
                                        [--set-all k=v ...]
    bitserial compare ARCH [ARCH ...] --workload W [--baseline ARCH] [--set k=v ...] [--set-all k=v ...]
    bitserial list [DESIGN | PRESET]
    bitserial demo [--out DIR] [--workload W]
    bitserial stats W [--out DIR]
    bitserial import MODEL_FILE --out W.npz [--images N] [--image PATH ...] [--arch resnet20|resnet56]
    bitserial prune METHOD --workload W --out PRUNED.npz [--set k=v ...] [--evaluate N] [--arch PRESET ...]

A workload W is a .npz file (Workload.save), a synthetic network (alexnet, ...) or a built-in real workload
(resnet8-cifar10-int8, ...; see ``bitserial list``), imported on first use and cached.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from workloads import Workload, WorkloadError, importers, registry, synthetic
from workloads.atomic import atomic_write

from .config import ArchConfig, ConfigError, Design, load_arch, parse_knob_value, preset_names
from .designs import MODELS
from .engine import simulate
from .knobs import TECHNOLOGY, plain
from .plan import LayerTooLargeError, check_layer
from .progress import CompileWatch, ProgressBar
from .report import (
    WIDTH,
    describe_workload,
    fmt,
    format_table,
    indent,
    knob_table,
    layer_rows,
    long_table,
    plot_bit_sparsity,
    plot_speedup,
    preset_description,
    stats_rows,
)
from .results import Results, package_version, write_table

PROG = "bitserial"
DEMO_BASELINE = "dadiannao"
DEMO_WORKLOAD = "resnet8-cifar10-int8"  # the bundled real model, when the TFLite importer is available
DEMO_FALLBACK = "alexnet"
CIFAR_ARCHS = {"resnet20": 20, "resnet56": 56}
SET_ALL_HELP = ("override a knob on every listed ARCH and on the baseline (repeatable): the technology and memory a "
                "fair comparison keeps equal, e.g. --set-all buffer_memory=edram --set-all tech_node_nm=65")


class CliError(ValueError):
    """A command-line request that cannot be carried out (reported as one ``bitserial: error:`` line)."""


# ----------------------------------------------------------------------------- helpers
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid positive integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid non-negative integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def assignments(items: Sequence[str], parse: Callable[[str, str], Any], what: str = "knob") -> dict[str, Any]:
    """``--set`` items ``name=value`` -> {name: parse(name, value)}; a name given twice is an error."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--set {item!r}: expected {what}=value")
        if name in out:
            raise CliError(f"--set {name} is given twice ({out[name]!r} and {text.strip()!r})")
        out[name] = parse(name, text.strip())
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["columns=1", "run_ahead=2"]`` -> ``{"columns": 1, "run_ahead": 2}`` (values typed by parse_knob_value)."""
    return assignments(items, parse_knob_value)


def arch_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(knobs of the listed ARCHs, knobs of the baseline): ``--set-all`` goes to both (technology, buffers, DRAM:
    what a fair comparison keeps equal), ``--set`` to the listed ARCHs only; a knob in both is an error."""
    common = parse_overrides(args.set_all or [])
    mine = parse_overrides(args.set or [])
    both = sorted(set(common) & set(mine))
    if both:
        raise CliError(f"--set and --set-all both give {', '.join(both)}")
    return {**common, **mine}, common


def unfair_overrides(overrides: dict[str, Any], baseline: ArchConfig) -> str:
    """A note naming the ``--set`` knobs of TECHNOLOGY (what a comparison keeps equal) that leave the baseline at
    another value ('' if none)."""
    odd = [k.name for k in TECHNOLOGY if k.name in overrides and getattr(baseline, k.name) != overrides[k.name]]
    if not odd:
        return ""
    mine = ", ".join(f"{k}={plain(overrides[k])}" for k in odd)
    theirs = ", ".join(f"{k}={plain(getattr(baseline, k))}" for k in odd)
    return f"note: --set {mine} leaves the baseline {baseline.name} at {theirs}; --set-all sets both"


def load_workload(spec: str, *, seed: int | None = None, layers: int | None = None, images: int = 1,
                  data_dir: str | None = None, precision: str | None = None) -> Workload:
    """A workload file written by Workload.save, a built-in synthetic network built with ``seed``, or a built-in
    real workload (workloads.load_builtin) on its first ``images`` images."""
    path = Path(spec)
    if precision is not None and (path.is_file() or spec not in registry.builtin_names()):
        raise CliError("--precision applies only to a built-in real workload (resnet20-cifar10, resnet56-cifar10)")
    if images != 1 and (path.is_file() or spec not in registry.builtin_names()):
        raise CliError(f"--images applies only to a built-in real workload ({', '.join(registry.builtin_names())}); "
                       f"{spec!r} has its own inputs")
    if not path.is_file() and spec in synthetic.names():
        return synthetic.build(spec, seed=0 if seed is None else seed, max_layers=layers)
    if not path.is_file() and spec in registry.builtin_names():
        if seed is not None:
            raise CliError("--seed applies only to the built-in synthetic workloads, not to a real workload")
        workload = registry.load_builtin(spec, images=images, data_dir=data_dir, precision=precision)
        return _first_layers(workload, layers)
    if path.is_file() and path.suffix.lower() in importers.SUFFIXES:
        raise CliError(f"{path} is a model file ({importers.importer_for(path).description}), not a workload: "
                       f"import it first with `{PROG} import {shlex.quote(spec)} --out W.npz`")
    if path.is_file() or path.suffix == ".npz" or os.sep in spec or "/" in spec:
        if seed is not None:
            raise CliError("--seed applies only to the built-in synthetic workloads, not to a workload file")
        return _first_layers(Workload.load(path), layers)
    raise CliError(f"unknown workload {spec!r}: no such file, and not a built-in network "
                   f"({', '.join(synthetic.names())}) or real workload ({', '.join(registry.builtin_names())})")


def _first_layers(workload: Workload, layers: int | None) -> Workload:
    if layers is not None and layers < len(workload):
        return Workload(workload.name, workload.layers[:layers], {**workload.meta, "max_layers": layers})
    return workload


def _add_arch(archs: list[ArchConfig], arch: ArchConfig, hint: str = "") -> ArchConfig:
    """Append ``arch`` unless an identical one is there; two different configs may not share a name."""
    for other in archs:
        if other.name == arch.name:
            if other == arch:
                return other
            raise CliError(f"two different architectures are named {arch.name!r}{hint}; give them distinct names")
    archs.append(arch)
    return arch


def run_all(archs: Sequence[ArchConfig], workload: Workload, stream: TextIO | None = None) -> list[Results]:
    """Simulate every arch on ``workload`` with one progress display over all of them; say how long numba took to
    compile kernels, if it had to."""
    stream = stream if stream is not None else sys.stderr
    with CompileWatch() as watch, ProgressBar(len(archs) * len(workload), stream, watch=watch) as bar:
        results = [simulate(arch, workload, progress=bar.callback(arch.name)) for arch in archs]
    if watch.count:
        stream.write(f"{PROG}: note: numba compiled {watch.count} kernel(s) in {watch.seconds:.1f} s (first run "
                     f"of these designs; cached for later runs)\n")
    return results


def check_output(path: str | os.PathLike, what: str = "--out") -> Path:
    """Fail before any work if ``path`` cannot be written: a folder in its place, or a folder that cannot be made or
    written into (tried by creating it and a temporary file in it)."""
    path = Path(path)
    if path.is_dir():
        raise CliError(f"{what} {path}: is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise CliError(f"{what} {path}: cannot write into {path.parent} ({exc.strerror or exc})") from None
    return path


# ----------------------------------------------------------------------------- commands
def _write_table(table, path: str | os.PathLike, results: list[Results], extra: dict) -> tuple[Path, Path]:
    """write_table, with a write failure reported against ``path`` (not write_table's temporary file)."""
    try:
        return write_table(table, path, results, extra)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_simulate(args: argparse.Namespace, command: str) -> int:
    overrides, common = arch_overrides(args)
    archs: list[ArchConfig] = []
    for spec in args.arch:
        _add_arch(archs, load_arch(spec, **overrides))
    baseline_arch = None
    if args.baseline is not None:
        baseline_arch = load_arch(args.baseline, **common)
        hint = " (--set applies to the listed ARCHs, not to --baseline; --set-all to both)" if args.set else ""
        listed = any(a.name == baseline_arch.name for a in archs)
        baseline_arch = _add_arch(archs, baseline_arch, hint)
        if not listed:  # show the baseline first
            archs.insert(0, archs.pop())
    if args.out:
        check_output(args.out)
    workload = load_workload(args.workload, seed=args.seed, layers=args.layers, images=args.images,
                             precision=args.precision, data_dir=args.data_dir)
    results = run_all(archs, workload)
    baseline = next((r for r in results if baseline_arch and r.arch.name == baseline_arch.name), None)

    print(f"workload: {describe_workload(workload)}")
    if baseline is not None:
        print(f"speedup = {baseline.arch.name} cycles / arch cycles")
        if note := unfair_overrides(overrides, baseline.arch):
            print(note)
    print(format_table(*layer_rows(results, baseline)))
    if args.out:
        path, run = _write_table(long_table(results, baseline), args.out, results,
                                 {"command": command, "workload_source": args.workload,
                                  "baseline": baseline.arch.name if baseline else None, "overrides": overrides,
                                  "baseline_overrides": common})
        print(f"wrote {path} and {run}")
    return 0


def cmd_compare(args: argparse.Namespace, command: str) -> int:
    from .compare import compare

    overrides, common = arch_overrides(args)
    archs = [load_arch(spec, **overrides) for spec in args.arch]
    baseline = load_arch(args.baseline, **common)
    if args.out:
        check_output(args.out)
    workload = load_workload(args.workload, seed=args.seed, layers=args.layers, images=args.images,
                             precision=args.precision, data_dir=args.data_dir)
    results = run_all([baseline, *[a for a in archs if a != baseline]], workload)
    iso = None if args.iso_area == "none" else args.iso_area
    table = compare(archs, workload, baseline, iso_area=iso, accuracy_images=args.accuracy, results=results)
    print(f"workload: {describe_workload(workload)}")
    print(f"baseline: {baseline.name}; time and energy at each design's clock and node; iso-area: PE array "
          f"re-sized\nalong {iso or '-'} to the baseline's PE-array area")
    if note := unfair_overrides(overrides, baseline):
        print(note)
    shown = ["arch", "cycles", "time_us", "energy_uj", "area_mm2", "speedup_cycles", "speedup_time",
             "energy_efficiency", "perf_per_area", "speedup_iso_area", "lossless", "top1"]
    print(format_table(shown, [[fmt(v, 2) for v in row] for row in table[shown].itertuples(index=False)]))
    lossy = table.loc[~table["lossless"], "arch"].tolist()
    if lossy and not args.accuracy:
        print(f"note: {', '.join(lossy)} multiply other weights than the workload's (lossless false); add --accuracy N "
              "to score them with evaluate")
    if args.out:
        path, run = _write_table(table, args.out, results, {"command": command, "workload_source": args.workload,
                                                            "baseline": baseline.name, "overrides": overrides,
                                                            "baseline_overrides": common})
        print(f"wrote {path} and {run}")
    if args.plots:
        from .report import plot_area_breakdown, plot_energy_breakdown, plot_speedup_vs_efficiency

        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        title = f"{workload.name}"
        shown_results = [r for r in results if r.arch.name in set(table["arch"])]
        written = [plot_energy_breakdown(shown_results, f"energy per inference, {title}", folder / "energy.png"),
                   plot_area_breakdown([r.arch for r in shown_results], "PE-array area", folder / "area.png"),
                   plot_speedup_vs_efficiency(table, f"speedup vs energy efficiency, {title}",
                                              folder / "speedup_vs_energy.png")]
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_list(args: argparse.Namespace, command: str) -> int:
    if args.what:
        return _list_knobs(args.what)
    rows = []
    for name in preset_names():
        try:
            design = str(load_arch(name).design)
        except ConfigError as exc:
            design = f"(invalid: {exc})"
        rows.append([name, design, preset_description(name)])
    print("Presets (ARCH names; a YAML file path works too; `bitserial list NAME` shows a design's knobs):")
    print(indent(format_table(["name", "design", "description"], rows, left=3, width=WIDTH - 2)))
    print()
    print("Knobs every design has (set them in a YAML file, or with --set knob=value):")
    print(indent(knob_table(width=WIDTH - 2)))
    print()
    print("Designs and their own knobs (`bitserial list DESIGN` for values, defaults and meanings):")
    design_rows = [[d.value, ", ".join(k.name for k in MODELS[d].knobs)] for d in Design]
    print(indent(format_table(["design", "knobs"], design_rows, width=WIDTH - 2)))
    print()
    print("Built-in workloads (synthetic, seeded; or pass a .npz workload file):")
    wl_rows = [[n, len(synthetic.network_shapes(n))] for n in synthetic.names()]
    print(indent(format_table(["name", "layers"], wl_rows, left=1)))
    print()
    print("Built-in real workloads (trained models on real inputs; imported on first use, then cached):")
    real_rows, missing = [], []
    for name in registry.builtin_names():
        entry = registry.BUILTINS[name]
        ok, why = registry.available(name, args.data_dir)
        real_rows.append([name, Path(entry.model).name, "yes" if ok else "no", entry.images])
        if not ok:
            missing.append(f"{name}: {why}")
    print(indent(format_table(["name", "model", "available", "inputs"], real_rows, left=4, width=WIDTH - 2)))
    for line in missing:  # why a workload is unavailable, and the command that makes it available
        print(indent(textwrap.fill(line, WIDTH - 2, subsequent_indent="    ", break_on_hyphens=False,
                                   break_long_words=False)))
    return 0


def _list_knobs(what: str) -> int:
    """``bitserial list DESIGN`` (its knobs and defaults) or ``bitserial list PRESET`` (its knobs and values)."""
    if what in {d.value for d in Design}:
        arch, title = None, f"Design {what}: knobs (defaults fill what a YAML file leaves out)"
        design = Design(what)
    else:
        arch = load_arch(what)
        design = arch.design
        description = preset_description(what) if arch.name == what else ""
        title = f"Preset {arch.name} (design {design}){': ' + description if description else ''}"
    print(title)
    print(indent(knob_table(design, arch, width=WIDTH - 2)))
    return 0


def cmd_demo(args: argparse.Namespace, command: str) -> int:
    presets = [p for p in preset_names() if not p.startswith("dnnsim_")]  # DNNsim's twins: `bitserial list`
    if DEMO_BASELINE not in presets:
        raise CliError(f"the demo needs the {DEMO_BASELINE!r} preset; presets found: {', '.join(presets) or 'none'}")
    archs = [load_arch(name) for name in presets]
    spec = args.workload
    if spec is None:
        spec = default_demo_workload(args.data_dir)
    out = Path(args.out)
    check_output(out / "demo.csv")
    workload = load_workload(spec, images=args.images, data_dir=args.data_dir, precision=args.precision)
    archs = [a for a in archs if a.name == DEMO_BASELINE or _runs(a, workload)]
    results = run_all(archs, workload)
    baseline = next(r for r in results if r.arch.name == DEMO_BASELINE)
    others = [r for r in results if r is not baseline]

    print(f"workload: {describe_workload(workload)}")
    print(f"speedup over {DEMO_BASELINE} = {DEMO_BASELINE} cycles / design cycles "
          f"(TOTAL {DEMO_BASELINE}: {baseline.cycles} cycles)")
    print(format_table(*layer_rows(others or results, baseline, cycles=False)))
    csv, run = _write_table(long_table(results, baseline), out / "demo.csv", results,
                            {"command": command, "workload_source": spec, "baseline": DEMO_BASELINE})
    png = plot_speedup(results, baseline, f"Speedup over DaDianNao on {workload.name}", out / "speedup.png")
    print(f"wrote {csv}, {run} and {png}")
    return 0


def _runs(arch: ArchConfig, workload: Workload) -> bool:
    """Whether ``arch`` can run every layer of ``workload``; if not, say why on stderr (the demo leaves it out)."""
    try:
        for layer in workload:
            check_layer(arch, layer)
    except ConfigError as exc:
        sys.stderr.write(f"{PROG}: note: the demo leaves out {arch.name}: {exc}\n")
        return False
    return True


def default_demo_workload(data_dir: str | None = None) -> str:
    """The bundled real ResNet-8 when its importer can run here, else synthetic AlexNet (with a notice)."""
    ok, why = registry.available(DEMO_WORKLOAD, data_dir)
    if ok:
        return DEMO_WORKLOAD
    print(f"{PROG}: note: {DEMO_WORKLOAD} unavailable ({why}); using the synthetic {DEMO_FALLBACK}",
          file=sys.stderr)
    return DEMO_FALLBACK


def cmd_stats(args: argparse.Namespace, command: str) -> int:
    from .stats import stats_table

    out = Path(args.out)
    check_output(out / "stats.csv")
    workload = load_workload(args.workload, layers=args.layers, images=args.images, data_dir=args.data_dir,
                             precision=args.precision)
    with CompileWatch() as watch, ProgressBar(len(preset_names()) * len(workload), watch=watch) as bar:
        table, totals, skipped = stats_table(workload, progress=bar.callback)
    print(f"workload: {describe_workload(workload)}")
    print("a_/w_ = activations / weights: zero = fraction of zeros; bin, booth = mean essential bits (one bits; "
          "Booth terms); grp = mean Dynamic Stripes precision over groups of 16 channels")
    print(f"design columns: ideal speedup = {DEMO_BASELINE} ideal_cycles / design ideal_cycles "
          "(TOTAL: whole workload; activation columns: MAC-weighted means)")
    print(format_table(*stats_rows(table, totals, DEMO_BASELINE)))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    csv = out / "stats.csv"
    try:
        write_table(table, csv, [], {"command": command, "workload_source": args.workload,
                                     "workload_digest": workload.digest()})
        png = plot_bit_sparsity(workload, out / "bit_sparsity.png")
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc.strerror or exc}") from None
    print(f"wrote {csv}, {csv.with_suffix('.run.json')} and {png}")
    return 0


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["target=0.85", "rates=[0.7,0.9]"]`` -> typed values (YAML scalars and lists), for a pruning method."""
    import yaml

    def parse(_name: str, text: str) -> Any:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text

    return assignments(items, parse, "parameter")


def _accuracy_subset(workload: Workload) -> str:
    """Where pruned workloads are scored: the CIFAR-10 copy's holdout half (retraining never sees it), or all."""
    name = workload.meta.get("builtin")
    entry = registry.BUILTINS.get(name) if isinstance(name, str) else None
    if entry is None or entry.image_set not in ("cifar10", "imagenet"):
        raise CliError(f"--evaluate needs a built-in real workload with a labelled set (resnet20-cifar10, ...); "
                       f"{workload.name!r} has none")
    return "holdout" if entry.image_set == "cifar10" else "all"


def cmd_prune(args: argparse.Namespace, command: str) -> int:
    import pruning
    from workloads import evaluate

    method = args.method
    if method not in pruning.METHODS and method != "pareto":
        raise CliError(f"unknown pruning method {method!r}; methods: {', '.join([*pruning.METHODS, 'pareto'])}")
    params = parse_params(args.set or [])
    out = check_output(args.out if str(args.out).endswith(".npz") else f"{args.out}.npz")
    archs: list[ArchConfig] = []
    for spec in args.arch or []:
        _add_arch(archs, load_arch(spec))
    if method == "pareto" and (not archs or not args.evaluate):
        raise CliError("pareto measures cycles and accuracy: give --arch PRESET (its cycles are searched) and "
                       "--evaluate N (images scored per point)")
    workload = load_workload(args.workload, images=args.images, data_dir=args.data_dir, precision=args.precision)
    subset = _accuracy_subset(workload) if args.evaluate else None
    layers = args.layers.split(",") if args.layers else None
    with CompileWatch() as watch, ProgressBar(1, watch=watch, unit="steps") as bar:
        if method == "pareto":
            from .engine import simulate_layer

            search = "train" if subset == "holdout" else "all"  # never the images the result is scored on
            result = pruning.pareto(
                workload, layer_cycles=lambda layer: simulate_layer(archs[0], layer)["cycles"],
                accuracy=lambda w: evaluate(w, subset=search, limit=args.evaluate, data_dir=args.data_dir)["top1"],
                layers=layers, seed=args.seed, progress=bar.steps(), **params)
        else:
            extra = {"progress": bar.steps(), "data_dir": args.data_dir} if pruning.METHODS[method].needs_torch else {}
            result = pruning.prune(workload, method, layers=layers, seed=args.seed, **extra, **params)
        accuracy = {}
        if args.evaluate:
            for label, wl in (("before", workload), ("after", result.workload)):
                accuracy[label] = evaluate(wl, limit=args.evaluate, subset=subset, data_dir=args.data_dir)
        before = [simulate(a, workload) for a in archs]
        after = [simulate(a, result.workload) for a in archs]
    path = result.workload.save(out)
    csv = out.with_suffix(".csv")
    totals_before = pruning.prune(workload, "magnitude", sparsity=0.0, layers=layers).totals()
    totals = result.totals()
    speedups = {a.name: b.cycles / c.cycles if c.cycles else float("inf")
                for a, b, c in zip(archs, before, after, strict=True)}
    run_extra = {"command": command, "workload_source": args.workload, "method": method,
                 "params": {k: v for k, v in result.params.items() if k not in ("history",)},
                 "workload_digest": workload.digest(), "pruned_digest": result.workload.digest(),
                 "totals_before": totals_before, "totals_after": totals,
                 "accuracy": {k: {**v, "subset": subset} for k, v in accuracy.items()},
                 "cycles": {a.name: {"before": b.cycles, "after": c.cycles} for a, b, c in zip(archs, before, after,
                                                                                               strict=True)}}
    if "history" in result.params:
        run_extra["training"] = result.params["history"]
    _, run = _write_table(result.report, csv, after, run_extra)
    if isinstance(result, pruning.ParetoResult):
        frontier = out.with_name(out.stem + ".frontier.csv")
        _write_table(result.frontier, frontier, after, {"command": command, "of": path.name})

    print(f"workload: {describe_workload(workload)}")
    shown = {k: v for k, v in result.params.items() if k not in ("history", "rates")}
    print(f"method: {method}  " + "  ".join(f"{k}={v}" for k, v in shown.items()))
    rows = [["density", f"{totals_before['density']:.3f}", f"{totals['density']:.3f}"],
            ["bit sparsity (sign-magnitude)", f"{totals_before['bit_sparsity']:.3f}", f"{totals['bit_sparsity']:.3f}"],
            ["mean terms per weight", f"{totals_before['mean_terms']:.3f}", f"{totals['mean_terms']:.3f}"],
            ["relative weight error", "", f"{totals['rel_error']:.3f}"]]
    for label in ("top1", "top5"):
        if accuracy:
            n = accuracy["after"]["n"]
            rows.append([f"{label} ({subset}, {n} images)", f"{100 * accuracy['before'][label]:.2f} %",
                         f"{100 * accuracy['after'][label]:.2f} %"])
    for a, b, c in zip(archs, before, after, strict=True):
        rows.append([f"cycles: {a.name}", str(b.cycles), f"{c.cycles}  ({speedups[a.name]:.2f}x)"])
    print(format_table(["", "before", "after"], rows, left=1))
    if subset == "holdout":
        print("accuracy: the CIFAR-10 test copy's holdout half (retraining uses the other half, 500 images per class)")
    print(f"wrote {path}, {csv} and {run}")
    return 0


def _image_paths(args: argparse.Namespace, kind: str) -> list[Path]:
    """--image files, or the first --images foolbox images of ``kind`` ("cifar10" | "imagenet")."""
    if args.image:
        for p in args.image:
            if not Path(p).is_file():
                raise CliError(f"{p}: no such image file")
        return [Path(p) for p in args.image]
    files = registry.foolbox_files(kind, args.data_dir)
    if len(files) < args.images:
        raise CliError(f"{args.images} {kind} image(s) needed but {len(files)} found; pass --image PATH "
                       f"or --data-dir DIR (the folder holding {registry.IMAGES_DIR}/)")
    return files[:args.images]


def cmd_import(args: argparse.Namespace, command: str) -> int:
    from workloads.importers import IMPORTERS, import_model_file, importer_for, model_input

    model = Path(args.model)
    if not model.is_file():
        raise CliError(f"{model}: no such model file")
    checkpoint = IMPORTERS["pytorch"].suffixes
    if args.arch is not None and model.suffix.lower() not in checkpoint:
        raise CliError(f"--arch applies only to a CIFAR ResNet checkpoint ({', '.join(checkpoint)})")
    importer = importer_for(model)  # by suffix, from the one table of importers
    if importer.name == "pytorch" and args.arch is None:
        raise CliError(f"{model}: a PyTorch checkpoint needs --arch ({' | '.join(CIFAR_ARCHS)})")
    inputs = model_input(model)
    workload = import_model_file(model, _image_paths(args, inputs.image_set), name=args.name or model.stem,
                                 bits=args.bits, arch=args.arch)
    path = workload.save(args.out)
    print(f"imported {describe_workload(workload)}, {workload.macs} MACs")
    print(f"wrote {path}")
    return 0


def cmd_sweep(args: argparse.Namespace, command: str) -> int:
    """Run (or resume) a sweep file into a store folder; ``--status`` only counts."""
    from .executors import DaskExecutor, LocalExecutor
    from .sweep import PointStore, expand, run_sweep

    data_dir = getattr(args, "data_dir", None)
    points = expand(args.sweep, data_dir=data_dir)
    store = PointStore(args.out)
    if args.status:
        counts = store.status(points)
        print(f"{len(points)} points: {counts['done']} done, {counts['pending']} pending, {counts['failed']} failed")
        errors = store.errors()
        for row in errors[errors["key"].isin({p.key for p in points})].itertuples():
            print(f"  failed {row.key}: {row.error}")
        return 0
    if args.scheduler or args.dask_local:
        executor = DaskExecutor(args.scheduler, local_workers=args.dask_local, data_dir=data_dir)
        where = args.scheduler or f"a local Dask cluster of {args.dask_local} workers"
    else:
        executor = LocalExecutor(args.jobs, data_dir=data_dir)
        where = f"{executor.jobs} local worker process(es)"
    with atomic_write(store.root / "sweep.yaml") as fh:  # the file this store was run from (provenance)
        fh.write(Path(args.sweep).read_bytes())
    todo = sum(not store.done(p.key) for p in points)
    print(f"{len(points)} points, {len(points) - todo} already done; running {todo} on {where}", file=sys.stderr)
    start = time.monotonic()
    with ProgressBar(len(points), sys.stderr, unit="points") as bar:
        first = {}

        def progress(finished: int, total: int, figures: dict) -> None:
            first.setdefault("n", finished)
            ran = finished - first["n"]
            rate = ran / max(time.monotonic() - start, 1e-9)
            eta = {"ETA s": round((total - finished) / rate)} if rate else {}
            pruned = {k: v for k, v in figures.items() if k == "pruned workloads"}
            bar.steps()("sweep", finished, total, {**pruned, "points/s": rate, **eta, "failed": figures["failed"]})

        with executor:  # a Dask cluster serves the pruning phase and the points
            counts = run_sweep(points, store, executor, progress=progress)
    table = store.table(points)
    if args.table:
        out = Path(args.table)
        with atomic_write(out) as fh:
            if out.suffix == ".parquet":
                table.to_parquet(fh, index=False)
            else:
                fh.write(table.to_csv(index=False).encode())
        print(f"wrote {out} ({len(table)} rows)")
    print(f"{len(points)} points: {counts['done']} done, {counts['pending']} pending, {counts['failed']} failed "
          f"({time.monotonic() - start:.1f} s); store {store.root}")
    return 0 if counts["failed"] == 0 and counts["pending"] == 0 else 1


def cmd_plot(args: argparse.Namespace, command: str) -> int:
    """Plots of a sweep store or table (simulator.sweep_plots)."""
    from .sweep_plots import plot_sweep, read_table

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    _, files = plot_sweep(read_table(args.source), args.kind, args.out, baseline=args.baseline, knob=args.knob,
                          formats=formats)
    for path in files:
        print(f"wrote {path}")
    return 0


REPRODUCE_DIR = Path(__file__).resolve().parent.parent / "scripts" / "reproduce"


def reproductions() -> list[str]:
    """The papers ``bitserial reproduce`` knows: ``scripts/reproduce/<paper>.py`` of the source tree."""
    return sorted(p.stem for p in REPRODUCE_DIR.glob("*.py") if not p.stem.startswith("_"))


def cmd_reproduce(args: argparse.Namespace, command: str) -> int:
    """Run ``scripts/reproduce/<paper>.py`` (its sweep, then our figures beside the published ones)."""
    import runpy

    papers = reproductions()
    if not papers:
        raise CliError(f"no reproductions found in {REPRODUCE_DIR} (they live in the source tree: install the "
                       f"project from a clone with pip install -e .)")
    if args.paper not in papers:
        raise CliError(f"unknown paper {args.paper!r}; reproductions: {', '.join(papers)}")
    script = REPRODUCE_DIR / f"{args.paper}.py"
    argv = [str(script), *(["--jobs", str(args.jobs)] if args.jobs else []),
            *(["--out", args.out] if args.out else []), *(["--json", args.json] if args.json else [])]
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv, sys.path[:0] = argv, [str(REPRODUCE_DIR)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
    return 0


# ----------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Cycle-accurate simulator of bit-serial DNN accelerators.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    data_help = ("folder of the real models' files (default: $BITSERIAL_DATA, then ../shared/workloads next to "
                 "the repository)")
    parser.add_argument("--data-dir", metavar="DIR", default=None, help=data_help)
    common = argparse.ArgumentParser(add_help=False)  # the same option after the command
    common.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS, help=data_help)
    images = argparse.ArgumentParser(add_help=False)
    images.add_argument("--precision", choices=registry.PYTORCH_PRECISIONS, default=None,
                        help="quantization of a built-in PyTorch model (resnet20/56-cifar10): profile (default: the "
                             "per-layer Stripes-style profile), dfp16, dfp8, int8_per_channel")
    images.add_argument("--images", type=_positive_int, default=1, metavar="N",
                        help="inputs (images) of a built-in real workload (default 1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser("simulate", parents=[common, images],
                         help="simulate architectures on a workload, print per-layer cycles",
                         description="Simulate one or more architectures on a workload; print a per-layer table.")
    sim.add_argument("arch", nargs="+", metavar="ARCH", help="a preset name (see `bitserial list`) or a YAML file")
    sim.add_argument("--workload", "-w", required=True, metavar="W",
                     help="a workload .npz file (Workload.save), a built-in network name, e.g. alexnet, or a "
                          "built-in real workload, e.g. resnet8-cifar10-int8")
    sim.add_argument("--out", "-o", metavar="FILE.csv", help="write the per-layer table (long format) and run.json")
    sim.add_argument("--baseline", "-b", metavar="ARCH",
                     help="also simulate ARCH and add speedup = baseline cycles / arch cycles")
    sim.add_argument("--set", action="append", metavar="KNOB=VALUE",
                     help="override a knob on every listed ARCH (repeatable), e.g. --set columns=1")
    sim.add_argument("--set-all", action="append", metavar="KNOB=VALUE", help=SET_ALL_HELP)
    sim.add_argument("--seed", type=_non_negative_int, default=None,
                     help="seed of a built-in workload's random values (default 0)")
    sim.add_argument("--layers", type=_positive_int, default=None, metavar="N",
                     help="keep only the first N layers of the workload (default: all)")
    sim.set_defaults(func=cmd_simulate)

    cmp = sub.add_parser("compare", parents=[common, images],
                         help="compare architectures: speedup in cycles and time, energy efficiency, area, iso-area",
                         description="Simulate architectures and a baseline on a workload; print, per architecture, "
                                     "the speedup in cycles and in time, energy efficiency, area, performance per "
                                     "area, the speedup at equal PE-array area, and whether it is lossless.")
    cmp.add_argument("arch", nargs="+", metavar="ARCH", help="a preset name or a YAML file")
    cmp.add_argument("--workload", "-w", required=True, metavar="W", help="a workload .npz file or a built-in name")
    cmp.add_argument("--baseline", "-b", default="dadiannao", metavar="ARCH", help="default: dadiannao")
    cmp.add_argument("--iso-area", choices=["columns", "tiles", "rows", "none"], default="columns",
                     help="knob re-sized to match the baseline's compute area (default: columns)")
    cmp.add_argument("--accuracy", type=_positive_int, metavar="N",
                     help="score the baseline and every lossy design on N images (built-in real workloads)")
    cmp.add_argument("--out", "-o", metavar="FILE.csv", help="write the table and its run.json")
    cmp.add_argument("--plots", metavar="DIR", help="write energy.png, area.png and speedup_vs_energy.png to DIR")
    cmp.add_argument("--set", action="append", metavar="KNOB=VALUE", help="override a knob on every listed ARCH")
    cmp.add_argument("--set-all", action="append", metavar="KNOB=VALUE", help=SET_ALL_HELP)
    cmp.add_argument("--seed", type=_non_negative_int, default=None, help="seed of a built-in workload's values")
    cmp.add_argument("--layers", type=_positive_int, default=None, metavar="N", help="keep only the first N layers")
    cmp.set_defaults(func=cmd_compare)

    lst = sub.add_parser("list", parents=[common], help="list presets, knobs and built-in workloads",
                         description="List the architecture presets, the machine knobs and the built-in workloads; "
                                     "with a design or preset name, its knobs (values, default, meaning).")
    lst.add_argument("what", nargs="?", metavar="DESIGN|PRESET", help="a design or preset whose knobs to list")
    lst.set_defaults(func=cmd_list)

    demo = sub.add_parser("demo", parents=[common, images],
                          help="every preset on a real ResNet-8: speedup table, CSV and bar chart",
                          description=f"Simulate every preset on a workload (default: {DEMO_WORKLOAD}, the bundled "
                                      f"int8 MLPerf Tiny ResNet-8 on a CIFAR-10 test image; synthetic "
                                      f"{DEMO_FALLBACK} where the TFLite importer is unavailable); "
                                      f"print the speedup over {DEMO_BASELINE}, write demo.csv, run.json and "
                                      "speedup.png.")
    demo.add_argument("--out", "-o", default="demo_out", metavar="DIR", help="output folder (default: ./demo_out)")
    demo.add_argument("--workload", "-w", default=None, metavar="W",
                      help=f"a workload .npz file or a built-in network name (default: {DEMO_WORKLOAD})")
    demo.set_defaults(func=cmd_demo)

    st = sub.add_parser("stats", parents=[common, images], help="per-layer value statistics and ideal speedups",
                        description="Per layer: zero fraction, mean essential bits (binary, Booth) and mean dynamic "
                                    "group precision of activations and weights, and the ideal speedup of every "
                                    f"preset over {DEMO_BASELINE}; prints a table, writes stats.csv and "
                                    "bit_sparsity.png.")
    st.add_argument("workload", metavar="W", help="a workload .npz file, a built-in network or real workload name")
    st.add_argument("--out", "-o", default="stats_out", metavar="DIR", help="output folder (default: ./stats_out)")
    st.add_argument("--layers", type=_positive_int, default=None, metavar="N",
                    help="keep only the first N layers of the workload (default: all)")
    st.set_defaults(func=cmd_stats)

    pr = sub.add_parser("prune", parents=[common, images], help="prune a workload's weights; report, accuracy, speedup",
                        description="Run a pruning method (pruning.METHODS, or pareto) on a workload; write the "
                                    "pruned workload (.npz), its per-layer report (.csv) and provenance (.run.json); "
                                    "print bit sparsity, accuracy (--evaluate) and the speedup on presets (--arch).")
    pr.add_argument("method", metavar="METHOD", help="magnitude, n_of_g, bit_budget, bit_balance, swis, bitpruner, "
                                                    "retrain or pareto")
    pr.add_argument("--workload", "-w", required=True, metavar="W", help="a workload .npz file or a built-in name")
    pr.add_argument("--set", action="append", metavar="PARAM=VALUE",
                    help="a method parameter (repeatable), e.g. --set target=0.85; lists as --set rates=[0.7,0.9]")
    pr.add_argument("--out", "-o", required=True, metavar="PRUNED.npz", help="the pruned workload to write")
    pr.add_argument("--evaluate", type=_positive_int, metavar="N",
                    help="score N images before and after (CIFAR-10: the holdout half retraining never sees)")
    pr.add_argument("--arch", action="append", metavar="PRESET",
                    help="simulate before and after on this preset (repeatable); pareto searches the first")
    pr.add_argument("--layers", metavar="L1,L2", help="prune only these layers (comma-separated names)")
    pr.add_argument("--seed", type=_non_negative_int, default=0, help="seed of every random choice (default 0)")
    pr.set_defaults(func=cmd_prune)

    imp = sub.add_parser("import", parents=[common], help="import a trained model into a workload file",
                         description="Import a .tflite, .onnx or CIFAR ResNet .th checkpoint (with --arch) on real "
                                     "images into a workload file (.npz).")
    imp.add_argument("model", metavar="MODEL_FILE", help="a .tflite, .onnx or .th (PyTorch CIFAR ResNet) file")
    imp.add_argument("--out", "-o", required=True, metavar="W.npz", help="the workload file to write")
    imp.add_argument("--images", type=_positive_int, default=1, metavar="N",
                     help="use the first N foolbox test images (CIFAR-10 for 32x32 models, else ImageNet)")
    imp.add_argument("--image", action="append", metavar="PATH", help="an image file to run on (repeatable)")
    imp.add_argument("--arch", choices=list(CIFAR_ARCHS), help="the architecture of a .th checkpoint")
    imp.add_argument("--bits", type=int, choices=[8, 16], default=8,
                     help="ONNX float models: dynamic fixed point precision (default 8)")
    imp.add_argument("--name", help="the workload's name (default: the file name)")
    imp.set_defaults(func=cmd_import)

    sw = sub.add_parser("sweep", parents=[common], help="run or resume a sweep file (local processes or Dask)",
                        description="Expand a sweep file (designs x knob grids x workloads x pruning) into points and "
                                    "run the ones the store has not finished; one file per point in --out, a rerun "
                                    "resumes. Local worker processes by default; --dask-local N or --scheduler ADDR "
                                    "run the same file on Dask.")
    sw.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file (docs/sweeps.md)")
    sw.add_argument("--out", "-o", required=True, metavar="DIR", help="the store folder (created; reused to resume)")
    sw.add_argument("--status", action="store_true", help="only count done / pending / failed points")
    sw.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                    help="local worker processes (default: the machine's cores)")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--dask-local", type=_positive_int, default=None, metavar="N",
                       help="run on a local Dask cluster of N worker processes")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786", help="run on this Dask scheduler")
    sw.add_argument("--table", metavar="FILE.csv|FILE.parquet", help="write the whole results table there")
    sw.set_defaults(func=cmd_sweep)

    pl = sub.add_parser("plot", parents=[common], help="plot a sweep: speedup, energy, accuracy Pareto, a knob",
                        description="Plot a sweep store (or its --table CSV / Parquet), one figure per workload: "
                                    "speedup bars, energy (dynamic + static) bars, top-1 vs speedup Pareto curves "
                                    "per pruning method, or speedup against a grid knob.")
    pl.add_argument("source", metavar="STORE|TABLE", help="a sweep store folder, or a .csv / .parquet table")
    pl.add_argument("--kind", choices=["speedup", "energy", "pareto", "knob"], default="speedup")
    pl.add_argument("--knob", metavar="NAME", help="the grid knob of a knob plot")
    pl.add_argument("--baseline", metavar="LABEL", help="the design label speedups divide (default: dadiannao, "
                                                        "else the first)")
    pl.add_argument("--out", "-o", default="plots", metavar="DIR", help="output folder (default: ./plots)")
    pl.add_argument("--format", default="png", metavar="png,svg", help="png, svg or both (default png)")
    pl.set_defaults(func=cmd_plot)

    rp = sub.add_parser("reproduce", parents=[common], help="reproduce a paper's figures (scripts/reproduce)",
                        description="Run a paper's reproduction (scripts/reproduce/PAPER.py and .yaml): its sweep, "
                                    "then our figure beside the published one with the reason for every gap "
                                    "(docs/reproductions.md).")
    rp.add_argument("paper", metavar="PAPER", help=f"one of: {', '.join(reproductions()) or '(none found)'}")
    rp.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N", help="local worker processes")
    rp.add_argument("--out", "-o", default=None, metavar="DIR", help="the sweep store (default runs/reproduce/PAPER)")
    rp.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    rp.set_defaults(func=cmd_reproduce)
    return parser


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run the ``bitserial`` command line; returns the exit status (2 on usage or input errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help / --version (0)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    command = shlex.join([PROG, *argv])
    try:
        return args.func(args, command)
    except (ConfigError, WorkloadError, LayerTooLargeError, ValueError, OSError, ImportError) as exc:
        sys.stdout.flush()
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
