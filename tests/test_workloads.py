"""Layer validation, the workload file format, and the integer reference operators."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads import Layer, Workload, WorkloadError, conv2d, fc, gemm, layer_output


def naive_conv(a, w, stride, pad, groups):
    c, h, wd = a.shape
    k, cg, r, s = w.shape
    ap = np.pad(a, ((0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
    oh, ow = (ap.shape[1] - r) // stride + 1, (ap.shape[2] - s) // stride + 1
    out = np.zeros((k, oh, ow), dtype=np.int64)
    kg = k // groups
    for f in range(k):
        g = f // kg
        for y in range(oh):
            for x in range(ow):
                for ci in range(cg):
                    for dy in range(r):
                        for dx in range(s):
                            a_val = int(ap[g * cg + ci, y * stride + dy, x * stride + dx])
                            out[f, y, x] += a_val * int(w[f, ci, dy, dx])
    return out


@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.tuples(*[st.integers(0, 2)] * 4), st.integers(0, 1000))
def test_conv2d_matches_naive_loops(c, kpg, r, stride, groups_sel, pad, seed):
    rng = np.random.default_rng(seed)
    groups = [1, c, 1][groups_sel - 1] if c > 1 else 1
    h = w = r + 3
    a = rng.integers(-(1 << 15), 1 << 15, (c, h, w))
    wt = rng.integers(-(1 << 15), 1 << 15, (kpg * groups, c // groups, r, r))
    np.testing.assert_array_equal(conv2d(a, wt, stride=stride, padding=pad, groups=groups),
                                  naive_conv(a, wt, stride, pad, groups))


def test_fc_and_gemm_are_exact_in_int64():
    a = np.full(300, 65535)
    w = np.full((2, 300), -32768)
    assert fc(a, w).tolist() == [65535 * -32768 * 300] * 2
    t = np.stack([a, a // 2])
    np.testing.assert_array_equal(gemm(t, w), np.stack([fc(a, w), fc(a // 2, w)]))


def test_layer_output_per_kind():
    rng = np.random.default_rng(0)
    conv = Layer.conv("c", rng.integers(0, 9, (4, 5, 5)), rng.integers(-3, 3, (4, 1, 3, 3)), groups=4, padding=1)
    assert conv.is_depthwise and layer_output(conv).shape == conv.output_shape == (4, 5, 5)
    g = Layer.gemm("g", rng.integers(0, 9, (7, 6)), rng.integers(-3, 3, (5, 6)))
    assert layer_output(g).shape == g.output_shape == (7, 5)
    assert g.macs == 7 * 5 * 6


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Layer.conv("x", np.zeros((3, 4, 4)), np.zeros((2, 4, 3, 3))), "weights have 4 channels"),
    (lambda: Layer.conv("x", np.zeros((3, 4)), np.zeros((2, 3, 3, 3))), "must be (C, H, W)"),
    (lambda: Layer.conv("x", np.full((3, 4, 4), 0.5), np.zeros((2, 3, 3, 3))), "is not"),
    (lambda: Layer.conv("x", np.full((3, 4, 4), 300), np.zeros((2, 3, 3, 3)), act_bits=8), "value 300"),
    (lambda: Layer.conv("x", np.zeros((3, 4, 4)), np.full((2, 3, 3, 3), -9), weight_bits=4), "value -9"),
    (lambda: Layer.conv("x", np.zeros((3, 2, 2)), np.zeros((2, 3, 3, 3))), "larger than the padded input"),
    (lambda: Layer.conv("x", np.zeros((4, 4, 4)), np.zeros((3, 2, 1, 1)), groups=2), "groups (2) must divide"),
    (lambda: Layer.fc("x", np.zeros((0,)), np.zeros((2, 0))), "empty"),
    (lambda: Layer.fc("x", np.zeros(5), np.zeros((2, 4))), "4 input channels"),
    (lambda: Layer.fc("x", np.array(["a"]), np.zeros((1, 1))), "must be integers"),
    (lambda: Layer.fc("x", np.zeros(4), np.zeros((1, 4)), act_bits=17), "act_bits (17)"),
    (lambda: Layer._build("x", "pool", np.zeros(4), np.zeros((1, 4)), 1, 0, 1, 8, 8, None, True, None),
     "unknown kind 'pool'"),
])
def test_invalid_layers_raise_clear_errors(build, message):
    with pytest.raises(WorkloadError) as err:
        build()
    assert message in str(err.value)
    assert "layer 'x'" in str(err.value)  # errors name the layer


def test_signedness_is_inferred_from_the_data():
    assert Layer.fc("x", np.array([-1, 2]), np.ones((1, 2)), act_bits=3).act_signed
    assert not Layer.fc("x", np.array([1, 2]), np.ones((1, 2))).act_signed


def _tiny() -> Workload:
    rng = np.random.default_rng(1)
    return Workload("tiny", [
        Layer.conv("c1", rng.integers(0, 256, (3, 8, 8)), rng.integers(-128, 128, (4, 3, 3, 3)), stride=2,
                   padding=(0, 1, 0, 1), act_bits=8, weight_bits=8, meta={"origin": "test"}),
        Layer.fc("f1", rng.integers(0, 16, 10), rng.integers(-8, 8, (3, 10)), act_bits=4, weight_bits=4),
        Layer.gemm("g1", rng.integers(-8, 8, (2, 10)), rng.integers(-8, 8, (3, 10)), act_bits=4, weight_bits=4),
    ], meta={"seed": 1})


def test_save_load_roundtrip(tmp_path):
    wl = _tiny()
    path = wl.save(tmp_path / "tiny.npz")
    back = Workload.load(path)
    assert back.name == "tiny" and back.meta == {"seed": 1} and back.digest() == wl.digest()
    for a, b in zip(wl.layers, back.layers, strict=True):
        assert (a.name, a.kind, a.padding, a.stride, a.act_bits, a.act_signed, a.meta) == (
            b.name, b.kind, b.padding, b.stride, b.act_bits, b.act_signed, b.meta)
        np.testing.assert_array_equal(a.activations, b.activations)
    assert not list(tmp_path.glob("*.tmp"))


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            zout.writestr(item, edit(item, data))


def test_load_rejects_tampered_or_bad_files(tmp_path):
    path = _tiny().save(tmp_path / "tiny.npz")
    bad = tmp_path / "bad.npz"

    def flip(item, data):
        if item.endswith("weights.npy"):
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    _rewrite(path, bad, flip)
    with pytest.raises(WorkloadError, match="sha256 mismatch"):
        Workload.load(bad)

    def bits(item, data):
        if item == "manifest.json":
            m = json.loads(data)
            m["layers"][1]["act_bits"] = 2
            return json.dumps(m).encode()
        return data

    _rewrite(path, bad, bits)
    with pytest.raises(WorkloadError, match=r"layers\[1\].*outside the declared 2-bit"):
        Workload.load(bad)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(WorkloadError, match="not a zip"):
        Workload.load(tmp_path / "junk.npz")
    with pytest.raises(WorkloadError, match="no such workload file"):
        Workload.load(tmp_path / "missing.npz")


def test_load_never_unpickles(tmp_path):
    path = _tiny().save(tmp_path / "tiny.npz")
    evil = tmp_path / "evil.npz"

    def objects(item, data):
        if item.endswith("0000_weights.npy"):
            import io
            buf = io.BytesIO()
            np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
            return buf.getvalue()
        return data

    _rewrite(path, evil, objects)
    with pytest.raises(WorkloadError, match="unreadable"):
        Workload.load(evil)


def test_workload_validation():
    layer = _tiny().layers[1]
    with pytest.raises(WorkloadError, match="duplicate layer name"):
        Workload("w", [layer, layer])
    with pytest.raises(WorkloadError, match="no layers"):
        Workload("w", [])


# ----------------------------------------------------------------------------- float32-weight layers
def _fp32_layer(name="w32", seed=3):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((4, 3, 3, 3)) * np.exp2(rng.integers(-40, 40, (4, 3, 3, 3)))).astype(np.float32)
    w.flat[0] = np.float32(1e-45)  # a subnormal
    return Layer.conv(name, rng.integers(-300, 300, (3, 6, 6)), w, padding=1, act_bits=10, weight_format="fp32")


def test_fp32_layers_hold_float32_weights_and_integer_activations():
    layer = _fp32_layer()
    assert layer.weight_format == "fp32" and layer.weights.dtype == np.float32
    assert layer.activations.dtype == np.int32 and layer.act_signed
    assert Layer.fc("i", np.ones(3), np.ones((2, 3))).weight_format == "int"  # the default
    assert layer.with_values(stride=2).weight_format == "fp32"
    exact = Layer.fc("f", np.ones(2), np.array([[0.5, -3.0]]), weight_format="fp32")  # float64 that fits exactly
    assert exact.weights.dtype == np.float32


@pytest.mark.parametrize(("weights", "kw", "message"), [
    (np.array([[1.0, np.nan]], dtype=np.float32), {}, "must be finite"),
    (np.array([[1.0, np.inf]]), {}, "must be finite"),
    (np.array([[0.1, 1.0]]), {}, "not exactly representable in float32"),
    (np.array([[1e300, 1.0]]), {}, "not exactly representable in float32"),
    (np.array([["a", "b"]]), {}, "must be real numbers"),
    (np.array([[-1.5, 1.0]], dtype=np.float32), {"weight_signed": False}, "negative but weight_signed=False"),
    (np.array([[1.0, 1.0]], dtype=np.float32), {"weight_format": "bf16"}, "unknown weight_format 'bf16'"),
])
def test_invalid_fp32_layers_raise_clear_errors(weights, kw, message):
    kw = {"weight_format": "fp32", **kw}
    with pytest.raises(WorkloadError, match="layer 'x'") as err:
        Layer.fc("x", np.ones(2), weights, **kw)
    assert message in str(err.value)


def test_fp32_layer_output_is_the_exact_sum_rounded_once():
    from fractions import Fraction

    from workloads.reference_ops import layer_output_exact

    layer = _fp32_layer()
    ints, s = layer_output_exact(layer)
    out = layer_output(layer)
    assert out.dtype == np.float64 and out.shape == layer.output_shape
    a = np.pad(layer.activations, ((0, 0), (1, 1), (1, 1)))
    for k, y, x in [(0, 0, 0), (1, 2, 3), (3, 5, 5), (2, 4, 1)]:
        exact = sum(Fraction(float(layer.weights[k, c, r, t])) * int(a[c, y + r, x + t])
                    for c in range(3) for r in range(3) for t in range(3))
        assert Fraction(int(ints[k, y, x])) * Fraction(2) ** s == exact
        assert out[k, y, x] == float(exact)  # correctly rounded
    rng = np.random.default_rng(0)
    for kind in ("fc", "gemm"):
        acts = rng.integers(0, 9, 5) if kind == "fc" else rng.integers(0, 9, (2, 5))
        w = (rng.standard_normal((3, 5)) * 2.0 ** 60).astype(np.float32)
        got = layer_output(getattr(Layer, kind)("g", acts, w, weight_format="fp32"))
        want = np.vectorize(float)(np.array([[sum(Fraction(float(wi)) * int(ai) for wi, ai in zip(row, t))
                                              for row in w] for t in np.atleast_2d(acts)], dtype=object))
        np.testing.assert_array_equal(got, want.reshape(got.shape))


def test_fp32_save_load_roundtrip_and_old_files_load_as_int(tmp_path):
    wl = Workload("mixed", [_fp32_layer(), *_tiny().layers])
    path = wl.save(tmp_path / "mixed.npz")
    manifest = json.loads(zipfile.ZipFile(path).read("manifest.json"))
    assert manifest["layers"][0]["weight_format"] == "fp32"
    assert "weight_format" not in manifest["layers"][1]  # integer layers: manifests as before
    back = Workload.load(path)
    assert back.digest() == wl.digest()
    assert [lay.weight_format for lay in back] == ["fp32", "int", "int", "int"]
    assert back[0].weights.dtype == np.float32
    np.testing.assert_array_equal(back[0].weights.view(np.uint32), wl[0].weights.view(np.uint32))  # bit for bit
    np.testing.assert_array_equal(layer_output(back[0]), layer_output(wl[0]))
    assert _tiny().digest() == Workload.load(_tiny().save(tmp_path / "t.npz")).digest()

    def strip(item, data):  # a file written before the field existed
        if item == "manifest.json":
            m = json.loads(data)
            for entry in m["layers"]:
                entry.pop("weight_format", None)
            return json.dumps(m).encode()
        return data

    old = tmp_path / "old.npz"
    _rewrite(_tiny().save(tmp_path / "tiny.npz"), old, strip)
    assert [lay.weight_format for lay in Workload.load(old)] == ["int", "int", "int"]
    _rewrite(path, old, strip)  # float weights without the field: not silently read as integers
    with pytest.raises(WorkloadError, match=r"layers\[0\]"):
        Workload.load(old)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    from workloads.atomic import atomic_write

    target = tmp_path / "sub" / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write(b"half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with atomic_write(target) as fh:
        fh.write(b"whole")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_bytes() == b"whole" and target.stat().st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------------- numbers are validated as numbers
@pytest.mark.parametrize(("field", "value", "shown"), [
    ("stride", 2.0, "stride (2.0)"), ("stride", 1.5, "stride (1.5)"), ("groups", 1.0, "groups (1.0)"),
    ("groups", True, "groups (True)"), ("stride", True, "stride (True)"), ("padding", 1.0, "padding (1.0)"),
    ("padding", (1, 1, 0.5, 1), "padding ((1, 1, 0.5, 1))"), ("padding", True, "padding (True)"),
    ("padding", "1111", "padding ('1111')"), ("act_bits", 8.0, "act_bits (8.0)"),
    ("weight_bits", True, "weight_bits (True)"),
    ("act_signed", 1, "act_signed (1)"), ("weight_signed", "yes", "weight_signed ('yes')"), ("meta", [1], "meta"),
])
def test_layer_numbers_must_be_integers(field, value, shown):
    a, w = np.zeros((4, 4, 4)), np.zeros((4, 2, 1, 1))
    kw = {"stride": 1, "padding": 0, "groups": 2, "act_bits": 8, "weight_bits": 8, field: value}
    with pytest.raises(WorkloadError) as err:
        Layer.conv("x", a, w, **kw)
    assert "layer 'x'" in str(err.value) and shown in str(err.value)


def test_numpy_integer_fields_are_stored_as_python_ints(tmp_path):
    layer = Layer.conv("x", np.zeros((4, 4, 4)), np.zeros((4, 2, 3, 3)), stride=np.int64(2),
                       padding=np.array([1, 0, 1, 0]), groups=np.int32(2), act_bits=np.int64(8),
                       weight_bits=np.uint8(4), weight_signed=np.bool_(True))
    values = (layer.stride, *layer.padding, layer.groups, layer.act_bits, layer.weight_bits)
    assert [type(v) for v in values] == [int] * 8 and values == (2, 1, 0, 1, 0, 2, 8, 4)
    assert type(layer.weight_signed) is bool
    json.dumps(values)  # np.int64 used to break JSON later
    back = Workload.load(Workload("w", [layer]).save(tmp_path / "w.npz"))["x"]
    assert (back.stride, back.padding, back.groups, back.act_bits) == (2, (1, 0, 1, 0), 2, 8)


# ----------------------------------------------------------------------------- damaged or malformed workload files
def _edit_manifest(src, dst, edit):
    def apply(item, data):
        if item != "manifest.json":
            return data
        m = json.loads(data)
        edit(m)
        return json.dumps(m).encode()

    _rewrite(src, dst, apply)


def _set(where, key, value):
    def edit(m):
        target = m
        for k in where:
            target = target[k]
        target[key] = value
    return edit


def _drop(where, key):
    def edit(m):
        target = m
        for k in where:
            target = target[k]
        del target[key]
    return edit


MANIFEST_CASES = {
    "padding int": (_set(["layers", 0], "padding", 1), ["layers[0].padding", "(1)"]),
    "padding float": (_set(["layers", 0], "padding", [0, 1.0, 0, 1]), ["layers[0].padding", "[0, 1.0, 0, 1]"]),
    "stride float": (_set(["layers", 0], "stride", 2.0), ["layers[0].stride", "2.0"]),
    "groups bool": (_set(["layers", 0], "groups", True), ["layers[0].groups", "True"]),
    "no sha256": (_drop(["layers", 1, "weights"], "sha256"), ["layers[1].weights", "sha256"]),
    "sha256 not hex": (_set(["layers", 1, "weights"], "sha256", 12), ["layers[1].weights.sha256", "12"]),
    "zero-size shape": (_set(["layers", 2, "activations"], "shape", [0, 10]), ["layers[2].activations.shape",
                                                                               "[0, 10]"]),
    "signed as string": (_set(["layers", 1], "act_signed", "no"), ["layers[1].act_signed", "'no'"]),
    "meta a list": (_set([], "meta", [1, 2]), ["'meta'", "[1, 2]"]),
    "layer meta a string": (_set(["layers", 0], "meta", "x"), ["layers[0].meta", "'x'"]),
    "kind a list": (_set(["layers", 0], "kind", ["conv"]), ["layers[0].kind", "['conv']"]),
    "name a number": (_set(["layers", 0], "name", 7), ["layers[0].name", "7"]),
    "version true": (_set([], "version", True), ["'version'", "True"]),
    "layers an object": (_set([], "layers", {}), ["'layers'", "{}"]),
    "shape disagrees": (_set(["layers", 1, "activations"], "shape", [5]), ["layers[1].activations", "[5]", "[10]"]),
    "unknown field": (_set(["layers", 0], "strides", 2), ["layers[0]", "strides"]),
    "fc with padding": (_set(["layers", 1], "padding", [1, 1, 1, 1]), ["layers[1]", "padding [1, 1, 1, 1]"]),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_malformed_manifests_give_one_line_errors(tmp_path, case):
    edit, needles = MANIFEST_CASES[case]
    bad = tmp_path / "bad.npz"
    _edit_manifest(_tiny().save(tmp_path / "tiny.npz"), bad, edit)
    with pytest.raises(WorkloadError) as err:
        Workload.load(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message
    for needle in needles:
        assert needle in message


def _member_span(path, member):
    """(start, end) of a member's compressed bytes in the zip file."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    raw = path.read_bytes()
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    return start, start + info.compress_size


@pytest.mark.parametrize("member", ["manifest.json", "0000_weights.npy", "0001_activations.npy"])
def test_corrupt_deflate_stream_is_a_workload_error(tmp_path, member):
    path = _tiny().save(tmp_path / "tiny.npz")
    start, end = _member_span(path, member)
    raw = bytearray(path.read_bytes())
    for k in range(start + 1, end - 1, 5):  # scramble the deflate stream, keep the zip structure
        raw[k] ^= 0xA5
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(WorkloadError) as err:
        Workload.load(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message
    assert member.removesuffix(".npy") in message


def test_array_header_disagreeing_with_the_manifest_is_refused_before_reading(tmp_path):
    import io

    path = _tiny().save(tmp_path / "tiny.npz")

    def huge(item, data):
        if item == "0001_weights.npy":  # a header claiming 10^12 elements must not be allocated
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, {"descr": "<i4", "fortran_order": False,
                                                       "shape": (10**6, 10**6)})
            return buf.getvalue() + b"\0" * 16
        return data

    bad = tmp_path / "bad.npz"
    _rewrite(path, bad, huge)
    with pytest.raises(WorkloadError, match=r"layers\[1\]\.weights: array '0001_weights' holds <i4 "
                                            r"\[1000000, 1000000\] but the manifest says <i4 \[3, 10\]"):
        Workload.load(bad)


_ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([2**40, -(2**31), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1.0, 2.0, 0.5]), st.text(max_size=4),
    st.sampled_from(["conv", "fc", "gemm", "fp32", "int", "<i4", "<f4", "0000_weights", "0" * 64]),
    st.lists(st.integers(-2, 4), max_size=5), st.just([]), st.just({}), st.dictionaries(st.text(max_size=3),
                                                                                        st.integers(), max_size=2),
)


def _paths(obj, prefix=()):
    """Every (container path, key) in a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix, k
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix, i
            yield from _paths(v, (*prefix, i))


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    path = _tiny().save(folder / "tiny.npz")
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    return path, manifest


def _load_or_workload_error(path):
    try:
        return Workload.load(path)
    except WorkloadError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        return None


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(data=st.data())
def test_fuzz_mutated_manifests_only_raise_workload_errors(valid_file, data):
    path, manifest = valid_file
    m = json.loads(json.dumps(manifest))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        spots = list(_paths(m))
        if not spots:
            break
        where, key = data.draw(st.sampled_from(spots), label="where")
        target = m
        for k in where:
            target = target[k]
        if data.draw(st.booleans(), label="drop") and isinstance(target, dict):
            del target[key]
        else:
            target[key] = data.draw(_ODD_VALUES, label="value")
    bad = path.with_name("mutated.npz")
    _rewrite(path, bad, lambda item, raw: json.dumps(m).encode() if item == "manifest.json" else raw)
    loaded = _load_or_workload_error(bad)
    if loaded is not None:  # accepted: then exactly as written, nothing coerced or ignored
        again = loaded.save(path.with_name("again.npz"))
        with zipfile.ZipFile(again) as zf:
            saved = json.loads(zf.read("manifest.json"))
        m.setdefault("meta", {})
        for entry in m["layers"]:
            entry.setdefault("meta", {})
        assert json.dumps(saved, sort_keys=True) == json.dumps(m, sort_keys=True)


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(data=st.data())
def test_fuzz_corrupted_archive_bytes_only_raise_workload_errors(valid_file, data):
    path, _ = valid_file
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[:data.draw(st.integers(0, len(raw) - 1), label="length")]
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        if raw:
            k = data.draw(st.integers(0, len(raw) - 1), label="offset")
            raw[k] ^= data.draw(st.integers(1, 255), label="xor")
    bad = path.with_name("corrupted.npz")
    bad.write_bytes(bytes(raw))
    _load_or_workload_error(bad)


# ----------------------------------------------------------------------------- Ctrl-C around the temporary file
@pytest.fixture(autouse=True)
def _sigint_raises():
    """SIGINT raises KeyboardInterrupt in these tests even where the suite runs with SIGINT ignored (a background
    job of a non-interactive shell inherits SIG_IGN, and Python then installs no handler)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _ctrl_c() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT: Python raises KeyboardInterrupt at its next chance


def test_ctrl_c_just_after_the_temporary_file_is_created_leaves_nothing(tmp_path, monkeypatch):
    import tempfile

    from workloads import atomic

    real = tempfile.mkstemp

    def mkstemp_then_ctrl_c(*args, **kwargs):
        made = real(*args, **kwargs)
        _ctrl_c()
        return made

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_write(tmp_path / "w.npz") as fh:
            fh.write(b"data")
    assert list(tmp_path.iterdir()) == []


def test_second_ctrl_c_during_cleanup_still_removes_the_temporary_file(tmp_path, monkeypatch):
    from pathlib import Path

    from workloads import atomic

    real = Path.unlink

    def unlink_after_ctrl_c(self, *args, **kwargs):
        _ctrl_c()
        return real(self, *args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_write(tmp_path / "w.npz") as fh:
            fh.write(b"half")
            monkeypatch.setattr(Path, "unlink", unlink_after_ctrl_c)
            raise KeyboardInterrupt  # the first Ctrl-C
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_umask_is_restored_after_a_ctrl_c_while_reading_it(tmp_path, monkeypatch):
    from workloads import atomic

    before = os.umask(0o022)
    os.umask(before)
    real, calls = os.umask, []

    def umask_then_ctrl_c(mask):
        calls.append(mask)
        old = real(mask)
        if len(calls) == 1:
            _ctrl_c()
        return old

    monkeypatch.setattr(atomic.os, "umask", umask_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_write(tmp_path / "w.npz") as fh:
            fh.write(b"whole")
    monkeypatch.undo()
    now = os.umask(before)
    assert now == before and list(tmp_path.iterdir()) == []
