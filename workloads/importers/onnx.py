"""ONNX models -> Workloads: the graph and initializers through ``onnx``, activations through ``onnxruntime``.

Layers: ``Conv`` (incl. grouped / depthwise), ``Gemm``, ``MatMul`` and ``QLinearConv``. Every layer's input
tensors are captured by running an instrumented copy of the model (each captured tensor added as a graph
output) on the given inputs.

* Float operands are quantized with per-layer *dynamic fixed point*: a power-of-two scale ``2^-f`` chosen from
  the tensor's largest magnitude so that it fits ``bits`` bits (unsigned if the tensor has no negative value,
  e.g. after a ReLU, signed otherwise).
* Quantized operands keep their integers with the zero point removed: ``QLinearConv`` inputs, and QDQ
  models (an operand produced by ``DequantizeLinear``: its integer input minus its zero point).

The layer's precision is the smallest that holds the operand's possible range (e.g. a uint8 tensor with zero
point 128 becomes signed 8-bit, with zero point 0 unsigned 8-bit). Layer meta records ``act_scale`` and
``weight_scale`` (real = integer x scale; a list for per-channel weights) and, for QLinearConv, the output
requantization (``bias``, ``out_scale``, ``out_zero_point``); :func:`requantize` applies it.

Needs the ``onnx`` extra: ``pip install -e '.[onnx]'`` (onnx, onnxruntime; Pillow for :func:`image_inputs`). A file
that is not a well-formed ONNX model, or a graph the importer cannot read, raises one WorkloadError naming the file
(and the node).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
from pathlib import Path

import numpy as np

from ..layer import MAX_BITS, Layer, WorkloadError
from ..quantize import dfp_format
from ..workload import Workload, _brief
from . import ONNX_INSTALL

LAYER_OPS = ("Conv", "Gemm", "MatMul", "QLinearConv")


def _require(*modules: str) -> None:
    missing = [m for m in ("onnx", "onnxruntime", *modules) if importlib.util.find_spec(m) is None]
    if missing:
        raise WorkloadError(f"importing ONNX models needs the package(s) {', '.join(missing)}: {ONNX_INSTALL}")


# what a malformed graph (a node without its inputs, a tensor of the wrong size, ...) raises while it is read
_GRAPH_ERRORS = (ValueError, TypeError, IndexError, KeyError, AttributeError, ZeroDivisionError, OverflowError,
                 MemoryError)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _load(model_path: Path, *, external_data: bool = True):
    """The ModelProto of a file; a WorkloadError naming it if it is missing or not an ONNX model."""
    import onnx

    if not model_path.is_file():
        raise WorkloadError(f"{model_path}: no such ONNX model file")
    try:
        model = onnx.load(str(model_path), load_external_data=external_data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, missing external data, ...
        raise WorkloadError(f"{model_path}: not an ONNX model ({_brief(exc)})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise WorkloadError(f"{model_path}: not an ONNX model (no graph nodes)")
    return model


# ----------------------------------------------------------------------------- quantization
def dfp_quantize(x: np.ndarray, bits: int, signed: bool | None = None) -> tuple[np.ndarray, int, bool]:
    """Dynamic fixed point (:func:`workloads.quantize.dfp_format`): ``q = round(x * 2^f)`` with the largest ``f``
    such that max|x| fits ``bits`` bits. Returns (q int32, f, signed); ``signed`` defaults to "x has a negative
    value"."""
    x = np.asarray(x, dtype=np.float64)
    if signed is None:
        signed = bool(x.size and x.min() < 0)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not math.isfinite(peak):
        raise ValueError(f"dfp_quantize: values must be finite, got a peak of {peak}")
    fmt = dfp_format(peak, bits, signed)
    return fmt.quantize(x).astype(np.int32), fmt.frac_bits, signed


def _bits_for(lo: int, hi: int) -> tuple[int, bool]:
    """Smallest (bits, signed) holding every integer of [lo, hi]."""
    if lo >= 0:
        return max(1, int(hi).bit_length()), False
    bits = 2
    while -(1 << (bits - 1)) > lo or (1 << (bits - 1)) - 1 < hi:
        bits += 1
    return bits, True


def _int_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


# ----------------------------------------------------------------------------- graph helpers
class _Graph:
    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.producer = {out: node for node in self.graph.node for out in node.output}
        for node in self.graph.node:  # Constant nodes act as initializers
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        self.init[node.output[0]] = numpy_helper.to_array(a.t)

    def const(self, name: str) -> np.ndarray | None:
        return self.init.get(name) if name else None


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Operand:
    """One multiplicand of a layer: the tensor name to read and, for quantized tensors, scale and zero point."""

    def __init__(self, name: str, scale=None, zero_point=None, axis: int | None = None):
        self.name, self.scale, self.zero_point, self.axis = name, scale, zero_point, axis

    @property
    def quantized(self) -> bool:
        return self.scale is not None


def _operand(g: _Graph, name: str) -> _Operand:
    """Follow a DequantizeLinear producer back to its integer tensor (QDQ models)."""
    node = g.producer.get(name)
    if node is not None and node.op_type == "DequantizeLinear":
        scale = g.const(node.input[1])
        zp = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return _Operand(node.input[0], scale, zp, _attrs(node).get("axis", 1))
    return _Operand(name)


def _capture(model_path: Path, g: _Graph, names: list[str], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an instrumented copy of the model that outputs every tensor in ``names``."""
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(g.model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        infos = {vi.name: vi for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    except Exception:  # noqa: BLE001 - shape inference is best effort
        infos = {}
    present = {o.name for o in model.graph.output}
    wanted = [n for n in dict.fromkeys(names) if n not in g.init]
    for n in wanted:
        if n in present:
            continue
        vi = onnx.ValueInfoProto()
        if n in infos:
            vi.CopyFrom(infos[n])
        else:
            vi.name = n
        model.graph.output.append(vi)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints "EP Error ..." before a retry
            session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise WorkloadError(f"{model_path}: onnxruntime cannot load the model ({_first_line(exc)})") from None
    feeds = {}
    for inp in session.get_inputs():
        if inp.name not in inputs:
            raise WorkloadError(f"{model_path}: no value given for model input {inp.name!r} "
                                f"(inputs: {[i.name for i in session.get_inputs()]})")
        feeds[inp.name] = np.asarray(inputs[inp.name])
    extra = set(inputs) - set(feeds)
    if extra:
        raise WorkloadError(f"{model_path}: {sorted(extra)} are not inputs of the model")
    out_names = [o.name for o in session.get_outputs()]
    try:
        values = session.run(out_names, feeds)
    except Exception as exc:  # noqa: BLE001
        raise WorkloadError(f"{model_path}: onnxruntime failed to run the model ({_first_line(exc)})") from None
    captured = dict(zip(out_names, values))
    captured.update({n: v for n, v in g.init.items()})
    captured.update(feeds)
    return captured


# ----------------------------------------------------------------------------- operand -> integers
def _integers(op: _Operand, value: np.ndarray, bits: int, channel_axis: int | None = None):
    """(ints, bits, signed, scale) of an operand value; quantized operands keep their integers."""
    value = np.asarray(value)
    if op.quantized:
        if not np.issubdtype(value.dtype, np.integer):
            raise WorkloadError(f"tensor {op.name!r}: expected integers, got {value.dtype}")
        zp = np.zeros(1, np.int64) if op.zero_point is None else np.asarray(op.zero_point, np.int64)
        scale = np.asarray(op.scale, np.float64)
        ints = value.astype(np.int64)
        if zp.size > 1 or scale.size > 1:
            if channel_axis is None:
                raise WorkloadError(f"tensor {op.name!r}: per-channel quantization of an activation is not supported")
            shape = [1] * ints.ndim
            shape[channel_axis] = -1
            zp_b = zp.reshape(shape) if zp.size > 1 else zp.reshape(())
            ints = ints - zp_b
        else:
            ints = ints - int(zp.reshape(-1)[0])
        lo, hi = _int_range(value.dtype)
        zmin, zmax = int(zp.min()), int(zp.max())
        nbits, signed = _bits_for(lo - zmax, hi - zmin)
        if nbits > MAX_BITS:
            raise WorkloadError(f"tensor {op.name!r}: {value.dtype} values need {nbits} bits (> {MAX_BITS})")
        scale_meta = float(scale.reshape(-1)[0]) if scale.size == 1 else [float(s) for s in scale.reshape(-1)]
        return ints.astype(np.int32), nbits, signed, scale_meta
    if not np.issubdtype(value.dtype, np.floating):
        raise WorkloadError(f"tensor {op.name!r}: expected a float tensor, got {value.dtype}")
    q, frac, signed = dfp_quantize(value, bits)
    return q, bits, signed, 2.0 ** -frac


def _conv_padding(attrs: dict, in_hw: tuple[int, int], kernel: tuple[int, int], stride: int, where: str):
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise WorkloadError(f"{where}: only 2-D convolutions are supported (pads {pads})")
        top, left, bottom, right = pads
        return top, bottom, left, right
    if auto == "VALID":
        return 0, 0, 0, 0
    out = []
    for size, k in zip(in_hw, kernel):
        o = -(-size // stride)
        total = max(0, (o - 1) * stride + k - size)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out[0][0], out[0][1], out[1][0], out[1][1]


def _stride(attrs: dict, where: str) -> int:
    strides = list(attrs.get("strides", [1, 1]))
    if len(set(strides)) != 1:
        raise WorkloadError(f"{where}: unequal strides {strides} are not supported")
    dil = list(attrs.get("dilations", [1, 1]))
    if any(d != 1 for d in dil):
        raise WorkloadError(f"{where}: dilated convolutions (dilations {dil}) are not supported")
    return int(strides[0])


# ----------------------------------------------------------------------------- layers
def _conv_layers(node, g: _Graph, values: dict, bits: int, batch_names) -> list[Layer]:
    where = f"node {node.name or node.output[0]!r} ({node.op_type})"
    attrs = _attrs(node)
    qlinear = node.op_type == "QLinearConv"
    if qlinear:
        x_op = _Operand(node.input[0], g.const(node.input[1]), g.const(node.input[2]))
        w_op = _Operand(node.input[3], g.const(node.input[4]), g.const(node.input[5]), 0)
        bias_name = node.input[8] if len(node.input) > 8 else ""
        for i in (1, 2, 4, 5, 6, 7):
            if g.const(node.input[i]) is None:
                raise WorkloadError(f"{where}: scale / zero point input {node.input[i]!r} must be a constant")
    else:
        x_op, w_op = _operand(g, node.input[0]), _operand(g, node.input[1])
        bias_name = node.input[2] if len(node.input) > 2 else ""
    x = values[x_op.name]
    w_val = values[w_op.name]
    if x.ndim != 4 or w_val.ndim != 4:
        raise WorkloadError(f"{where}: only 2-D convolutions (NCHW input, KCRS weights) are supported")
    stride = _stride(attrs, where)
    groups = int(attrs.get("group", 1))
    padding = _conv_padding(attrs, x.shape[2:], w_val.shape[2:], stride, where)
    wq, wbits, wsigned, wscale = _integers(w_op, w_val, bits, channel_axis=0)
    layers = []
    for n, lname in batch_names(node, x.shape[0]):
        xq, abits, asigned, ascale = _integers(x_op, x[n:n + 1], bits)
        meta = {"op": node.op_type, "act_scale": ascale, "weight_scale": wscale}
        if qlinear:
            meta["out_scale"] = float(np.asarray(g.const(node.input[6])).reshape(-1)[0])
            zp_out = g.const(node.input[7])
            meta["out_zero_point"] = int(np.asarray(zp_out).reshape(-1)[0])
            meta["out_dtype"] = str(np.asarray(zp_out).dtype)
            if bias_name:
                meta["bias"] = [int(b) for b in np.asarray(values[bias_name]).reshape(-1)]
        layers.append(Layer.conv(lname, xq[0], wq, stride=stride, padding=padding, groups=groups, act_bits=abits,
                                 weight_bits=wbits, act_signed=asigned, weight_signed=wsigned, meta=meta))
    return layers


def _matrix_layers(node, g: _Graph, values: dict, bits: int, batch_names) -> list[Layer]:
    """Gemm -> one fc layer per row of A; MatMul -> one GEMM over the tokens of each leading index."""
    where = f"node {node.name or node.output[0]!r} ({node.op_type})"
    attrs = _attrs(node)
    a_op, b_op = _operand(g, node.input[0]), _operand(g, node.input[1])
    a, b = np.asarray(values[a_op.name]), np.asarray(values[b_op.name])
    if node.op_type == "Gemm":
        if attrs.get("transA", 0):
            a = a.T
        if not attrs.get("transB", 0):
            b = b.T  # -> (K, C)
        bq, bbits, bsigned, bscale = _integers(b_op, b, bits, channel_axis=0)
        layers = []
        for n, lname in batch_names(node, a.shape[0]):
            aq, abits, asigned, ascale = _integers(a_op, a[n], bits)
            layers.append(Layer.fc(lname, aq, bq, act_bits=abits, weight_bits=bbits, act_signed=asigned,
                                   weight_signed=bsigned, meta={"op": "Gemm", "act_scale": ascale,
                                                                "weight_scale": bscale}))
        return layers
    if b.ndim != 2:
        raise WorkloadError(f"{where}: MatMul with a {b.ndim}-D right operand is not supported")
    if a.ndim < 2:
        raise WorkloadError(f"{where}: MatMul with a 1-D left operand is not supported")
    bq, bbits, bsigned, bscale = _integers(b_op, b.T, bits, channel_axis=0)
    lead = a.reshape(-1, *a.shape[-2:])
    layers = []
    for n, lname in batch_names(node, lead.shape[0]):
        aq, abits, asigned, ascale = _integers(a_op, lead[n], bits)
        layers.append(Layer.gemm(lname, aq, bq, act_bits=abits, weight_bits=bbits, act_signed=asigned,
                                 weight_signed=bsigned, meta={"op": "MatMul", "act_scale": ascale,
                                                              "weight_scale": bscale}))
    return layers


def requantize(layer: Layer, accumulators: np.ndarray) -> np.ndarray:
    """A QLinearConv layer's output integers from its accumulators (as onnxruntime: float scale, round half even,
    saturate to the output type)."""
    meta = layer.meta
    if "out_scale" not in meta:
        raise WorkloadError(f"layer {layer.name!r} has no output quantization (not a QLinearConv)")
    acc = np.asarray(accumulators, np.int64)
    if "bias" in meta:
        acc = acc + np.asarray(meta["bias"], np.int64).reshape(-1, *([1] * (acc.ndim - 1)))
    ws = np.asarray(meta["weight_scale"], np.float32).reshape(-1, *([1] * (acc.ndim - 1)))
    mult = (np.float32(meta["act_scale"]) * ws / np.float32(meta["out_scale"])).astype(np.float32)
    y = np.rint(acc.astype(np.float32) * mult) + meta["out_zero_point"]
    lo, hi = _int_range(np.dtype(meta.get("out_dtype", "uint8")))
    return np.clip(y, lo, hi).astype(np.int64)


def import_onnx(model_path: str | Path, inputs: dict[str, np.ndarray], *, bits: int = 8,
                name: str | None = None) -> Workload:
    """Every Conv / Gemm / MatMul / QLinearConv of ``model_path`` on ``inputs`` (model input name -> array).

    A batch of N samples gives N layers per node, named ``<node>`` for one sample and ``<node>@<n>`` otherwise.
    ``bits`` (8 or 16, any of 2..16) is the precision of dynamic fixed point for float operands.
    """
    _require()
    model_path = Path(model_path)
    if not 2 <= bits <= MAX_BITS:
        raise WorkloadError(f"import_onnx: bits ({bits}) must be in 2..{MAX_BITS}")
    model = _load(model_path)
    try:
        g = _Graph(model)
        nodes = [n for n in g.graph.node if n.op_type in LAYER_OPS]
        needed = []
        for node in nodes:
            if node.op_type == "QLinearConv":
                if len(node.input) < 8:
                    raise WorkloadError(f"node {node.name or node.output[0]!r} (QLinearConv) has {len(node.input)} "
                                        "inputs (expected 8 or 9)")
                needed += [node.input[0], node.input[3]] + ([node.input[8]] if len(node.input) > 8 else [])
            else:
                if len(node.input) < 2:
                    raise WorkloadError(f"node {node.name or node.output[0]!r} ({node.op_type}) has "
                                        f"{len(node.input)} input(s) (expected at least 2)")
                needed += [_operand(g, node.input[0]).name, _operand(g, node.input[1]).name]
    except WorkloadError as exc:
        raise WorkloadError(f"{model_path}: {exc}") from None
    except _GRAPH_ERRORS as exc:
        raise WorkloadError(f"{model_path}: malformed graph ({_brief(exc)})") from None
    if not nodes:
        raise WorkloadError(f"{model_path}: no Conv, Gemm, MatMul or QLinearConv node to import")
    try:
        values = _capture(model_path, g, [n for n in needed if n], inputs)
    except WorkloadError:
        raise
    except _GRAPH_ERRORS as exc:  # e.g. a tensor name that is not UTF-8
        raise WorkloadError(f"{model_path}: malformed graph ({_brief(exc)})") from None

    used: set[str] = set()

    def batch_names(node, count: int):
        base = node.name or node.output[0]
        out = []
        for n in range(count):
            lname = base if count == 1 else f"{base}@{n}"
            while lname in used:
                lname += "_"
            used.add(lname)
            out.append((n, lname))
        return out

    layers: list[Layer] = []
    for node in nodes:
        where = f"node {node.name or (node.output[0] if node.output else '?')!r} ({node.op_type})"
        try:
            if node.op_type in ("Conv", "QLinearConv"):
                layers += _conv_layers(node, g, values, bits, batch_names)
            else:
                layers += _matrix_layers(node, g, values, bits, batch_names)
        except WorkloadError as exc:
            message = str(exc)
            raise WorkloadError(f"{model_path}: {message if message.startswith('node ') else f'{where}: {message}'}"
                                ) from None
        except _GRAPH_ERRORS as exc:
            raise WorkloadError(f"{model_path}: {where} cannot be imported ({_brief(exc)})") from None
    meta = {"origin": "onnx", "model": model_path.name, "bits": bits,
            "quantization": f"float operands: per-layer dynamic fixed point, {bits} bits; "
                            "quantized operands: their integers, zero points removed",
            "inputs": {k: list(np.shape(v)) for k, v in inputs.items()}}
    return Workload(name or model_path.stem, layers, meta)


def image_inputs(model_path: str | Path, image_paths: list[str | Path]) -> dict[str, np.ndarray]:
    """Feeds for a one-input image model (NCHW) from image files, resized (bilinear) to the model's H x W.

    Float inputs get ``pixel / 255``, uint8 inputs the pixels, int8 inputs ``pixel - 128``; 1-channel inputs
    get the grayscale image. (Model-specific normalisation is not known to ONNX: pass arrays to
    :func:`import_onnx` for anything else.)
    """
    _require("PIL")
    import onnx
    from PIL import Image

    inp, (c, h, w) = _image_input(Path(model_path))
    ttype = inp.type.tensor_type
    pixels = []
    for p in image_paths:
        try:
            with Image.open(p) as im:
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except OSError as exc:
            raise WorkloadError(f"{p}: cannot read the image ({exc})") from None
        pixels.append(arr.reshape(h, w, c).transpose(2, 0, 1))
    batch = np.stack(pixels)
    try:
        elem = onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type)
    except (KeyError, ValueError, TypeError):
        raise WorkloadError(f"{model_path}: input {inp.name!r} has an unknown element type {ttype.elem_type}") from None
    if elem == np.uint8:
        return {inp.name: batch}
    if elem == np.int8:
        return {inp.name: (batch.astype(np.int16) - 128).astype(np.int8)}
    return {inp.name: (batch.astype(np.float32) / 255.0).astype(elem)}


def _image_input(model_path: Path):
    """(the model's one non-initializer input, its (C, H, W)) for an NCHW image model."""
    model = _load(model_path, external_data=False)
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    if len(graph_inputs) != 1:
        raise WorkloadError(f"{model_path}: image inputs need a model with one input, it has "
                            f"{[i.name for i in graph_inputs]}")
    inp = graph_inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inp.type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(d > 0 for d in dims[1:]):
        raise WorkloadError(f"{model_path}: input {inp.name!r} must be NCHW with fixed C, H, W, got {dims}")
    _, c, h, w = dims
    if c not in (1, 3):
        raise WorkloadError(f"{model_path}: input {inp.name!r} has {c} channels (expected 1 or 3)")
    return inp, (c, h, w)


def input_hw(model_path: str | Path) -> tuple[int, int]:
    """The (height, width) of an NCHW image model's input."""
    _require()
    _, (_, h, w) = _image_input(Path(model_path))
    return h, w
