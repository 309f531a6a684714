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

from simulator import preset_names
from simulator.cli import ProgressBar, main
from workloads import Layer, Workload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
    assert "run_ahead" in out and "run-ahead registers" in out  # knob + KNOB_HELP
    for name in ("alexnet", "resnet50", "bert_base"):
        assert name in out


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

    run = json.loads((out_csv.parent / "run.json").read_text())
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
    assert "dadiannao" in json.loads((tmp_path / "run.json").read_text())["archs"]


def test_baseline_listed_among_archs_is_simulated_once(capsys, tiny, tmp_path):
    out_csv = tmp_path / "out.csv"
    run_ok(capsys, "simulate", "dadiannao", "stripes", "-w", tiny, "--baseline", "dadiannao", "-o", out_csv)
    table = pd.read_csv(out_csv)
    assert len(table) == 2 * 2
    assert list(table["arch"].unique()) == ["dadiannao", "stripes"]


def test_set_overrides_change_cycles(capsys, tiny, tmp_path):
    run_ok(capsys, "simulate", "stripes", "-w", tiny, "-o", tmp_path / "a" / "out.csv")
    run_ok(capsys, "simulate", "stripes", "-w", tiny, "--set", "columns=1", "--set", "run_ahead=0",
           "-o", tmp_path / "b" / "out.csv")
    default = pd.read_csv(tmp_path / "a" / "out.csv")
    narrow = pd.read_csv(tmp_path / "b" / "out.csv")
    assert narrow.loc[0, "cycles"] > default.loc[0, "cycles"]  # the conv on 1 column instead of 16
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["archs"]["stripes"]["columns"] == 1
    assert run["overrides"] == {"columns": 1, "run_ahead": 0}


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
    presets = preset_names()
    assert len(table) == len(presets) * 2
    assert set(table["arch"]) == set(presets)
    base = table[table["arch"] == "dadiannao"].set_index("layer")["cycles"]
    np.testing.assert_allclose(table["speedup_vs_dadiannao"], table["layer"].map(base) / table["cycles"])

    run = json.loads((out_dir / "run.json").read_text())
    assert set(run["archs"]) == set(presets)
    png = out_dir / "speedup.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 1000


# ----------------------------------------------------------------------------- errors
@pytest.fixture()
def bad_inputs(tmp_path) -> dict[str, Path]:
    bad_value = tmp_path / "bad_value.yaml"
    bad_value.write_text("name: bad\ndesign: stripes\nserial: activation\nencoding: fixed\ntiles: -3\n")
    unknown_field = tmp_path / "unknown_field.yaml"
    unknown_field.write_text("name: odd\ndesign: stripes\nwidgets: 4\n")
    not_zip = tmp_path / "not_zip.npz"
    not_zip.write_text("this is not a zip archive\n")
    return {"bad_value": bad_value, "unknown_field": unknown_field, "not_zip": not_zip,
            "missing": tmp_path / "missing.npz"}


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
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_exit_2(capsys, tiny, bad_inputs, tmp_path, case):
    argv, needle = ERROR_CASES[case]
    paths = {**{k: str(v) for k, v in bad_inputs.items()}, "tiny": str(tiny), "out": str(tmp_path / "o")}
    code = main([a.format(**paths) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bitserial: error: ")
    assert needle in lines[0]
    assert out == ""


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


# ----------------------------------------------------------------------------- progress bar
def test_progress_bar_waits_one_second_then_finishes_the_line():
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar(4, stream, clock=lambda: now[0])
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
    short = ProgressBar(2, quiet, clock=lambda: 0.0)
    short.callback("x")(2, 2, "")
    short.finish()
    assert quiet.getvalue() == ""


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
    assert (tmp_path / "run.json").is_file()

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
