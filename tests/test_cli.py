"""End-to-end tests of the ``bitserial`` command line (simulator/cli.py), in-process and as a real subprocess."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import cli, preset_names
from simulator.cli import main
from simulator.progress import CompileWatch, ProgressBar
from workloads import Layer, Workload, builtin_names, registry

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Built-in real workloads are cached in a temporary folder, not in ~/.cache."""
    monkeypatch.setenv("BITSERIAL_CACHE", str(tmp_path_factory.getbasetemp() / "bitserial-cache"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A two-layer workload file: a padded conv (8, 6, 6) * (4, 8, 3, 3) and an fc 16 -> 10."""
    rng = np.random.default_rng(7)
    layers = [
        Layer.conv("conv", rng.integers(0, 256, (8, 6, 6)), rng.integers(-128, 128, (4, 8, 3, 3)), padding=1,
                   act_bits=8, weight_bits=8),
        Layer.fc("fc", rng.integers(0, 64, 16), rng.integers(-8, 8, (10, 16)), act_bits=6, weight_bits=4),
    ]
    return Workload("tiny", layers).save(tmp_path_factory.mktemp("workload") / "tiny.npz")


def run_ok(capsys, *argv: str) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    return out


def total_row(out: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith("TOTAL"))


# ----------------------------------------------------------------------------- list
def test_list_shows_presets_knobs_and_workloads(capsys):
    out = run_ok(capsys, "list")
    for name in preset_names():
        assert name in out
    assert "DaDianNao (Chen et al., MICRO'14)" in out  # the YAML's leading comment line
    assert "tiles" in out and "int in 1..4096" in out  # a machine knob with its range
    assert "pragmatic        serial, encoding, first_stage_bits, run_ahead, group_size" in out  # its own knobs
    assert max(len(line) for line in out.splitlines()) <= 100
    for name in ("alexnet", "resnet50", "bert_base"):
        assert name in out
    for name in builtin_names():  # the real workloads, with their model file and availability
        assert name in out
    assert "pretrainedResnet_quant.tflite" in out and "Built-in real workloads" in out


# ----------------------------------------------------------------------------- simulate
def test_simulate_writes_long_csv_and_run_json(capsys, tiny, tmp_path):
    out_csv = tmp_path / "res" / "out.csv"
    out = run_ok(capsys, "simulate", "stripes", "pragmatic", "--workload", tiny, "--out", out_csv)
    assert "cycles:stripes" in out and "cycles:pragmatic" in out and "speedup" not in out

    table = pd.read_csv(out_csv)
    assert len(table) == 2 * 2  # arch x layer
    assert set(table["arch"]) == {"stripes", "pragmatic"}
    assert list(table["layer"][:2]) == ["conv", "fc"]
    # the printed TOTAL row matches the CSV
    totals = table.groupby("arch")["cycles"].sum()
    assert total_row(out)[1:] == [str(totals["stripes"]), str(totals["pragmatic"])]

    run = json.loads((out_csv.parent / "out.run.json").read_text())
    assert set(run["archs"]) == {"stripes", "pragmatic"}
    assert run["archs"]["stripes"]["encoding"] == "fixed"
    assert run["csv"] == "out.csv"
    assert "simulate stripes pragmatic" in run["command"]


def test_simulate_baseline_adds_speedup(capsys, tiny, tmp_path):
    out_csv = tmp_path / "out.csv"
    out = run_ok(capsys, "simulate", "stripes", "pragmatic", "-w", tiny, "--baseline", "dadiannao", "-o", out_csv)
    assert "speedup:pragmatic" in out

    table = pd.read_csv(out_csv)
    assert len(table) == 3 * 2  # the baseline is simulated and written too
    assert set(table["arch"]) == {"dadiannao", "stripes", "pragmatic"}
    base = table[table["arch"] == "dadiannao"].set_index("layer")["cycles"]
    expected = table["layer"].map(base) / table["cycles"]
    np.testing.assert_allclose(table["speedup_vs_dadiannao"], expected)
    assert (table.loc[table["arch"] == "dadiannao", "speedup_vs_dadiannao"] == 1.0).all()

    totals = table.groupby("arch")["cycles"].sum()
    row = total_row(out)  # TOTAL, 3 cycles columns, 3 speedups (dadiannao first)
    assert float(row[-1]) == pytest.approx(totals["dadiannao"] / totals["pragmatic"], abs=0.005)
    assert "dadiannao" in json.loads((tmp_path / "out.run.json").read_text())["archs"]


def test_baseline_listed_among_archs_is_simulated_once(capsys, tiny, tmp_path):
    out_csv = tmp_path / "out.csv"
    run_ok(capsys, "simulate", "dadiannao", "stripes", "-w", tiny, "--baseline", "dadiannao", "-o", out_csv)
    table = pd.read_csv(out_csv)
    assert len(table) == 2 * 2
    assert list(table["arch"].unique()) == ["dadiannao", "stripes"]


def test_set_overrides_change_cycles(capsys, tiny, tmp_path):
    run_ok(capsys, "simulate", "stripes", "-w", tiny, "-o", tmp_path / "a" / "out.csv")
    run_ok(capsys, "simulate", "stripes", "-w", tiny, "--set", "columns=1", "--set", "tiles=16",
           "-o", tmp_path / "b" / "out.csv")
    default = pd.read_csv(tmp_path / "a" / "out.csv")
    narrow = pd.read_csv(tmp_path / "b" / "out.csv")
    assert narrow.loc[0, "cycles"] > default.loc[0, "cycles"]  # the conv on 1 column instead of 16
    run = json.loads((tmp_path / "b" / "out.run.json").read_text())
    assert run["archs"]["stripes"]["columns"] == 1
    assert run["overrides"] == {"columns": 1, "tiles": 16}


def test_set_all_reaches_the_baseline_and_set_does_not(capsys, tiny, tmp_path):
    one_sided = run_ok(capsys, "compare", "stripes", "-w", tiny, "--set", "buffer_memory=edram", "-o",
                       tmp_path / "a.csv")
    assert ("note: --set buffer_memory=edram leaves the baseline dadiannao at buffer_memory=sram; --set-all sets "
            "both") in one_sided
    both_sides = run_ok(capsys, "compare", "stripes", "-w", tiny, "--set-all", "buffer_memory=edram", "-o",
                        tmp_path / "b.csv")
    assert "note: --set" not in both_sides
    one = pd.read_csv(tmp_path / "a.csv").set_index("arch")["area_mm2"]
    both = pd.read_csv(tmp_path / "b.csv").set_index("arch")["area_mm2"]
    assert both["stripes"] == pytest.approx(one["stripes"])  # the design has eDRAM buffers either way
    assert both["dadiannao"] < one["dadiannao"] / 2  # only --set-all gives the baseline eDRAM buffers too
    run = json.loads((tmp_path / "b.run.json").read_text())
    assert run["archs"]["dadiannao"]["buffer_memory"] == "edram" and run["baseline_overrides"] == {
        "buffer_memory": "edram"}
    simulated = run_ok(capsys, "simulate", "stripes", "-w", tiny, "-b", "dadiannao", "--set-all", "tech_node_nm=65",
                       "-o", tmp_path / "c.csv")
    assert "wrote" in simulated
    assert json.loads((tmp_path / "c.run.json").read_text())["archs"]["dadiannao"]["tech_node_nm"] == 65


def test_every_csv_in_a_folder_keeps_its_own_provenance(capsys, tiny, tmp_path):
    run_ok(capsys, "simulate", "stripes", "-w", tiny, "-o", tmp_path / "a.csv")
    run_ok(capsys, "simulate", "pragmatic", "-w", tiny, "-o", tmp_path / "b.csv")
    assert set(json.loads((tmp_path / "a.run.json").read_text())["archs"]) == {"stripes"}
    assert set(json.loads((tmp_path / "b.run.json").read_text())["archs"]) == {"pragmatic"}
    assert not (tmp_path / "run.json").exists()


def test_list_a_design_or_a_preset_shows_its_knobs(capsys, tmp_path):
    out = run_ok(capsys, "list", "tactical")
    assert out.startswith("Design tactical")
    for knob in ("backend", "lookahead", "lookaside", "search_shape", "promotion", "tiles"):
        assert f"\n  {knob} " in out
    assert "\n  serial " not in out and "kept_columns" not in out  # its serial operand follows its back end
    assert "least_flexible | most_candidates" in out and max(len(line) for line in out.splitlines()) <= 100
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text("# a narrow one\ndesign: pragmatic\ncolumns: 4\n")
    out = run_ok(capsys, "list", narrow)
    assert out.startswith("Preset narrow (design pragmatic)")
    assert any(line.split()[:2] == ["columns", "4"] for line in out.splitlines())


def test_simulate_builtin_workload_seed_and_layers(capsys, tmp_path):
    out = run_ok(capsys, "simulate", "stripes", "-w", "alexnet", "--layers", "2", "--seed", "3",
                 "-o", tmp_path / "out.csv")
    assert "conv1" in out and "conv2" in out and "conv3" not in out
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table["layer"]) == ["conv1", "conv2"]
    assert set(table["workload"]) == {"alexnet"}


def test_arch_from_yaml_file(capsys, tiny, tmp_path):
    arch = tmp_path / "mine.yaml"
    arch.write_text("# a narrow Pragmatic\nname: narrow\ndesign: pragmatic\nserial: activation\nencoding: booth\n"
                    "columns: 4\n")
    out = run_ok(capsys, "simulate", arch, "pragmatic", "-w", tiny)
    assert "cycles:narrow" in out and "cycles:pragmatic" in out


# ----------------------------------------------------------------------------- demo
def test_demo_on_small_workload(capsys, tiny, tmp_path):
    out_dir = tmp_path / "demo"
    out = run_ok(capsys, "demo", "--workload", tiny, "--out", out_dir)
    assert "speedup over dadiannao" in out and "TOTAL" in out

    table = pd.read_csv(out_dir / "demo.csv")
    presets = [p for p in preset_names() if not p.startswith("dnnsim_")]  # the paper presets; DNNsim's twins listed
    assert "dnnsim_stripes" in preset_names() and "stripes" in presets
    assert len(table) == len(presets) * 2
    assert set(table["arch"]) == set(presets)
    base = table[table["arch"] == "dadiannao"].set_index("layer")["cycles"]
    np.testing.assert_allclose(table["speedup_vs_dadiannao"], table["layer"].map(base) / table["cycles"])

    run = json.loads((out_dir / "demo.run.json").read_text())
    assert set(run["archs"]) == set(presets)
    png = out_dir / "speedup.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 1000


def test_demo_leaves_out_a_preset_whose_pe_is_too_narrow(capsys, tmp_path):
    """9-bit weights (as the synthetic AlexNet, the demo's fallback, has): dadiannao_int8's 8-bit multipliers cannot
    take them, so the demo runs the other presets and says why it left that one out."""
    rng = np.random.default_rng(3)
    wide = Workload("wide", [Layer.conv("conv", rng.integers(0, 256, (8, 6, 6)), rng.integers(-256, 256, (4, 8, 3, 3)),
                                        padding=1, act_bits=8, weight_bits=9)]).save(tmp_path / "wide.npz")
    code = main(["demo", "--workload", str(wide), "--out", str(tmp_path / "demo")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "note: the demo leaves out dadiannao_int8: layer 'conv': weight_bits (9) exceeds the PE width" in err
    arches = set(pd.read_csv(tmp_path / "demo" / "demo.csv")["arch"])
    assert "dadiannao_int8" not in arches and {"dadiannao", "stripes"} <= arches


def test_demo_default_is_the_real_resnet8(capsys, tmp_path):
    if not registry.available("resnet8-cifar10-int8")[0]:
        pytest.skip(f"resnet8-cifar10-int8 unavailable: {registry.available('resnet8-cifar10-int8')[1]}")
    out = run_ok(capsys, "demo", "--out", tmp_path)
    assert out.startswith("workload: resnet8-cifar10-int8 (") and "TOTAL" in out
    assert set(pd.read_csv(tmp_path / "demo.csv")["workload"]) == {"resnet8-cifar10-int8"}


def test_demo_falls_back_to_alexnet_with_a_notice(capsys, monkeypatch):
    monkeypatch.setattr(registry, "available", lambda name, data_dir=None: (False, "needs tflite"))
    assert cli.default_demo_workload() == "alexnet"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resnet8-cifar10-int8 unavailable (needs tflite)" in err and "alexnet" in err
    monkeypatch.setattr(registry, "available", lambda name, data_dir=None: (True, ""))
    assert cli.default_demo_workload() == "resnet8-cifar10-int8"


# ----------------------------------------------------------------------------- stats
def test_stats_writes_csv_and_figure(capsys, tiny, tmp_path):
    out = run_ok(capsys, "stats", tiny, "--out", tmp_path / "st")
    assert "a_zero" in out and "dynamic_stripes" in out and "TOTAL" in out
    table = pd.read_csv(tmp_path / "st" / "stats.csv")
    assert list(table["layer"]) == ["conv", "fc"]
    for col in ("act_zero_frac", "act_bits_binary", "act_bits_booth", "act_group_precision", "weight_zero_frac",
                "ideal_speedup:dadiannao", "ideal_speedup:pragmatic"):
        assert col in table
    assert (table["ideal_speedup:dadiannao"] == 1.0).all()
    loaded = Workload.load(tiny)
    assert table.loc[0, "act_zero_frac"] == pytest.approx(float(np.mean(loaded["conv"].activations == 0)))
    png = tmp_path / "st" / "bit_sparsity.png"
    assert png.read_bytes()[:8] == PNG_MAGIC


# ----------------------------------------------------------------------------- import
def test_import_onnx_end_to_end(capsys, tmp_path):
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    image = pytest.importorskip("PIL.Image", reason="pillow is not installed")
    from .test_onnx import build_float_net

    model = build_float_net(tmp_path / "net.onnx")
    pics = []
    for i in range(2):
        pics.append(tmp_path / f"pic{i}.png")
        rng = np.random.default_rng(i)
        image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(pics[-1])
    out = run_ok(capsys, "import", model, "--out", tmp_path / "w" / "net.npz", "--image", pics[0],
                 "--image", pics[1], "--bits", "16")
    assert "wrote" in out
    wl = Workload.load(tmp_path / "w" / "net.npz")
    assert [layer.name for layer in wl] == ["conv1@0", "conv1@1", "fc1@0", "fc1@1"]
    assert wl["conv1@0"].act_bits == 16 and not wl["conv1@0"].act_signed  # pixels / 255 are >= 0
    run_ok(capsys, "simulate", "stripes", "-w", tmp_path / "w" / "net.npz")


def test_import_tflite_and_checkpoint(capsys, tmp_path):
    for m in ("tflite", "PIL", "workloads.importers.tflite"):
        if not registry._has_module(m):
            pytest.skip(f"{m} is not available")
    from .conftest import shared_path

    tfl = shared_path("workloads", "mlperf-tiny-int8", "pretrainedResnet_quant.tflite")
    shared_path("workloads", "images-foolbox")
    run_ok(capsys, "import", tfl, "--images", "2", "--out", tmp_path / "r8.npz")
    wl = Workload.load(tmp_path / "r8.npz")
    assert any(layer.name.endswith("@1") for layer in wl)  # one layer set per image
    if not all(registry._has_module(m) for m in ("torch", "workloads.importers.pytorch")):
        pytest.skip("torch / the PyTorch importer are not available")
    th = shared_path("workloads", "cifar10-resnet-akamaster", "resnet20-12fca82f.th")
    run_ok(capsys, "import", th, "--arch", "resnet20", "--out", tmp_path / "r20.npz")
    assert len(Workload.load(tmp_path / "r20.npz")) == 20


# ----------------------------------------------------------------------------- errors
@pytest.fixture()
def bad_inputs(tmp_path) -> dict[str, Path]:
    bad_value = tmp_path / "bad_value.yaml"
    bad_value.write_text("name: bad\ndesign: stripes\nserial: activation\nencoding: fixed\ntiles: -3\n")
    unknown_field = tmp_path / "unknown_field.yaml"
    unknown_field.write_text("name: odd\ndesign: stripes\nwidgets: 4\n")
    not_zip = tmp_path / "not_zip.npz"
    not_zip.write_text("this is not a zip archive\n")
    th = tmp_path / "model.th"
    th.write_bytes(b"not a checkpoint")
    return {"bad_value": bad_value, "unknown_field": unknown_field, "not_zip": not_zip,
            "missing": tmp_path / "missing.npz", "th": th}


ERROR_CASES = {
    "unknown arch": (["simulate", "no_such_arch", "-w", "{tiny}"], "no_such_arch"),
    "bad yaml value": (["simulate", "{bad_value}", "-w", "{tiny}"], "tiles (-3)"),
    "unknown yaml field": (["simulate", "{unknown_field}", "-w", "{tiny}"], "widgets"),
    "workload not a zip": (["simulate", "stripes", "-w", "{not_zip}"], "not a zip"),
    "workload missing": (["simulate", "stripes", "-w", "{missing}"], "missing.npz"),
    "unknown knob": (["simulate", "stripes", "-w", "{tiny}", "--set", "sprockets=3"], "sprockets"),
    "set without value": (["simulate", "stripes", "-w", "{tiny}", "--set", "columns"], "knob=value"),
    "knob value invalid": (["simulate", "stripes", "-w", "{tiny}", "--set", "columns=0"], "columns (0)"),
    "unknown workload": (["simulate", "stripes", "-w", "no_such_net"], "no_such_net"),
    "seed on a file": (["simulate", "stripes", "-w", "{tiny}", "--seed", "1"], "--seed"),
    "demo missing workload": (["demo", "-w", "{missing}", "--out", "{out}"], "missing.npz"),
    "stats missing workload": (["stats", "{missing}", "--out", "{out}"], "missing.npz"),
    "stats unknown workload": (["stats", "no_such_net", "--out", "{out}"], "resnet8-cifar10-int8"),
    "import missing model": (["import", "{missing}", "--out", "{out}/w.npz"], "missing.npz"),
    "import unknown type": (["import", "{bad_value}", "--out", "{out}/w.npz"], "unknown model type '.yaml'"),
    "import th without arch": (["import", "{th}", "--out", "{out}/w.npz"], "--arch"),
    "import arch on tflite": (["import", "{not_zip}", "--arch", "resnet20", "--out", "{out}/w.npz"], "--arch"),
    "import missing image": (["import", "{th}", "--arch", "resnet20", "--image", "{missing}", "--out",
                              "{out}/w.npz"], "missing.npz"),
    "import bad checkpoint": (["import", "{th}", "--arch", "resnet20", "--image", "{png}", "--out", "{out}/w.npz"],
                              "cannot load a resnet20 checkpoint"),
    "seed on a real workload": (["simulate", "stripes", "-w", "resnet8-cifar10-int8", "--seed", "1"], "--seed"),
    "images on a synthetic": (["simulate", "stripes", "-w", "alexnet", "--images", "4"], "--images applies only"),
    "images on a file": (["simulate", "stripes", "-w", "{tiny}", "--images", "2"], "--images applies only"),
    "knob of another design": (["simulate", "stripes", "-w", "{tiny}", "--set", "kept_columns=4"],
                               "stripes has no knob 'kept_columns'"),
    "knob set twice": (["simulate", "stripes", "-w", "{tiny}", "--set", "tiles=2", "--set", "tiles=4"],
                       "--set tiles is given twice"),
    "knob in --set and --set-all": (["compare", "stripes", "-w", "{tiny}", "--set", "tiles=2", "--set-all",
                                     "tiles=4"], "--set and --set-all both give tiles"),
    "out is a folder": (["simulate", "stripes", "-w", "{tiny}", "--out", "{tmp}"], "is a folder"),
    "out unwritable": (["simulate", "stripes", "-w", "{tiny}", "--out", "/proc/nope/out.csv"], "cannot write"),
    "list unknown": (["list", "warp_drive"], "unknown architecture 'warp_drive'"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_exit_2(capsys, tiny, bad_inputs, tmp_path, case):
    argv, needle = ERROR_CASES[case]
    paths = {**{k: str(v) for k, v in bad_inputs.items()}, "tiny": str(tiny), "out": str(tmp_path / "o"),
             "tmp": str(tmp_path)}
    if case.startswith("import") and "th" in argv[1] and not all(registry._has_module(m) for m in
                                                                 ("torch", "PIL", "workloads.importers.pytorch")):
        pytest.skip("torch / pillow / the PyTorch importer are not available")
    if "{png}" in argv:
        from PIL import Image

        paths["png"] = str(tmp_path / "pic.png")
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(paths["png"])
    code = main([a.format(**paths) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bitserial: error: ")
    assert needle in lines[0]
    assert out == ""


def test_missing_real_model_error_names_the_file(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "SHARED_WORKLOADS", tmp_path / "no_shared")
    monkeypatch.delenv("BITSERIAL_DATA", raising=False)
    monkeypatch.setattr(registry, "missing_modules", lambda name: [])
    for argv in (["--data-dir", str(tmp_path), "stats", "resnet56-cifar10", "--out", str(tmp_path / "o")],
                 ["stats", "resnet56-cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert "resnet56-4bfd9763.th" in err and "--data-dir" in err and str(tmp_path) in err


def test_two_different_archs_with_one_name(capsys, tiny):
    code = main(["simulate", "stripes", "dadiannao", "-w", str(tiny), "--baseline", "dadiannao",
                 "--set", "lanes=8"])
    err = capsys.readouterr().err
    assert code == 2 and "named 'dadiannao'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [[], ["simulate", "stripes"], ["simulate", "stripes", "-w", "alexnet",
                                                                "--layers", "0"], ["frobnicate"]])
def test_usage_errors_exit_2(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "simulate" in capsys.readouterr().out


def test_the_output_is_checked_before_simulating(capsys, tiny, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("simulated before checking --out")

    monkeypatch.setattr(cli, "run_all", boom)
    assert main(["simulate", "stripes", "-w", str(tiny), "--out", str(tmp_path)]) == 2
    assert main(["demo", "-w", str(tiny), "--out", str(tiny)]) == 2  # a file where the folder should be
    assert "is a folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- progress bar
def test_progress_bar_waits_one_second_then_finishes_the_line():
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar(4, stream, tty=True, clock=lambda: now[0])
    cb = bar.callback("stripes")
    cb(0, 2, "conv")
    now[0] = 0.5
    cb(1, 2, "fc")
    assert stream.getvalue() == ""  # quiet for the first second
    now[0] = 1.5
    cb(2, 2, "")
    cb2 = bar.callback("pragmatic")
    cb2(0, 2, "conv")
    assert "\r[" in stream.getvalue() and "2/4 layers  pragmatic  conv" in stream.getvalue()
    cb2(2, 2, "")
    bar.finish()
    text = stream.getvalue()
    assert text.endswith("\n") and "[####################] 4/4 layers" in text

    quiet = io.StringIO()
    short = ProgressBar(2, quiet, tty=True, clock=lambda: 0.0)
    short.callback("x")(2, 2, "")
    short.finish()
    assert quiet.getvalue() == ""


def test_progress_in_a_log_is_plain_lines():
    now = [0.0]
    log = io.StringIO()  # not a terminal
    bar = ProgressBar(40, log, clock=lambda: now[0], line_every=10)
    cb = bar.callback("laconic")
    for i in range(40):
        now[0] = i
        cb(i, 40, f"layer{i}")
    bar.finish()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 4  # at 1 s, 11 s, 21 s, 31 s
    assert lines[0] == "progress: 1/40 layers  laconic  layer1  [1 s]"


class _FakeWatch:
    compiling = True

    def running_seconds(self) -> float:
        return 12.0


def test_progress_keeps_moving_and_says_when_numba_compiles():
    """The ticker thread redraws while the main thread is busy (numba compiling a kernel); no callback needed."""
    stream = io.StringIO()
    with ProgressBar(3, stream, tty=True, delay=0.0, tick=0.01, watch=_FakeWatch()) as bar:
        bar.callback("tactical")(0, 3, "conv1")
        first = stream.getvalue().count("\r")
        import time

        time.sleep(0.2)
        assert stream.getvalue().count("\r") > first + 3
    assert "compiling numba kernels: 12 s" in stream.getvalue()


def test_compile_watch_counts_real_compilations_only():
    from numba import njit

    @njit  # not cached: compiled in this process
    def add(x, y):
        return x + y

    with CompileWatch() as watch:
        add(1, 2)
        add(3, 4)  # already compiled for ints
    assert watch.count == 1 and watch.seconds > 0 and not watch.compiling
    with CompileWatch() as again:
        add(5, 6)
    assert again.count == 0


# ----------------------------------------------------------------------------- real subprocess
def _console_script() -> list[str]:
    found = shutil.which("bitserial") or shutil.which("bitserial", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "simulator"]


def test_console_script_subprocess(tiny, tmp_path):
    out_csv = tmp_path / "out.csv"
    proc = subprocess.run([*_console_script(), "simulate", "stripes", "pragmatic", "-w", str(tiny),
                           "--baseline", "dadiannao", "--out", str(out_csv)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "TOTAL" in proc.stdout
    assert len(pd.read_csv(out_csv)) == 3 * 2
    assert (tmp_path / "out.run.json").is_file()

    proc = subprocess.run([*_console_script(), "simulate", "no_such_arch", "-w", str(tiny)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("bitserial: error: unknown architecture 'no_such_arch'")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_python_dash_m_simulator(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "simulator", "list"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "dadiannao" in proc.stdout


# ----------------------------------------------------------------------------- prune
def test_prune_writes_the_workload_report_and_provenance(capsys, tiny, tmp_path):
    out = run_ok(capsys, "prune", "magnitude", "-w", tiny, "--set", "sparsity=0.875", "--out", tmp_path / "p.npz",
                 "--arch", "cambricon_x", "--arch", "stripes")
    pruned = Workload.load(tmp_path / "p.npz")
    original = Workload.load(tiny)
    for a, b in zip(original, pruned, strict=True):
        assert np.count_nonzero(b.weights) == a.weights.size - round(0.875 * a.weights.size)
    report = pd.read_csv(tmp_path / "p.csv")
    assert list(report["layer"]) == ["conv", "fc"] and (report["density"] == 0.125).all()
    run = json.loads((tmp_path / "p.run.json").read_text())
    assert run["method"] == "magnitude" and run["params"] == {"sparsity": 0.875, "scope": "layer"}
    assert run["pruned_digest"] == pruned.digest() and run["workload_digest"] == original.digest()
    cyc = run["cycles"]["cambricon_x"]
    assert cyc["after"] < cyc["before"] and run["cycles"]["stripes"]["after"] == run["cycles"]["stripes"]["before"]
    assert "bit sparsity" in out and "cycles: cambricon_x" in out and f"({cyc['before'] / cyc['after']:.2f}x)" in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["prune", "lottery", "-w", "{tiny}", "--out", "{out}"], "unknown pruning method 'lottery'"),
    (["prune", "magnitude", "-w", "{tiny}", "--out", "{out}"], "magnitude: parameter sparsity is required"),
    (["prune", "n_of_g", "-w", "{tiny}", "--set", "keep=20", "--out", "{out}"], "keep (20) must not exceed group"),
    (["prune", "magnitude", "-w", "{tiny}", "--set", "sparsity=0.5", "--evaluate", "10", "--out", "{out}"],
     "--evaluate needs a built-in real workload"),
    (["prune", "pareto", "-w", "{tiny}", "--out", "{out}"], "pareto measures cycles and accuracy"),
    (["prune", "magnitude", "-w", "{tiny}", "--set", "sparsity=0.5", "--layers", "nope", "--out", "{out}"],
     "has no layer 'nope'"),
])
def test_prune_errors_are_one_line(capsys, tiny, tmp_path, argv, needle):
    code = main([a.format(tiny=tiny, out=tmp_path / "o.npz") for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "o.npz").exists()
