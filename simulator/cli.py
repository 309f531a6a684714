"""The ``bitserial`` command line: a thin layer over load_arch / simulate / write_table (only this module prints).

    bitserial [--data-dir DIR] simulate ARCH [ARCH ...] --workload W [--out FILE.csv] [--baseline ARCH] [--set k=v ...]
    bitserial list
    bitserial demo [--out DIR] [--workload W]
    bitserial stats W [--out DIR]
    bitserial import MODEL_FILE --out W.npz [--images N] [--image PATH ...] [--arch resnet20|resnet56]

A workload W is a .npz file (Workload.save), a synthetic network (alexnet, ...) or a built-in real workload
(resnet8-cifar10-int8, ...; see ``bitserial list``), imported on first use and cached.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from workloads import Workload, WorkloadError, importers, registry, synthetic
from workloads.atomic import atomic_write

from .config import KNOB_HELP, KNOBS, ArchConfig, ConfigError, load_arch, parse_knob_value, preset_dirs, preset_names
from .engine import simulate
from .results import Results, package_version, write_table

PROG = "bitserial"
DEMO_BASELINE = "dadiannao"
DEMO_WORKLOAD = "resnet8-cifar10-int8"  # the bundled real model, when the TFLite importer is available
DEMO_FALLBACK = "alexnet"
CIFAR_ARCHS = {"resnet20": 20, "resnet56": 56}


class CliError(ValueError):
    """A command-line request that cannot be carried out (reported as one ``bitserial: error:`` line)."""


# ----------------------------------------------------------------------------- progress bar
class ProgressBar:
    """A one-line progress bar on ``stream`` fed by :func:`simulate`'s progress callbacks.

    Nothing is drawn until ``delay`` seconds have passed since the bar was created, so short runs stay silent
    (on a TTY or not); then it is redrawn as each layer starts. :meth:`finish` completes the line (only if
    something was drawn).
    """

    def __init__(self, total: int, stream: TextIO | None = None, *, delay: float = 1.0, width: int = 20,
                 clock: Callable[[], float] = time.monotonic):
        self.total = max(int(total), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self.width = width
        self.clock = clock
        self.start = clock()
        self.completed = 0  # layers finished over all runs
        self.drawn = False
        self._last_len = 0
        self._label = ""

    def callback(self, label: str) -> Callable[[int, int, str], None]:
        """The ``progress=`` callback for one simulate() run, labelled ``label`` (e.g. the arch name)."""
        offset = self.completed

        def progress(done: int, total: int, layer_name: str) -> None:
            self.completed = offset + done
            self._label = label
            self.update(layer_name)

        return progress

    def update(self, layer_name: str = "") -> None:
        if self.drawn or self.clock() - self.start >= self.delay:
            self._draw(layer_name)

    def _draw(self, layer_name: str) -> None:
        done = min(self.completed, self.total)
        filled = self.width * done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        text = f"[{bar}] {done}/{self.total} layers  {self._label}  {layer_name}".rstrip()
        pad = " " * max(0, self._last_len - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._last_len = len(text)
        self.drawn = True

    def finish(self) -> None:
        """End the bar's line (a no-op when nothing was drawn)."""
        if self.drawn:
            self._draw("")
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


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


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["columns=1", "run_ahead=2"]`` -> ``{"columns": 1, "run_ahead": 2}`` (values typed by parse_knob_value)."""
    overrides: dict[str, Any] = {}
    for item in items:
        knob, sep, text = item.partition("=")
        knob = knob.strip()
        if not sep or not knob:
            raise CliError(f"--set {item!r}: expected knob=value (knobs: {', '.join(KNOBS)})")
        overrides[knob] = parse_knob_value(knob, text.strip())
    return overrides


def load_workload(spec: str, *, seed: int | None = None, layers: int | None = None, images: int = 1,
                  data_dir: str | None = None, precision: str | None = None) -> Workload:
    """A workload file written by Workload.save, a built-in synthetic network built with ``seed``, or a built-in
    real workload (workloads.load_builtin) on its first ``images`` images."""
    path = Path(spec)
    if precision is not None and (path.is_file() or spec not in registry.builtin_names()):
        raise CliError("--precision applies only to a built-in real workload (resnet20-cifar10, resnet56-cifar10)")
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
    """Simulate every arch on ``workload`` with one progress bar over all of them."""
    bar = ProgressBar(len(archs) * len(workload), stream)
    try:
        return [simulate(arch, workload, progress=bar.callback(arch.name)) for arch in archs]
    finally:
        bar.finish()


def long_table(results: Sequence[Results], baseline: Results | None = None) -> pd.DataFrame:
    """The concatenated per-layer tables, plus ``speedup_vs_<baseline>`` = baseline cycles / cycles per layer."""
    table = pd.concat([r.layers for r in results], ignore_index=True)
    if baseline is not None:
        base = baseline.layers.set_index("layer")["cycles"]
        table[f"speedup_vs_{baseline.arch.name}"] = table["layer"].map(base) / table["cycles"]
    return table


def _speedup(base_cycles: float, cycles: float) -> float:
    return base_cycles / cycles if cycles else float("inf")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 2) -> str:
    """Plain aligned text: the first ``left`` columns left-aligned, the rest right-aligned; a rule before TOTAL."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    for row in cells[1:]:
        if row[0] == "TOTAL":
            out.append("  ".join("-" * w for w in widths))
        out.append(line(row))
    return "\n".join(out)


def layer_rows(results: Sequence[Results], baseline: Results | None, *, cycles: bool = True,
               speedup: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the per-layer table (layer, kind, cycles per arch, speedup per arch) plus TOTAL."""
    first = results[0].layers
    headers = ["layer", "kind"]
    if cycles:
        headers += [f"cycles:{r.arch.name}" for r in results]
    if baseline is not None and speedup:
        headers += [f"speedup:{r.arch.name}" for r in results]
    base = baseline.layers["cycles"].to_numpy() if baseline is not None else None
    rows: list[list[Any]] = []
    for i, (name, kind) in enumerate(zip(first["layer"], first["kind"])):
        row: list[Any] = [name, kind]
        layer_cycles = [int(r.layers["cycles"].iat[i]) for r in results]
        if cycles:
            row += layer_cycles
        if base is not None and speedup:
            row += [f"{_speedup(base[i], c):.2f}" for c in layer_cycles]
        rows.append(row)
    total: list[Any] = ["TOTAL", ""]
    if cycles:
        total += [r.cycles for r in results]
    if baseline is not None and speedup:
        total += [f"{r.speedup_over(baseline):.2f}" for r in results]
    rows.append(total)
    return headers, rows


def _describe_workload(workload: Workload) -> str:
    meta = workload.meta
    if meta.get("generator") == "synthetic":
        return f"{workload.name} (synthetic, seed {meta.get('seed')}, {_plural(len(workload), 'layer')})"
    if meta.get("builtin"):
        return (f"{workload.name} ({_plural(len(workload), 'layer')}, {Path(str(meta.get('model_file'))).name}, "
                f"{_plural(int(meta.get('images', 1)), 'input')})")
    return f"{workload.name} ({_plural(len(workload), 'layer')})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def preset_description(name: str) -> str:
    """The first comment line of preset ``name``'s YAML file (where load_arch finds it), or ""."""
    for d in preset_dirs():
        path = d / f"{name}.yaml"
        if path.is_file():
            try:
                first = path.read_text().splitlines()[:1]
            except OSError:
                return ""
            return first[0].lstrip("#").strip() if first and first[0].startswith("#") else ""
    return ""


def plot_speedup(results: Sequence[Results], baseline: Results, title: str, path: str | os.PathLike) -> Path:
    """A bar chart of every result's speedup over ``baseline``, written atomically to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    names = [r.arch.name for r in results]
    speedups = [r.speedup_over(baseline) for r in results]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names) + 1.5), 4.0))
    try:
        bars = ax.bar(names, speedups, color="tab:blue")
        ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
        ax.bar_label(bars, labels=[f"{s:.2f}x" for s in speedups], padding=2)
        ax.set_xlabel("architecture (preset)")
        ax.set_ylabel(f"speedup over {baseline.arch.name} (cycles ratio)")
        ax.set_title(title)
        ax.set_ylim(0, max(speedups) * 1.15)
        fig.tight_layout()
        with atomic_write(path) as fh:
            fig.savefig(fh, format="png", dpi=120)
    finally:
        plt.close(fig)
    return path


# ----------------------------------------------------------------------------- commands
def _write_table(table: pd.DataFrame, path: str | os.PathLike, results: list[Results], extra: dict) -> Path:
    """write_table, with a write failure reported against ``path`` (not write_table's temporary file)."""
    try:
        return write_table(table, path, results, extra)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_simulate(args: argparse.Namespace, command: str) -> int:
    overrides = parse_overrides(args.set or [])
    archs: list[ArchConfig] = []
    for spec in args.arch:
        _add_arch(archs, load_arch(spec, **overrides))
    baseline_arch = None
    if args.baseline is not None:
        baseline_arch = load_arch(args.baseline)
        hint = " (--set applies to the listed ARCHs, not to --baseline)" if overrides else ""
        listed = any(a.name == baseline_arch.name for a in archs)
        baseline_arch = _add_arch(archs, baseline_arch, hint)
        if not listed:  # show the baseline first
            archs.insert(0, archs.pop())
    workload = load_workload(args.workload, seed=args.seed, layers=args.layers, images=args.images,
                             precision=args.precision,
                             data_dir=args.data_dir)
    results = run_all(archs, workload)
    baseline = next((r for r in results if baseline_arch and r.arch.name == baseline_arch.name), None)

    print(f"workload: {_describe_workload(workload)}")
    if baseline is not None:
        print(f"speedup = {baseline.arch.name} cycles / arch cycles")
    print(format_table(*layer_rows(results, baseline)))
    if args.out:
        path = _write_table(long_table(results, baseline), args.out, results,
                           {"command": command, "workload_source": args.workload,
                            "baseline": baseline.arch.name if baseline else None, "overrides": overrides})
        print(f"wrote {path} and {path.parent / 'run.json'}")
    return 0


def cmd_list(args: argparse.Namespace, command: str) -> int:
    rows = []
    for name in preset_names():
        try:
            design = str(load_arch(name).design)
        except ConfigError as exc:
            design = f"(invalid: {exc})"
        rows.append([name, design, preset_description(name)])
    print("Presets (ARCH names; a YAML file path works too):")
    print(_indent(format_table(["name", "design", "description"], rows, left=3)))
    print()
    print("Knobs (in a YAML file, or --set knob=value):")
    print(_indent(format_table(["knob", "meaning"], [[k, KNOB_HELP.get(k, "")] for k in KNOBS])))
    print()
    print("Built-in workloads (synthetic, seeded; or pass a .npz workload file):")
    wl_rows = [[n, len(synthetic.network_shapes(n))] for n in synthetic.names()]
    print(_indent(format_table(["name", "layers"], wl_rows, left=1)))
    print()
    print("Built-in real workloads (trained models on real inputs; imported on first use, then cached):")
    real_rows = []
    for name in registry.builtin_names():
        entry = registry.BUILTINS[name]
        ok, why = registry.available(name, args.data_dir)
        real_rows.append([name, Path(entry.model).name, "yes" if ok else f"no: {why}", entry.images])
    print(_indent(format_table(["name", "model", "available", "inputs"], real_rows, left=4)))
    return 0


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def cmd_demo(args: argparse.Namespace, command: str) -> int:
    presets = preset_names()
    if DEMO_BASELINE not in presets:
        raise CliError(f"the demo needs the {DEMO_BASELINE!r} preset; presets found: {', '.join(presets) or 'none'}")
    archs = [load_arch(name) for name in presets]
    spec = args.workload
    if spec is None:
        spec = default_demo_workload(args.data_dir)
    workload = load_workload(spec, images=args.images, data_dir=args.data_dir, precision=args.precision)
    results = run_all(archs, workload)
    baseline = next(r for r in results if r.arch.name == DEMO_BASELINE)
    others = [r for r in results if r is not baseline]

    print(f"workload: {_describe_workload(workload)}")
    print(f"speedup over {DEMO_BASELINE} = {DEMO_BASELINE} cycles / design cycles "
          f"(TOTAL {DEMO_BASELINE}: {baseline.cycles} cycles)")
    print(format_table(*layer_rows(others or results, baseline, cycles=False)))
    out = Path(args.out)
    csv = _write_table(long_table(results, baseline), out / "demo.csv", results,
                      {"command": command, "workload_source": spec, "baseline": DEMO_BASELINE})
    png = plot_speedup(results, baseline, f"Speedup over DaDianNao on {workload.name}",
                       out / "speedup.png")
    print(f"wrote {csv}, {out / 'run.json'} and {png}")
    return 0


def default_demo_workload(data_dir: str | None = None) -> str:
    """The bundled real ResNet-8 when its importer can run here, else synthetic AlexNet (with a notice)."""
    ok, why = registry.available(DEMO_WORKLOAD, data_dir)
    if ok:
        return DEMO_WORKLOAD
    print(f"{PROG}: note: {DEMO_WORKLOAD} unavailable ({why}); using the synthetic {DEMO_FALLBACK}",
          file=sys.stderr)
    return DEMO_FALLBACK


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def cmd_stats(args: argparse.Namespace, command: str) -> int:
    from .stats import plot_bit_sparsity, stats_table

    workload = load_workload(args.workload, layers=args.layers, images=args.images, data_dir=args.data_dir,
                             precision=args.precision)
    bar = ProgressBar(len(preset_names()) * len(workload))
    try:
        table, totals, skipped = stats_table(workload, progress=bar.callback)
    finally:
        bar.finish()
    speed_cols = [c for c in table.columns if c.startswith("ideal_speedup:") and c != "ideal_speedup:dadiannao"]
    value_cols = ["act_zero_frac", "act_bits_binary", "act_bits_booth", "act_group_precision",
                  "weight_zero_frac", "weight_bits_binary", "weight_bits_booth", "weight_group_precision"]
    short = {"act_zero_frac": "a_zero", "act_bits_binary": "a_bin", "act_bits_booth": "a_booth",
             "act_group_precision": "a_grp", "weight_zero_frac": "w_zero", "weight_bits_binary": "w_bin",
             "weight_bits_booth": "w_booth", "weight_group_precision": "w_grp"}
    headers = ["layer", "kind", "a/w bits", *[short[c] for c in value_cols],
               *[c.split(":", 1)[1] for c in speed_cols]]
    rows = []
    for rec in table.to_dict("records"):
        rows.append([rec["layer"], rec["kind"], f"{rec['act_bits']}/{rec['weight_bits']}",
                     *[_fmt(rec[c]) for c in value_cols], *[_fmt(rec[c], 2) for c in speed_cols]])
    macs = table["macs"].to_numpy(dtype=float)
    mean = [_fmt(float((table[c] * macs).sum() / macs.sum())) if c.startswith("act") else "" for c in value_cols]
    rows.append(["TOTAL", "", "", *mean, *[_fmt(totals[c.split(":", 1)[1]], 2) for c in speed_cols]])

    print(f"workload: {_describe_workload(workload)}")
    print("a_/w_ = activations / weights: zero = fraction of zeros; bin, booth = mean essential bits (one bits; "
          "Booth terms); grp = mean Dynamic Stripes precision over groups of 16 channels")
    print(f"design columns: ideal speedup = {DEMO_BASELINE} ideal_cycles / design ideal_cycles "
          "(TOTAL: whole workload; activation columns: MAC-weighted means)")
    print(format_table(headers, rows))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    out = Path(args.out)
    csv = out / "stats.csv"
    try:
        with atomic_write(csv) as fh:
            table.to_csv(fh, index=False)
        png = plot_bit_sparsity(workload, out / "bit_sparsity.png")
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc.strerror or exc}") from None
    print(f"wrote {csv} and {png}")
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
    print(f"imported {_describe_workload(workload)}, {workload.macs} MACs")
    print(f"wrote {path}")
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
    sim.add_argument("--seed", type=_non_negative_int, default=None,
                     help="seed of a built-in workload's random values (default 0)")
    sim.add_argument("--layers", type=_positive_int, default=None, metavar="N",
                     help="keep only the first N layers of the workload (default: all)")
    sim.set_defaults(func=cmd_simulate)

    lst = sub.add_parser("list", parents=[common], help="list presets, knobs and built-in workloads",
                         description="List the architecture presets, the knobs and the built-in workloads.")
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
    except (ConfigError, WorkloadError, ValueError, OSError, ImportError) as exc:
        sys.stdout.flush()
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
