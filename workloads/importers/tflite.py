"""Quantized TFLite models -> Workloads, with a bit-exact integer executor (needs the ``tflite`` extra).

The flatbuffer is read with the pure-Python ``tflite`` package (no TensorFlow) and executed with
:mod:`workloads.quantized_ops`, which reproduces TFLite's integer kernels exactly (every intermediate tensor
equals ai-edge-litert's; ``kernels`` chooses whose rounding: its default XNNPACK delegate, its optimized builtin
kernels or its reference kernels, see :data:`KERNELS`). Supported ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD,
AVERAGE_POOL_2D, RESHAPE, SQUEEZE, QUANTIZE, DEQUANTIZE; execution stops at SOFTMAX (its input is the logits).

Each CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED becomes one :class:`~workloads.Layer` named
``NN_conv`` / ``NN_dw`` / ``NN_fc`` (NN = its rank among those ops; ``@i`` appended for image i when several
images are imported), holding the layer's real input of that image and its weights with zero points removed:
``activations = a - a_zp``, ``weights = w - w_zp``, so ``layer_output(layer) + bias`` is the int32 accumulator
TFLite requantizes (:func:`layer_accumulators`). uint8 models give values in [-255, 255] (9-bit signed ranges);
int8 models [-255, 255] too in principle (a_zp in -128..127), mostly 8 bits. ``act_bits`` / ``weight_bits``
are the smallest widths that hold the layer's actual values (two's complement if any value is negative, else
unsigned for activations; weights are always signed); ``meta["act_dtype_bits"]`` gives the width the data type
allows. Depthwise layers have ``groups = C`` and weights (C·multiplier, 1, R, S).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import quantized_ops as q
from ..layer import Layer, WorkloadError
from ..reference_ops import layer_output
from ..workload import Workload, _brief
from . import TFLITE_INSTALL

try:
    import tflite as _tfl
except ImportError:  # pragma: no cover - exercised only without the extra
    _tfl = None

log = logging.getLogger(__name__)

_DTYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
# Which rounding each ai-edge-litert kernel set uses (see workloads.quantized_ops): "xnnpack" is its default
# interpreter (XNNPACK delegate), "optimized" the builtin kernels without delegates, "reference" BUILTIN_REF.
KERNELS = {
    "xnnpack": {"CONV_2D": "fp32", "DEPTHWISE_CONV_2D": "fp32", "FULLY_CONNECTED": "fp32", "ADD": "fp32"},
    "optimized": {"CONV_2D": "ruy", "FULLY_CONNECTED": "ruy"},
    "reference": {"FULLY_CONNECTED": "single"},
}
_LAYER_OPS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dw", "FULLY_CONNECTED": "fc"}
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", ("Padding", "StrideH", "StrideW", "FusedActivationFunction",
                                  "DilationHFactor", "DilationWFactor")),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", ("Padding", "StrideH", "StrideW", "FusedActivationFunction",
                                                     "DepthMultiplier", "DilationHFactor", "DilationWFactor")),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction",)),
    "ADD": ("AddOptions", ("FusedActivationFunction",)),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ("Padding", "StrideH", "StrideW", "FilterHeight", "FilterWidth",
                                          "FusedActivationFunction")),
}


def _require_tflite():
    if _tfl is None:
        raise WorkloadError(f"reading TFLite models needs the package tflite: {TFLITE_INSTALL}")
    return _tfl


# ----------------------------------------------------------------- flatbuffer reading
@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: np.ndarray  # float32, one per tensor or per channel; empty if not quantized
    zero_point: np.ndarray  # int64, same length as scale
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constant tensors (weights, bias)


@dataclass
class Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class TFLiteModel:
    path: str
    sha256: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]


def _np_or_empty(value, dtype) -> np.ndarray:
    return np.asarray(value if isinstance(value, np.ndarray) else [], dtype=dtype)


def _read_tensor(model, t, index: int) -> Tensor:
    dtype = _DTYPES.get(t.Type(), f"type{t.Type()}")
    quant = t.Quantization()
    scale = _np_or_empty(quant.ScaleAsNumpy(), np.float32) if quant else np.zeros(0, np.float32)
    zero = _np_or_empty(quant.ZeroPointAsNumpy(), np.int64) if quant else np.zeros(0, np.int64)
    shape = tuple(int(v) for v in _np_or_empty(t.ShapeAsNumpy(), np.int64))
    name = t.Name().decode()
    where = f"tensor {index} ({name!r})"
    if scale.size != zero.size:
        raise WorkloadError(f"{where}: {scale.size} quantization scale(s) but {zero.size} zero point(s)")
    if any(d < 0 for d in shape):
        raise WorkloadError(f"{where}: negative dimension in shape {list(shape)}")
    raw = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() < model.BuffersLength() else 0
    data = None
    if isinstance(raw, np.ndarray) and raw.size:
        if dtype not in _DTYPES.values():
            raise WorkloadError(f"{where}: constant data of unknown type {t.Type()}")
        want = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if raw.size != want:
            raise WorkloadError(f"{where}: {raw.size} data bytes for a {dtype} tensor of shape {list(shape)} "
                                f"({want} bytes)")
        data = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype)).reshape(shape)
    qdim = quant.QuantizedDimension() if quant else 0
    if scale.size > 1 and not 0 <= qdim < len(shape):
        raise WorkloadError(f"{where}: quantized dimension {qdim} outside its shape {list(shape)}")
    return Tensor(name, shape, dtype, scale, zero, qdim, data)


def _read_options(tfl, kind: str, op) -> dict:
    if kind not in _OPTIONS:
        return {}
    if op.BuiltinOptions() is None:
        raise WorkloadError(f"{kind} has no options")
    cls_name, fields = _OPTIONS[kind]
    table = op.BuiltinOptions()
    opts = getattr(tfl, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    out = {f: getattr(opts, f)() for f in fields}
    if "Padding" in out:
        if out["Padding"] not in (tfl.Padding.SAME, tfl.Padding.VALID):
            raise WorkloadError(f"{kind}: unknown padding {out['Padding']}")
        out["Padding"] = "SAME" if out["Padding"] == tfl.Padding.SAME else "VALID"
    if out["FusedActivationFunction"] not in _ACTIVATIONS:
        raise WorkloadError(f"{kind}: unknown fused activation {out['FusedActivationFunction']}")
    out["FusedActivationFunction"] = _ACTIVATIONS[out["FusedActivationFunction"]]
    for f in ("StrideH", "StrideW", "FilterHeight", "FilterWidth", "DepthMultiplier", "DilationHFactor",
              "DilationWFactor"):
        if f in out and out[f] < 1:
            raise WorkloadError(f"{kind}: {f} ({out[f]}) must be >= 1")
    return out


def _parse(tfl, path: str, buf: bytes, digest: str) -> TFLiteModel:
    model = tfl.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise WorkloadError(f"only single-subgraph models are supported (it has {model.SubgraphsLength()})")
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    tensors = [_read_tensor(model, graph.Tensors(i), i) for i in range(graph.TensorsLength())]
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if not 0 <= op.OpcodeIndex() < model.OperatorCodesLength():
            raise WorkloadError(f"operator {i}: opcode index {op.OpcodeIndex()} outside the "
                                f"{model.OperatorCodesLength()} operator codes")
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [int(v) for v in _np_or_empty(op.InputsAsNumpy(), np.int64)]
        outputs = [int(v) for v in _np_or_empty(op.OutputsAsNumpy(), np.int64)]
        bad = [t for t in inputs if not -1 <= t < len(tensors)] + [t for t in outputs if not 0 <= t < len(tensors)]
        if bad or not outputs or not inputs or inputs[0] < 0:
            raise WorkloadError(f"operator {i} ({kind}): tensor indices {inputs} -> {outputs} do not name tensors "
                                f"of the graph (0..{len(tensors) - 1})")
        try:
            options = _read_options(tfl, kind, op)
        except WorkloadError as exc:
            raise WorkloadError(f"operator {i}: {exc}") from None
        ops.append(Op(kind, inputs, outputs, options))
    graph_in = [int(v) for v in _np_or_empty(graph.InputsAsNumpy(), np.int64)]
    graph_out = [int(v) for v in _np_or_empty(graph.OutputsAsNumpy(), np.int64)]
    if not graph_in or not graph_out or not all(0 <= t < len(tensors) for t in graph_in + graph_out):
        raise WorkloadError(f"graph inputs {graph_in} / outputs {graph_out} do not name tensors of the graph")
    return TFLiteModel(path, digest, tensors, ops, graph_in, graph_out)


_PARSED: collections.OrderedDict[tuple[str, str], TFLiteModel] = collections.OrderedDict()  # (path, sha256) ->
_PARSED_MAX = 8


def read_tflite(model_path: str | os.PathLike) -> TFLiteModel:
    """Tensors (with constant data and quantization), operators and options of a .tflite file (parsed once per
    path and content: the file is read and hashed on every call, so an edited file is never served stale). A file
    that is not a well-formed TFLite model raises a WorkloadError naming it."""
    path = os.fspath(model_path)
    tfl = _require_tflite()
    try:
        buf = Path(path).read_bytes()
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    key = (path, hashlib.sha256(buf).hexdigest())
    if key in _PARSED:
        _PARSED.move_to_end(key)
        return _PARSED[key]
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise WorkloadError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier; {len(buf)} bytes)")
    try:
        model = _parse(tfl, path, buf, key[1])
    except WorkloadError as exc:
        raise WorkloadError(f"{path}: {exc}") from None
    except Exception as exc:  # the flatbuffer reader raises struct.error, TypeError, IndexError, ... on damage
        raise WorkloadError(f"{path}: damaged TFLite flatbuffer ({_brief(exc)})") from None
    _PARSED[key] = model
    while len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return model


def layer_shapes(model: TFLiteModel) -> dict[str, tuple[int, ...]]:
    """Each conv / depthwise / fc layer's name (``NN_kind``, as the importer names them) and its weights' shape in
    the Layer layout: (K, C, R, S), (C*multiplier, 1, R, S) or (K, C)."""
    out: dict[str, tuple[int, ...]] = {}
    for op in model.ops:
        if op.kind == "SOFTMAX":
            break
        if op.kind in _LAYER_OPS:
            name = f"{len(out):02d}_{_LAYER_OPS[op.kind]}"
            w = model.tensors[op.inputs[1]].shape if len(op.inputs) > 1 and op.inputs[1] >= 0 else ()
            if op.kind == "CONV_2D" and len(w) == 4:
                w = (w[0], w[3], w[1], w[2])
            elif op.kind == "DEPTHWISE_CONV_2D" and len(w) == 4:
                w = (w[3], 1, w[1], w[2])
            out[name] = tuple(w)
    return out


def layer_names(model_path: str | os.PathLike) -> list[str]:
    """The names the importer gives the model's conv / depthwise / fc layers, in order (``NN_kind``)."""
    return list(layer_shapes(read_tflite(model_path)))


def _check_override(model: TFLiteModel, override: dict, require_all: bool = False) -> None:
    """Every name of ``override`` is a layer of the model with weights of its shape (integers); with
    ``require_all`` every layer has weights in it."""
    shapes = layer_shapes(model)
    unknown = sorted(set(override) - set(shapes))
    if unknown:
        raise WorkloadError(f"{model.path}: weights given for {unknown}, which name no layer of the model "
                            f"(its layers: {', '.join(shapes)})")
    missing = [n for n in shapes if n not in override]
    if require_all and missing:
        raise WorkloadError(f"{model.path}: no weights given for layer(s) {missing} (renamed or dropped?); "
                            "every layer's weights are needed")
    for name, w in override.items():
        w = np.asarray(w)
        if not np.issubdtype(w.dtype, np.integer):
            raise WorkloadError(f"{model.path}: weights of layer {name!r} are {w.dtype}, not integers")
        if w.shape != shapes[name]:
            raise WorkloadError(f"{model.path}: weights of layer {name!r} have shape {list(w.shape)}, the model's "
                                f"have {list(shapes[name])}")


# ----------------------------------------------------------------- execution
@dataclass
class LayerCapture:
    """What one conv / depthwise / fc op computed: centred input and weights (Layer layout), accumulators."""

    name: str
    op_index: int
    kind: str
    activations: np.ndarray  # (C, H, W) or (C,), zero point removed
    weights: np.ndarray  # (K, C/groups, R, S) or (K, C), zero point removed
    stride: int
    padding: tuple[int, int, int, int]
    groups: int
    meta: dict
    accumulators: np.ndarray  # int32 accumulators with bias, before requantization: (K, OH, OW) or (K,)


def _input_tensor(model: TFLiteModel, image: np.ndarray) -> np.ndarray:
    t = model.tensors[model.inputs[0]]
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[None]
    if img.shape != t.shape or img.dtype != np.uint8:
        raise ValueError(f"{model.path}: expected a uint8 image of shape {t.shape[1:]}, got {img.dtype} "
                         f"{img.shape} (resize with workloads.datasets.load_image)")
    if t.dtype == "uint8":
        return img
    if t.dtype == "int8":  # the uint8 -> int8 convention of TFLite image models: pixel - 128
        return (img.astype(np.int16) - 128).astype(np.int8)
    raise WorkloadError(f"{model.path}: input type {t.dtype} is not supported (only quantized uint8 / int8 models)")


def _act_range(model: TFLiteModel, tensor: int, activation: str) -> tuple[int, int]:
    t = model.tensors[tensor]
    return q.activation_range(activation, float(t.scale[0]), int(t.zero_point[0]), t.dtype)


def _centred_weights(w: Tensor) -> np.ndarray:
    """w - w_zp, per-channel zero points along the tensor's quantized dimension (K of OHWI, O of 1HWO)."""
    zp = w.zero_point if w.zero_point.size else np.zeros(1, np.int64)
    shape = [1] * w.data.ndim
    if zp.size > 1:
        shape[w.quantized_dimension] = -1
    return w.data.astype(np.int64) - zp.reshape(shape)


def _stride_and_pads(opts: dict, h: int, w: int, r: int, s: int) -> tuple[int, tuple[int, int, int, int]]:
    if opts.get("DilationHFactor", 1) != 1 or opts.get("DilationWFactor", 1) != 1:
        raise WorkloadError("dilated convolutions are not supported")
    if opts["StrideH"] != opts["StrideW"]:
        raise WorkloadError(f"unequal strides {opts['StrideH']}x{opts['StrideW']} are not supported")
    stride = opts["StrideH"]
    return stride, q.padding_2d(opts["Padding"], h, w, r, s, stride, stride)


def _weighted_op(model: TFLiteModel, index: int, op: Op, vals: dict, name: str,
                 override: np.ndarray | None, rounding: str = "double") -> tuple[np.ndarray, LayerCapture]:
    """One CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: output tensor and its LayerCapture."""
    x_t, w_t = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
    out = op.outputs[0]
    o_t = model.tensors[out]
    bias = model.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    x_zp = int(x_t.zero_point[0])
    x = vals[op.inputs[0]].astype(np.int64) - x_zp
    per_channel = w_t.scale.size > 1
    act = op.options["FusedActivationFunction"]
    if op.kind == "FULLY_CONNECTED":
        w = _centred_weights(w_t) if override is None else np.asarray(override, np.int64)
        xs = x.reshape(-1, w.shape[1])
        acc = q.fc_accumulators(xs, w)
        float_product = not per_channel
        layer_w, layer_a, stride, pads, groups = w, xs[0], 1, (0, 0, 0, 0), 1
    else:
        xh = x[0]
        if op.kind == "CONV_2D":
            w = _centred_weights(w_t)  # (K, R, S, C)
            if override is not None:
                w = np.asarray(override, np.int64).transpose(0, 2, 3, 1)
            stride, pads = _stride_and_pads(op.options, *xh.shape[:2], *w.shape[1:3])
            acc = q.conv_accumulators(xh, w, (stride, stride), pads)
            layer_w, groups = w.transpose(0, 3, 1, 2), 1
        else:
            w = _centred_weights(w_t)[0]  # (R, S, C*mult)
            if override is not None:
                w = np.asarray(override, np.int64)[:, 0].transpose(1, 2, 0)
            stride, pads = _stride_and_pads(op.options, *xh.shape[:2], *w.shape[:2])
            acc = q.depthwise_accumulators(xh, w, (stride, stride), pads, op.options["DepthMultiplier"])
            layer_w, groups = w.transpose(2, 0, 1)[:, None], xh.shape[2]
        layer_a = xh.transpose(2, 0, 1)
        float_product = x_t.dtype == "uint8"
    mult, shift = q.conv_multipliers(float(x_t.scale[0]), w_t.scale, float(o_t.scale[0]),
                                     float_product=float_product, rounding=rounding)
    lo, hi = _act_range(model, out, act)
    total = acc if bias is None else acc + bias.astype(np.int64)
    scale = q.fp32_scales(float(x_t.scale[0]), w_t.scale, float(o_t.scale[0]))
    result = q.requantize(total, mult, shift, int(o_t.zero_point[0]), lo, hi, rounding=rounding, scale=scale)
    meta = {
        "source": "tflite", "op": op.kind, "op_index": index, "tflite_name": o_t.name, "input_dtype": x_t.dtype,
        "input_scale": float(x_t.scale[0]), "input_zero_point": x_zp,
        "weight_scale": [float(v) for v in w_t.scale], "weight_zero_point": [int(v) for v in w_t.zero_point],
        "output_scale": float(o_t.scale[0]), "output_zero_point": int(o_t.zero_point[0]),
        "output_multiplier": [int(v) for v in mult], "output_shift": [int(v) for v in shift],
        "activation": act, "act_min": int(lo), "act_max": int(hi),
        "bias": None if bias is None else [int(v) for v in bias], "output_shape": list(o_t.shape),
        "rounding": rounding, "fp32_scale": [float(v) for v in scale],
    }
    chw = total.reshape(-1) if op.kind == "FULLY_CONNECTED" else total.transpose(2, 0, 1)
    capture = LayerCapture(name, index, _LAYER_OPS[op.kind], layer_a, layer_w, stride, pads, groups, meta, chw)
    return result.reshape(o_t.shape).astype(o_t.dtype), capture


def _simple_op(model: TFLiteModel, op: Op, vals: dict, rounding: str = "double") -> np.ndarray:
    ins = [model.tensors[i] for i in op.inputs]
    o_t = model.tensors[op.outputs[0]]
    x = vals.get(op.inputs[0])
    if op.kind == "ADD":
        a, b = ins
        lo, hi = _act_range(model, op.outputs[0], op.options["FusedActivationFunction"])
        y = q.add(x, vals[op.inputs[1]], scale1=float(a.scale[0]), zp1=int(a.zero_point[0]),
                  scale2=float(b.scale[0]), zp2=int(b.zero_point[0]), out_scale=float(o_t.scale[0]),
                  out_zp=int(o_t.zero_point[0]), act_min=lo, act_max=hi, rounding=rounding)
    elif op.kind == "AVERAGE_POOL_2D":
        o = op.options
        lo, hi = _act_range(model, op.outputs[0], o["FusedActivationFunction"])
        pads = q.padding_2d(o["Padding"], x.shape[1], x.shape[2], o["FilterHeight"], o["FilterWidth"],
                            o["StrideH"], o["StrideW"])
        y = q.average_pool(x[0], filter_hw=(o["FilterHeight"], o["FilterWidth"]),
                           stride=(o["StrideH"], o["StrideW"]), pads=pads, act_min=lo, act_max=hi)
    elif op.kind in ("RESHAPE", "SQUEEZE"):
        y = x
    elif op.kind == "QUANTIZE" and ins[0].dtype == "float32":
        y = q.quantize(x, float(o_t.scale[0]), int(o_t.zero_point[0]), o_t.dtype)
    elif op.kind == "QUANTIZE":
        y = q.requantize_tensor(x, in_scale=float(ins[0].scale[0]), in_zp=int(ins[0].zero_point[0]),
                                out_scale=float(o_t.scale[0]), out_zp=int(o_t.zero_point[0]), dtype=o_t.dtype)
    elif op.kind == "DEQUANTIZE":
        y = q.dequantize(x, float(ins[0].scale[0]), int(ins[0].zero_point[0]))
    else:
        raise WorkloadError(f"TFLite op {op.kind} is not supported")
    return np.asarray(y).reshape(o_t.shape).astype(o_t.dtype)


# what running a damaged or unusual graph can raise inside the integer ops (shapes that do not fit, ...)
_OP_ERRORS = (ValueError, TypeError, IndexError, KeyError, AttributeError, ZeroDivisionError, OverflowError,
              FloatingPointError, MemoryError)


def _execute(model: TFLiteModel, image: np.ndarray, *, kernels: str = "xnnpack", weights_override: dict | None = None,
             on_layer: Callable[[LayerCapture], None] | None = None) -> tuple[dict[int, np.ndarray], int]:
    """Run the graph on one image; returns (tensor values, index of the logits tensor). ``weights_override`` maps
    layer names (``NN_kind``) to weights in the Layer layout; a name that is not a layer of the model, or weights
    of another shape, raise a WorkloadError. An operator the graph cannot run raises a WorkloadError naming it."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {sorted(KERNELS)}, got {kernels!r}")
    override = dict(weights_override or {})
    if override:
        _check_override(model, override)
    vals = {i: t.data for i, t in enumerate(model.tensors) if t.data is not None}
    vals[model.inputs[0]] = _input_tensor(model, image)
    logits = model.outputs[0]
    n_layers = 0
    for index, op in enumerate(model.ops):
        if op.kind == "SOFTMAX":
            logits = op.inputs[0]
            break
        unset = [t for t in op.inputs if t >= 0 and t not in vals]
        if unset:
            raise WorkloadError(f"{model.path}: operator {index} ({op.kind}) reads tensor(s) {unset}, which no "
                                "earlier operator writes")
        try:
            if op.kind in _LAYER_OPS:
                name = f"{n_layers:02d}_{_LAYER_OPS[op.kind]}"
                n_layers += 1
                rounding = KERNELS[kernels].get(op.kind, "double")
                vals[op.outputs[0]], capture = _weighted_op(model, index, op, vals, name, override.get(name), rounding)
                if on_layer is not None:
                    on_layer(capture)
            else:
                vals[op.outputs[0]] = _simple_op(model, op, vals, KERNELS[kernels].get(op.kind, "double"))
        except WorkloadError as exc:
            raise WorkloadError(f"{model.path}: operator {index} ({op.kind}): {exc}") from None
        except _OP_ERRORS as exc:
            raise WorkloadError(f"{model.path}: operator {index} ({op.kind}) cannot run ({_brief(exc)})") from None
    if logits not in vals:
        raise WorkloadError(f"{model.path}: the output tensor {logits} is never computed")
    return vals, logits


def run_tflite(model_path: str | os.PathLike, image_uint8_hwc: np.ndarray, *,
               kernels: str = "xnnpack") -> dict[int, np.ndarray]:
    """Execute the model with the integer ops on one uint8 HWC image at the model's input size: every
    computed tensor, by tensor index, shaped and typed as TFLite's (constants included, SOFTMAX not run).

    ``kernels`` picks whose rounding to reproduce (:data:`KERNELS`): ``"xnnpack"`` (ai-edge-litert's default
    interpreter), ``"optimized"`` (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``) or ``"reference"`` (``BUILTIN_REF``)."""
    vals, _ = _execute(read_tflite(model_path), image_uint8_hwc, kernels=kernels)
    return vals


def tflite_logits(model_path: str | os.PathLike, image_uint8_hwc: np.ndarray, *, kernels: str = "xnnpack",
                  weights_override: dict | None = None) -> np.ndarray:
    """The quantized logits (the SOFTMAX input, or the graph output) of one image, flattened."""
    vals, logits = _execute(read_tflite(model_path), image_uint8_hwc, kernels=kernels,
                            weights_override=weights_override)
    return vals[logits].reshape(-1)


def tflite_layer_accumulators(model_path: str | os.PathLike, image_uint8_hwc: np.ndarray, *,
                              kernels: str = "xnnpack") -> dict[str, np.ndarray]:
    """Each conv / depthwise / fc layer's int32 accumulators (bias included, before requantization) as the
    executor computed them, by layer name (``NN_kind``), channels first: (K, OH, OW) or (K,)."""
    out: dict[str, np.ndarray] = {}
    _execute(read_tflite(model_path), image_uint8_hwc, kernels=kernels,
             on_layer=lambda cap: out.__setitem__(cap.name, cap.accumulators))
    return out


# ----------------------------------------------------------------- workloads
def _width(lo: int, hi: int, signed: bool) -> int:
    if not signed:
        return max(1, int(hi).bit_length())
    return max(2, int(hi).bit_length() + 1, int(-lo - 1).bit_length() + 1)


def _capture_to_layer(cap: LayerCapture, suffix: str) -> Layer:
    a, w = cap.activations, cap.weights
    a_signed = bool(a.min() < 0)
    qmin, qmax = q.QRANGE[cap.meta["input_dtype"]]
    zp = cap.meta["input_zero_point"]
    a_dtype_bits = _width(qmin - zp, qmax - zp, qmin - zp < 0)
    meta = dict(cap.meta, act_dtype_bits=a_dtype_bits)
    kw = {"act_bits": _width(int(a.min()), int(a.max()), a_signed), "act_signed": a_signed,
          "weight_bits": _width(int(w.min()), int(w.max()), True), "weight_signed": True, "meta": meta}
    if cap.kind == "fc":
        return Layer.fc(cap.name + suffix, a, w, **kw)
    return Layer.conv(cap.name + suffix, a, w, stride=cap.stride, padding=cap.padding, groups=cap.groups, **kw)


def import_tflite(model_path: str | os.PathLike, images: np.ndarray, *, name: str | None = None,
                  kernels: str = "xnnpack") -> Workload:
    """A Workload of the model's conv / depthwise / fc layers on real images ((N, H, W, 3) or (H, W, 3) uint8
    at the model's input size). N = 1 gives layers ``NN_kind``; N > 1 one layer set per image, ``NN_kind@i``."""
    model = read_tflite(model_path)
    imgs = np.asarray(images)
    imgs = imgs[None] if imgs.ndim == 3 else imgs
    layers: list[Layer] = []
    for i, image in enumerate(imgs):
        suffix = f"@{i}" if len(imgs) > 1 else ""
        _execute(model, image, kernels=kernels,
                 on_layer=lambda cap, s=suffix: layers.append(_capture_to_layer(cap, s)))
    meta = {"source": "tflite", "model": Path(model.path).name, "sha256": model.sha256, "images": len(imgs),
            "kernels": kernels,
            "zero_points": "removed: activations = a - a_zp, weights = w - w_zp (per-channel zp along K)"}
    log.info("imported %s: %d layers from %d image(s)", model.path, len(layers), len(imgs))
    return Workload(name or Path(model.path).stem, layers, meta)


def layer_accumulators(layer: Layer, weights: np.ndarray | None = None) -> np.ndarray:
    """The int32 accumulators TFLite requantizes: ``layer_output(layer) + bias``, shaped (K, OH, OW) or (K,)."""
    acc = layer_output(layer, weights)
    bias = layer.meta.get("bias")
    if bias is None:
        return acc
    b = np.asarray(bias, np.int64)
    return acc + (b.reshape(-1, 1, 1) if acc.ndim == 3 else b)


def layer_requantized(layer: Layer, weights: np.ndarray | None = None) -> np.ndarray:
    """The layer's quantized output (TFLite's output tensor, channels first) from its accumulators."""
    m = layer.meta
    acc = layer_accumulators(layer, weights)
    shape = (-1, 1, 1) if acc.ndim == 3 else (-1,)
    mult = np.asarray(m["output_multiplier"], np.int64).reshape(shape)
    shift = np.asarray(m["output_shift"], np.int64).reshape(shape)
    scale = np.asarray(m["fp32_scale"], np.float32).reshape(shape)
    return q.requantize(acc, mult, shift, m["output_zero_point"], m["act_min"], m["act_max"],
                        rounding=m.get("rounding", "double"), scale=scale)


# ----------------------------------------------------------------- accuracy
def merge_samples(weights: dict[str, np.ndarray], where: str = "weights_override") -> dict[str, np.ndarray]:
    """Layer name -> weights with the per-input suffix ``@i`` dropped. The inputs' layer sets of one layer must
    carry the same weights (an import on several images does): different ones raise a WorkloadError naming
    the layer, since one run of the model has one weight set."""
    out: dict[str, np.ndarray] = {}
    first: dict[str, str] = {}
    for key, value in weights.items():
        base = key.partition("@")[0]
        if base not in out:
            out[base], first[base] = value, key
        elif np.shape(value) != np.shape(out[base]) or not np.array_equal(value, out[base]):
            raise WorkloadError(f"{where}: layer {base!r}: {key!r} carries different weights from {first[base]!r}; "
                                "one run of the model has one weight set (give every input's layer the same weights)")
    return out


def tflite_scores(model_path: str | os.PathLike, images: np.ndarray, *, weights_override: dict | None = None,
                  require_all: bool = False, kernels: str = "xnnpack") -> np.ndarray:
    """The quantized logits (int64, (N, outputs)) of images (N, H, W, 3) uint8 at the model's size, run with
    ``weights_override`` (layer name -> weights; ``require_all``: every layer of the model must be in it)."""
    model = read_tflite(model_path)
    override = dict(weights_override or {})
    _check_override(model, override, require_all)
    rows = []
    for image in np.asarray(images):
        vals, logits = _execute(model, image, kernels=kernels, weights_override=override)
        rows.append(vals[logits].reshape(-1))
    return np.stack(rows).astype(np.int64) if rows else np.zeros((0, 0), np.int64)


def evaluate_tflite(model_path: str | os.PathLike, images: np.ndarray, labels, *, label_offset: int = 1,
                    weights_override: dict[str, np.ndarray] | None = None, kernels: str = "xnnpack") -> dict:
    """Top-1 / top-5 accuracy of the integer ops on labelled images (N, H, W, 3) uint8 at the model's size.

    Output index = label + ``label_offset`` (1 for the 1001-class ImageNet models, 0 for CIFAR-10); outputs
    below the offset (background) are dropped. ``weights_override`` maps layer names (``NN_conv``, or
    ``NN_conv@i`` for the layer sets of several inputs, which must then carry the same weights) to weights in the
    Layer's layout with zero points removed (e.g. a pruned workload's); a name that is no layer of the model
    raises a WorkloadError."""
    model = read_tflite(model_path)
    override = merge_samples(weights_override or {})
    labels = np.asarray(labels, np.int64)
    top1 = top5 = 0
    for image, label in zip(np.asarray(images), labels, strict=True):
        vals, logits = _execute(model, image, kernels=kernels, weights_override=override)
        scores = vals[logits].reshape(-1)[label_offset:].astype(np.int64)
        order = np.argsort(-scores, kind="stable")
        top1 += int(order[0] == label)
        top5 += int(label in order[:5])
    n = len(labels)
    return {"top1": top1 / n if n else float("nan"), "top5": top5 / n if n else float("nan"), "n": n}
