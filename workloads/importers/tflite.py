"""Quantized TFLite models -> Workloads, with a bit-exact integer executor (needs the ``tflite`` extra).

The flatbuffer is read with the pure-Python ``tflite`` package (no TensorFlow) and executed with
:mod:`workloads.quantized_ops`, which reproduces TFLite's integer kernels exactly (every intermediate tensor
equals ai-edge-litert's; ``kernels`` chooses whose rounding: its default XNNPACK delegate, its optimized builtin
kernels or its reference kernels, see :data:`KERNELS`). Supported ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD,
AVERAGE_POOL_2D, RESHAPE, SQUEEZE, QUANTIZE, DEQUANTIZE; execution stops at SOFTMAX (its input is the logits).
Scoring (:func:`tflite_scores`, :func:`evaluate_tflite`) runs the images in batches, one per core at a time;
every image's logits are those of running it alone.

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
from concurrent.futures import ThreadPoolExecutor
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
    # what execution derives once per model: each layer op's requantization parameters and prepared weights,
    # which tensors each op reads for the last time, the batch size (see _op_info, _prepared_weights, _plan)
    cache: dict = field(default_factory=dict, repr=False, compare=False)


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


def _input_tensor(model: TFLiteModel, images: np.ndarray, batch: bool = False) -> np.ndarray:
    """The model's input tensor for one uint8 image (H, W, 3) or, ``batch``, for images (N, H, W, 3)."""
    t = model.tensors[model.inputs[0]]
    img = np.asarray(images)
    if img.ndim == 3:
        img = img[None]
    ok = img.shape == t.shape or (batch and img.ndim == len(t.shape) and img.shape[1:] == t.shape[1:])
    if not ok or img.dtype != np.uint8:
        raise ValueError(f"{model.path}: expected a uint8 image of shape {t.shape[1:]}, got {img.dtype} "
                         f"{img.shape} (resize with workloads.datasets.load_image)")
    if t.dtype == "uint8":
        return img
    if t.dtype == "int8":  # the uint8 -> int8 convention of TFLite image models: pixel - 128 (flip the top bit)
        return (img ^ np.uint8(128)).view(np.int8)
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


@dataclass(frozen=True)
class _OpInfo:
    """What a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED needs besides its weights (fixed by the model)."""

    x_zp: int
    x_bound: int  # the largest |x - x_zp| of the input type
    bias: np.ndarray | None  # the file's int32 bias
    multiplier: np.ndarray
    shift: np.ndarray
    scale: np.ndarray  # XNNPACK's float32 scales (one, or one per output channel)
    lo: int
    hi: int
    out_zp: int
    channel_scale: np.ndarray  # ``scale`` for every output channel (what the fused requantization reads)


def _op_info(model: TFLiteModel, index: int, op: Op, rounding: str) -> _OpInfo:
    key = ("info", index, rounding)
    if key not in model.cache:
        x_t, w_t, o_t = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]], model.tensors[op.outputs[0]]
        bias = model.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        x_zp = int(x_t.zero_point[0])
        # per-tensor uint8 and fc: the scale product in float32; per-channel (int8) conv: in double
        float_product = x_t.dtype == "uint8" if op.kind != "FULLY_CONNECTED" else w_t.scale.size <= 1
        mult, shift = q.conv_multipliers(float(x_t.scale[0]), w_t.scale, float(o_t.scale[0]),
                                         float_product=float_product, rounding=rounding)
        lo, hi = _act_range(model, op.outputs[0], op.options["FusedActivationFunction"])
        x_bound = q.input_bound(x_t.dtype, x_zp) if x_t.dtype in q.QRANGE else 1 << 62
        scale = q.fp32_scales(float(x_t.scale[0]), w_t.scale, float(o_t.scale[0]))
        channel_scale = np.full(o_t.shape[-1], scale[0], np.float32) if scale.size == 1 and o_t.shape else scale
        model.cache[key] = _OpInfo(x_zp, x_bound, bias, mult, shift, scale, lo, hi,
                                   int(o_t.zero_point[0]), channel_scale)
    return model.cache[key]


def _layer_weights(model: TFLiteModel, op: Op, override: np.ndarray | None) -> np.ndarray:
    """Centred int64 weights in the op's layout: CONV_2D (K, R, S, C), DEPTHWISE (R, S, C*mult), FC (K, C);
    ``override`` in the Layer layout."""
    if op.kind == "FULLY_CONNECTED":
        return _centred_weights(model.tensors[op.inputs[1]]) if override is None else np.asarray(override, np.int64)
    if op.kind == "CONV_2D":
        if override is None:
            return _centred_weights(model.tensors[op.inputs[1]])
        return np.asarray(override, np.int64).transpose(0, 2, 3, 1)
    if override is None:
        return _centred_weights(model.tensors[op.inputs[1]])[0]
    return np.asarray(override, np.int64)[:, 0].transpose(1, 2, 0)


def _prepared_weights(model: TFLiteModel, index: int, op: Op, info: _OpInfo, override: np.ndarray | None,
                      prepared: dict) -> tuple[np.ndarray, q.ConvWeights]:
    """(centred weights in the op's layout, the same prepared for accumulation): the file's are kept with the
    model, an override's in ``prepared`` (one call's)."""
    store = model.cache if override is None else prepared
    key = ("weights", index)
    if key not in store:
        w = _layer_weights(model, op, override)
        dw = op.kind == "DEPTHWISE_CONV_2D"
        cw = q.prepare_weights(w, info.bias, x_bound=info.x_bound, depthwise=dw,
                               depth_multiplier=op.options["DepthMultiplier"] if dw else 1)
        store[key] = w, cw
    return store[key]


def _batched(shape: tuple[int, ...], n: int) -> tuple[int, ...]:
    """A tensor's shape for a batch of n images (its first dimension is the batch's: see _plan)."""
    return tuple(shape) if n == 1 else (n, *shape[1:])


def _weighted_op(model: TFLiteModel, index: int, op: Op, vals: dict, name: str, override: np.ndarray | None,
                 rounding: str, prepared: dict, capture: bool) -> tuple[np.ndarray, LayerCapture | None]:
    """One CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED on a batch: output tensor and (``capture``, one image)
    its LayerCapture."""
    x_t, w_t = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
    o_t = model.tensors[op.outputs[0]]
    info = _op_info(model, index, op, rounding)
    w, cw = _prepared_weights(model, index, op, info, override, prepared)
    x = vals[op.inputs[0]]
    n = x.shape[0]
    # XNNPACK's float requantization of float32 accumulators: bias, scaling and rounding in one pass
    fused = rounding == "fp32" and cw.dtype == np.float32 and o_t.dtype in ("uint8", "int8")
    if op.kind == "FULLY_CONNECTED":
        acc = q.fc_nhwc(x.reshape(-1, w.shape[1]), info.x_zp, cw, add_bias=not fused)
        stride, pads = 1, (0, 0, 0, 0)
    else:
        if x.ndim != 4:
            raise WorkloadError(f"input tensor of shape {list(x.shape)} is not (N, H, W, C)")
        stride, pads = _stride_and_pads(op.options, *x.shape[1:3], *cw.kernel)
        conv = q.conv_nhwc if op.kind == "CONV_2D" else q.depthwise_nhwc
        acc = conv(x, info.x_zp, cw, (stride, stride), pads, add_bias=not fused)
    total = None
    if capture:  # the int32 accumulators, bias included (before requantize may overwrite acc)
        total = acc.astype(np.int64)
        if fused and cw.bias is not None:
            total += cw.bias.astype(np.int64)
    if fused:
        result = q.requantize_fp32(acc, info.channel_scale, info.out_zp, info.lo, info.hi, bias=cw.bias,
                                   out_dtype=o_t.dtype)
    else:
        result = q.requantize(acc, info.multiplier, info.shift, info.out_zp, info.lo, info.hi, rounding=rounding,
                              scale=info.scale, out_dtype=o_t.dtype, overwrite=True)
    result = result.reshape(_batched(o_t.shape, n))
    if not capture:
        return result, None
    xc = x.astype(np.int64) - info.x_zp
    if op.kind == "FULLY_CONNECTED":
        layer_a, layer_w, groups = xc.reshape(-1, w.shape[1])[0], w, 1
    elif op.kind == "CONV_2D":
        layer_a, layer_w, groups = xc[0].transpose(2, 0, 1), w.transpose(0, 3, 1, 2), 1
    else:
        layer_a, layer_w, groups = xc[0].transpose(2, 0, 1), w.transpose(2, 0, 1)[:, None], xc.shape[3]
    scale, mult, shift, bias = info.scale, info.multiplier, info.shift, info.bias
    meta = {
        "source": "tflite", "op": op.kind, "op_index": index, "tflite_name": o_t.name, "input_dtype": x_t.dtype,
        "input_scale": float(x_t.scale[0]), "input_zero_point": info.x_zp,
        "weight_scale": [float(v) for v in w_t.scale], "weight_zero_point": [int(v) for v in w_t.zero_point],
        "output_scale": float(o_t.scale[0]), "output_zero_point": int(o_t.zero_point[0]),
        "output_multiplier": [int(v) for v in mult], "output_shift": [int(v) for v in shift],
        "activation": op.options["FusedActivationFunction"], "act_min": int(info.lo), "act_max": int(info.hi),
        "bias": None if bias is None else [int(v) for v in bias], "output_shape": list(o_t.shape),
        "rounding": rounding, "fp32_scale": [float(v) for v in scale],
    }
    chw = total.reshape(-1) if op.kind == "FULLY_CONNECTED" else total[0].transpose(2, 0, 1)
    return result, LayerCapture(name, index, _LAYER_OPS[op.kind], layer_a, layer_w, stride, pads, groups, meta, chw)


def _simple_op(model: TFLiteModel, op: Op, vals: dict, n: int, rounding: str = "double") -> np.ndarray:
    ins = [model.tensors[i] for i in op.inputs]
    o_t = model.tensors[op.outputs[0]]
    x = vals.get(op.inputs[0])
    if op.kind == "ADD":
        a, b = ins
        lo, hi = _act_range(model, op.outputs[0], op.options["FusedActivationFunction"])
        y = q.add(x, vals[op.inputs[1]], scale1=float(a.scale[0]), zp1=int(a.zero_point[0]),
                  scale2=float(b.scale[0]), zp2=int(b.zero_point[0]), out_scale=float(o_t.scale[0]),
                  out_zp=int(o_t.zero_point[0]), act_min=lo, act_max=hi, rounding=rounding, out_dtype=o_t.dtype)
    elif op.kind == "AVERAGE_POOL_2D":
        o = op.options
        lo, hi = _act_range(model, op.outputs[0], o["FusedActivationFunction"])
        pads = q.padding_2d(o["Padding"], x.shape[1], x.shape[2], o["FilterHeight"], o["FilterWidth"],
                            o["StrideH"], o["StrideW"])
        y = q.average_pool(x, filter_hw=(o["FilterHeight"], o["FilterWidth"]),
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
    return np.asarray(y).reshape(_batched(o_t.shape, n)).astype(o_t.dtype, copy=False)


# what running a damaged or unusual graph can raise inside the integer ops (shapes that do not fit, ...)
_OP_ERRORS = (ValueError, TypeError, IndexError, KeyError, AttributeError, ZeroDivisionError, OverflowError,
              FloatingPointError, MemoryError)
_BATCH_BYTES = 16 << 20  # a batch's largest op touches about this much memory at most (im2col, accumulators, ...)
_BATCH_MAX = 256
# BLAS threads of the integer ops' matmuls (None: BLAS's own default). One: batches run in parallel instead (see
# THREADS), and on a machine whose cores are shared OpenBLAS's threads wait for one another (3-4x slower with two
# threads on two cores when another process keeps one busy).
BLAS_THREADS: int | None = 1
# Batches tflite_scores runs at once, each in its own thread (numpy, BLAS and the numba kernels release the GIL):
# None = one per available core (at most 8).
THREADS: int | None = None


def _threads() -> int:
    if THREADS is not None:
        return max(1, int(THREADS))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


@dataclass(frozen=True)
class _Plan:
    """Execution facts of a model: the tensors to drop after each op (when only the logits are wanted), and how
    many images a batch holds (1 if some computed tensor has no leading batch dimension of 1)."""

    frees: tuple[tuple[int, ...], ...]
    batch_size: int


def _plan(model: TFLiteModel) -> _Plan:
    if "plan" in model.cache:
        return model.cache["plan"]
    ops = []
    for op in model.ops:
        if op.kind == "SOFTMAX":
            keep = {op.inputs[0]}
            break
        ops.append(op)
    else:
        keep = set()
    keep |= set(model.outputs)
    last: dict[int, int] = {}
    for index, op in enumerate(ops):
        for t in op.inputs:
            if t >= 0 and model.tensors[t].data is None:
                last[t] = index
    frees = [[] for _ in ops]
    for t, index in last.items():
        if t not in keep:
            frees[index].append(t)
    computed = [t for op in ops for t in op.outputs]
    batchable = all(len(model.tensors[t].shape) >= 1 and model.tensors[t].shape[0] == 1
                    for t in [model.inputs[0], *computed])
    largest = 1  # bytes one image's op touches: input, float32 im2col / accumulators, output (int64 temporaries)
    for op in ops:
        x, y = (int(np.prod(model.tensors[t].shape[1:], dtype=np.int64)) for t in (op.inputs[0], op.outputs[0]))
        need = x + 5 * y if op.kind in _LAYER_OPS else 8 * (x + 3 * y)
        w = model.tensors[op.inputs[1]].shape if op.kind in _LAYER_OPS else ()
        if op.kind == "CONV_2D" and len(w) == 4:  # im2col: (OH·OW, R·S·C) float32
            need += 4 * y // max(w[0], 1) * w[1] * w[2] * w[3]
        largest = max(largest, need)
    size = max(1, min(_BATCH_MAX, _BATCH_BYTES // largest)) if batchable else 1
    model.cache["plan"] = plan = _Plan(tuple(tuple(f) for f in frees), size)
    return plan


def _check_kernels(kernels: str) -> None:
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {sorted(KERNELS)}, got {kernels!r}")


def _run(model: TFLiteModel, x: np.ndarray, *, kernels: str, override: dict, prepared: dict,
         on_layer: Callable[[LayerCapture], None] | None = None, keep_all: bool = True
         ) -> tuple[dict[int, np.ndarray], int]:
    """Run the graph on the input tensor x (a batch of n images: (n, H, W, C)); returns (tensor values, index of
    the logits tensor), every tensor shaped (n, ...) (TFLite's shape for n = 1). ``override``: checked layer
    weights by name; ``prepared``: their prepared forms, kept across the calls of one scoring run; ``keep_all``:
    keep every tensor, else drop each after its last reader. An operator the graph cannot run raises a
    WorkloadError naming it."""
    vals = {i: t.data for i, t in enumerate(model.tensors) if t.data is not None}
    vals[model.inputs[0]] = x
    n = x.shape[0]
    frees = None if keep_all else _plan(model).frees
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
        rounding = KERNELS[kernels].get(op.kind, "double")
        try:
            if op.kind in _LAYER_OPS:
                name = f"{n_layers:02d}_{_LAYER_OPS[op.kind]}"
                n_layers += 1
                vals[op.outputs[0]], capture = _weighted_op(model, index, op, vals, name, override.get(name),
                                                            rounding, prepared, on_layer is not None)
                if on_layer is not None:
                    on_layer(capture)
            else:
                vals[op.outputs[0]] = _simple_op(model, op, vals, n, rounding)
        except WorkloadError as exc:
            raise WorkloadError(f"{model.path}: operator {index} ({op.kind}): {exc}") from None
        except _OP_ERRORS as exc:
            raise WorkloadError(f"{model.path}: operator {index} ({op.kind}) cannot run ({_brief(exc)})") from None
        if frees is not None:
            for t in frees[index]:
                vals.pop(t, None)
    if logits not in vals:
        raise WorkloadError(f"{model.path}: the output tensor {logits} is never computed")
    return vals, logits


def _execute(model: TFLiteModel, image: np.ndarray, *, kernels: str = "xnnpack", weights_override: dict | None = None,
             on_layer: Callable[[LayerCapture], None] | None = None) -> tuple[dict[int, np.ndarray], int]:
    """Run the graph on one image; returns (tensor values, index of the logits tensor). ``weights_override`` maps
    layer names (``NN_kind``) to weights in the Layer layout; a name that is not a layer of the model, or weights
    of another shape, raise a WorkloadError. An operator the graph cannot run raises a WorkloadError naming it."""
    _check_kernels(kernels)
    override = dict(weights_override or {})
    if override:
        _check_override(model, override)
    with q.blas_threads(BLAS_THREADS):
        return _run(model, _input_tensor(model, image), kernels=kernels, override=override, prepared={},
                    on_layer=on_layer)


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
                  require_all: bool = False, kernels: str = "xnnpack", batch_size: int | None = None,
                  threads: int | None = None) -> np.ndarray:
    """The quantized logits (int64, (N, outputs)) of images (N, H, W, 3) uint8 at the model's size, run with
    ``weights_override`` (layer name -> weights; ``require_all``: every layer of the model must be in it).

    The images run in batches of ``batch_size`` (default: as many as keep the memory one op touches near 16 MB,
    which suits the caches: 2 ImageNet images for MobileNet-V2, 24 CIFAR-10 ones for ResNet-8), ``threads`` of
    them at once (default :data:`THREADS`: one per core); each image's logits are the same whatever the batch."""
    model = read_tflite(model_path)
    _check_kernels(kernels)
    override = dict(weights_override or {})
    _check_override(model, override, require_all)
    if batch_size is not None and (not isinstance(batch_size, int | np.integer) or batch_size < 1):
        raise ValueError(f"batch_size ({batch_size!r}) must be a positive integer")
    imgs = np.asarray(images)
    if not len(imgs):
        return np.zeros((0, 0), np.int64)
    plan = _plan(model)
    size = plan.batch_size if batch_size is None or plan.batch_size == 1 else int(batch_size)
    prepared: dict = {}
    starts = range(0, len(imgs), size)

    def scores(start: int) -> np.ndarray:
        with q.blas_threads(BLAS_THREADS):  # (per thread)
            x = _input_tensor(model, imgs[start:start + size], batch=True)
            vals, logits = _run(model, x, kernels=kernels, override=override, prepared=prepared, keep_all=False)
            return vals[logits].reshape(len(x), -1).astype(np.int64)

    rows = [scores(0)]  # first here: it fills the model's caches and the prepared weights, or fails plainly
    workers = min(threads or _threads(), len(starts) - 1)
    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="tflite") as pool:
            rows += pool.map(scores, starts[1:])
    else:
        rows += [scores(start) for start in starts[1:]]
    return np.concatenate(rows)


def evaluate_tflite(model_path: str | os.PathLike, images: np.ndarray, labels, *, label_offset: int = 1,
                    weights_override: dict[str, np.ndarray] | None = None, kernels: str = "xnnpack",
                    batch_size: int | None = None, threads: int | None = None) -> dict:
    """Top-1 / top-5 accuracy of the integer ops on labelled images (N, H, W, 3) uint8 at the model's size.

    Output index = label + ``label_offset`` (1 for the 1001-class ImageNet models, 0 for CIFAR-10); outputs
    below the offset (background) are dropped. ``weights_override`` maps layer names (``NN_conv``, or
    ``NN_conv@i`` for the layer sets of several inputs, which must then carry the same weights) to weights in the
    Layer's layout with zero points removed (e.g. a pruned workload's); a name that is no layer of the model
    raises a WorkloadError. ``batch_size``, ``threads``: see :func:`tflite_scores`."""
    override = merge_samples(weights_override or {})
    labels = np.asarray(labels, np.int64).reshape(-1)
    imgs = np.asarray(images)
    if len(imgs) != len(labels):
        raise ValueError(f"{len(imgs)} images but {len(labels)} labels")
    n = len(labels)
    if not n:
        return {"top1": float("nan"), "top5": float("nan"), "n": 0}
    scores = tflite_scores(model_path, imgs, weights_override=override, kernels=kernels, batch_size=batch_size,
                           threads=threads)
    order = np.argsort(-scores[:, label_offset:], axis=1, kind="stable")
    top1 = int(np.sum(order[:, 0] == labels))
    top5 = int(np.sum((order[:, :5] == labels[:, None]).any(axis=1)))
    return {"top1": top1 / n, "top5": top5 / n, "n": n}
