"""TFLite-exact integer operators (numpy, BLAS, small numba kernels): the quantized kernels' arithmetic, bit for bit.

Tensors are channels last, integer arrays: one image (H, W, C) or a batch (N, H, W, C) (the executor runs
batches); per-channel parameters broadcast along the last axis. Zero points are removed before multiplying
(padding therefore contributes 0), and accumulators are exact integers: held in float32 while every partial sum
provably stays below 2^24 in magnitude (the input type's range times the largest Σ|w| of an output channel,
plus the bias: :func:`prepare_weights`; every layer of the 8-bit models here), in float64 below 2^53, else in
int64, so BLAS runs the dense convolutions (im2col, one matmul) and a small numba kernel the depthwise ones;
sums of integers below those bounds are exact in any order. The requantization is TFLite's fixed-point one:
:func:`quantize_multiplier` (frexp into a Q31 multiplier and a power-of-two exponent) and
:func:`multiply_by_quantized_multiplier`. Its ``rounding`` is ``"double"`` (SaturatingRoundingDoublingHighMul
then RoundingDivideByPOT: TFLite's reference kernels, ai-edge-litert's ``BUILTIN_REF`` resolver), ``"single"``
(its reference int8 fc), ``"ruy"`` (its optimized conv and fc); :func:`requantize` and :func:`add` add
``"fp32"``: the arithmetic of its default XNNPACK delegate (float32 scaling rounded to nearest even for conv /
depthwise / fc; XNNPACK's own fixed-point add), each also as one numba pass over 8-bit tensors
(:func:`requantize_fp32`, ``add(out_dtype=...)``). Each was checked against ai-edge-litert (tests/test_tflite.py);
the fast paths against the numpy ones (tests/test_quantized_ops.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import math
import os
from dataclasses import dataclass

import numpy as np
from numba import njit

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
_EXACT_F32, _EXACT_F64 = float(1 << 24), float(1 << 53)  # integers below these are exact
ROUNDINGS = ("double", "single", "ruy", "fp32")
QRANGE = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767), "int32": (INT32_MIN, INT32_MAX)}


# ----------------------------------------------------------------- fixed-point requantization
def _round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float, *, rounding: str = "double") -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2^(shift - 31)``, multiplier a Q31 int32."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if rounding == "single" and shift > 30:
        return INT32_MAX, 30
    return q_fixed, shift


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values (computed in int64)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C division by 2^31 truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift, *, rounding: str = "double") -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier(x, multiplier, shift)`` (shift > 0 is a left shift).

    ``rounding``: ``"double"`` (TFLite's reference kernels: SaturatingRoundingDoublingHighMul, then
    RoundingDivideByPOT, ties away from zero), ``"single"`` (``TFLITE_SINGLE_ROUNDING``: x·m / 2^(31 - shift)
    rounded once, ties up; what XNNPACK's conv / fc produce here) or ``"ruy"`` (the high mul, then a right shift
    rounding ties up: ruy's x86 kernels, TFLite's optimized CONV_2D)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    x = np.asarray(x, np.int64)
    multiplier, shift = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
    if rounding == "single":
        total = 31 - shift
        return np.clip((x * multiplier + (np.int64(1) << (total - 1))) >> total, INT32_MIN, INT32_MAX)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    high = saturating_rounding_doubling_high_mul(x << left, multiplier)
    if rounding == "ruy":
        return (high + ((np.int64(1) << right) >> 1)) >> right
    return rounding_divide_by_pot(high, right)


def conv_multipliers(input_scale: float, weight_scales, output_scale: float, *, float_product: bool,
                     rounding: str = "double") -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) of a conv / fc. ``float_product``: the scale product is taken in float32
    (``GetQuantizedConvolutionMultipler``, TFLite's per-tensor uint8 and fc path), else in double
    (``PopulateConvolutionQuantizationParams``, the int8 conv path)."""
    mults, shifts = [], []
    for ws in np.atleast_1d(np.asarray(weight_scales, np.float32)):
        if float_product:
            real = float(np.float32(input_scale) * ws) / float(np.float32(output_scale))
        else:
            real = float(np.float32(input_scale)) * float(ws) / float(np.float32(output_scale))
        m, s = quantize_multiplier(real, rounding=rounding)
        mults.append(m)
        shifts.append(s)
    return np.array(mults, np.int64), np.array(shifts, np.int64)


def fp32_scales(input_scale: float, weight_scales, output_scale: float) -> np.ndarray:
    """XNNPACK's float32 requantization scale per channel: input_scale · weight_scale / output_scale in float32."""
    ws = np.atleast_1d(np.asarray(weight_scales, np.float32))
    return (np.float32(input_scale) * ws / np.float32(output_scale)).astype(np.float32)


def activation_range(activation: str, scale: float, zero_point: int, dtype: str) -> tuple[int, int]:
    """TFLite's ``CalculateActivationRangeQuantized``: a fused activation as a clamp in the quantized domain."""
    qmin, qmax = QRANGE[dtype]

    def quantize(f: float) -> int:
        return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))

    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    if activation == "NONE":
        return qmin, qmax
    raise NotImplementedError(f"fused activation {activation} is not supported")


def requantize(acc, multiplier, shift, zero_point: int, act_min: int, act_max: int, *,
               rounding: str = "double", scale=None, out_dtype=None, overwrite: bool = False) -> np.ndarray:
    """int32 accumulators -> output integers: scale, add the output zero point, clamp.

    ``acc``: integers, or floats holding exact integers (what :func:`conv_nhwc` and co. return).
    ``rounding="fp32"`` is XNNPACK's float requantization instead: float32(acc) · ``scale`` (float32, the real
    multiplier), clamped, rounded to nearest even; ``multiplier`` and ``shift`` are then unused. The result is
    int64, or of ``out_dtype`` (same values); ``overwrite``: a float32 ``acc`` may serve as scratch space."""
    if rounding == "fp32":
        a = np.asarray(acc)
        f = a if overwrite and a.dtype == np.float32 else a.astype(np.float32)  # to float32: nearest even
        f *= np.asarray(scale, np.float32)
        np.clip(f, np.float32(act_min - zero_point), np.float32(act_max - zero_point), out=f)
        np.rint(f, out=f)
        if out_dtype is None:
            return f.astype(np.int64) + zero_point
        f += np.float32(zero_point)  # small integers: exact
        return f.astype(out_dtype)
    acc = np.asarray(acc)
    if acc.dtype.kind == "f":
        acc = acc.astype(np.int64)
    out = np.clip(multiply_by_quantized_multiplier(acc, multiplier, shift, rounding=rounding) + zero_point,
                  act_min, act_max)
    return out if out_dtype is None else out.astype(out_dtype)


@njit(cache=True, nogil=True)
def _requantize_f32(acc, bias, scale, lo, hi, zero_point, out):  # pragma: no cover - compiled
    """out[i, k] = the low byte of rint(clamp((acc[i, k] + bias[k]) · scale[k], lo, hi)) + zero_point, float32."""
    m, k = acc.shape
    for i in range(m):
        for j in range(k):
            v = (acc[i, j] + bias[j]) * scale[j]
            v = min(max(v, lo), hi)
            out[i, j] = np.uint8(np.int32(np.rint(v) + zero_point) & 0xFF)


def requantize_fp32(acc, scale, zero_point: int, act_min: int, act_max: int, *, bias=None,
                    out_dtype="uint8") -> np.ndarray:
    """XNNPACK's requantization (:func:`requantize` with ``rounding="fp32"``) of ``acc`` + ``bias``, into 8-bit
    ``out_dtype``, in one pass when ``acc`` and ``bias`` are float32 holding exact integers whose sums stay below
    2^24 (what :func:`prepare_weights` guarantees for its float32 accumulators); else as :func:`requantize`."""
    acc = np.asarray(acc)
    out_dtype = np.dtype(out_dtype)
    if acc.ndim == 0 or acc.dtype != np.float32 or out_dtype not in (np.uint8, np.int8) or (
            bias is not None and np.asarray(bias).dtype != np.float32):
        total = acc if bias is None else acc + np.asarray(bias)
        return requantize(total, None, None, zero_point, act_min, act_max, rounding="fp32", scale=scale,
                          out_dtype=out_dtype)
    k = acc.shape[-1]
    scale = np.asarray(scale, np.float32)
    if scale.shape != (k,):
        scale = np.broadcast_to(scale.reshape(-1), (k,))
    bias = np.zeros(k, np.float32) if bias is None else np.asarray(bias).reshape(k)
    out = np.empty(acc.shape, np.uint8)
    if out.size:
        _requantize_f32(np.ascontiguousarray(acc).reshape(-1, k), np.ascontiguousarray(bias),
                        np.ascontiguousarray(scale), np.float32(act_min - zero_point), np.float32(act_max - zero_point),
                        np.float32(zero_point), out.reshape(-1, k))
    return out.view(out_dtype)


# ----------------------------------------------------------------- geometry
def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """TFLite SAME padding of one axis: (output size, pad before, pad after)."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return out, total // 2, total - total // 2


def padding_2d(padding: str, h: int, w: int, r: int, s: int, stride_h: int, stride_w: int) -> tuple[int, ...]:
    """(top, bottom, left, right) for TFLite ``SAME`` / ``VALID``."""
    if padding == "VALID":
        return 0, 0, 0, 0
    _, top, bottom = same_padding(h, r, stride_h)
    _, left, right = same_padding(w, s, stride_w)
    return top, bottom, left, right


def conv_output_hw(h: int, w: int, r: int, s: int, stride: tuple[int, int], pads: tuple[int, ...]
                   ) -> tuple[int, int]:
    """Output height and width of an r x s window sliding over an h x w input padded by ``pads``."""
    pt, pb, pl, pr = pads
    return (h + pt + pb - r) // stride[0] + 1, (w + pl + pr - s) // stride[1] + 1


def _taps(x: np.ndarray, r: int, s: int, stride: tuple[int, int], pads: tuple[int, ...]):
    """Yield (kernel row, kernel column, input slice (..., OH, OW, C)) of a zero-padded (..., H, W, C) array."""
    pt, pb, pl, pr = pads
    xp = np.pad(x, [(0, 0)] * (x.ndim - 3) + [(pt, pb), (pl, pr), (0, 0)]) if any(pads) else x
    oh, ow = conv_output_hw(x.shape[-3], x.shape[-2], r, s, stride, pads)
    for i in range(r):
        for j in range(s):
            yield i, j, xp[..., i:i + (oh - 1) * stride[0] + 1:stride[0], j:j + (ow - 1) * stride[1] + 1:stride[1], :]


# ----------------------------------------------------------------- BLAS threads
@functools.cache
def _openblas_set_threads_local():
    """numpy's bundled OpenBLAS's ``openblas_set_num_threads_local`` (OpenBLAS >= 0.3.27: the calling thread's
    BLAS thread count; returns the previous one), or None (another BLAS, an older OpenBLAS, no wheel libs)."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


@contextlib.contextmanager
def blas_threads(n: int | None):
    """Run the enclosed matmuls of this thread with ``n`` BLAS threads (None: leave BLAS as it is), where numpy's
    OpenBLAS allows it; restored afterwards. (With one core of two busy elsewhere, OpenBLAS's second thread waits
    for a descheduled partner: the batched matmuls here run 3-4x slower with two threads than with one.)"""
    setter = _openblas_set_threads_local() if n else None
    if setter is None:
        yield
        return
    previous = setter(int(n))
    try:
        yield
    finally:
        setter(previous)


# ----------------------------------------------------------------- exact accumulators (zero points removed)
def accumulator_dtype(bound: float) -> np.dtype:
    """Where sums of integers whose partial sums never exceed ``bound`` in magnitude are exact: float32 below
    2^24, float64 below 2^53 (every partial sum is then an exactly representable integer, so BLAS sums exactly
    in any order, fused multiply-adds or not), else int64."""
    if bound < _EXACT_F32:
        return np.dtype(np.float32)
    return np.dtype(np.float64) if bound < _EXACT_F64 else np.dtype(np.int64)


def input_bound(dtype: str, zero_point: int) -> int:
    """The largest |q - zero_point| of a quantized ``dtype`` value."""
    qmin, qmax = QRANGE[dtype]
    return max(abs(qmin - zero_point), abs(qmax - zero_point))


def _abs_max(a) -> float:
    a = np.asarray(a)
    return float(np.abs(a.astype(np.float64)).max()) if a.size else 0.0


@dataclass(frozen=True)
class ConvWeights:
    """Centred integer weights (and bias) of a conv / depthwise / fc, laid out for exact batched accumulation.

    ``matrix``: dense (R·S·C, K) (the right operand of the im2col matmul), depthwise (R, S, C·multiplier);
    ``bias`` (K,) or None; both held in ``dtype``, in which every accumulator of inputs bounded by the
    ``x_bound`` given to :func:`prepare_weights` is exact."""

    matrix: np.ndarray
    bias: np.ndarray | None
    kernel: tuple[int, int]  # (R, S)
    channels: int  # C, the input channels
    depthwise: bool
    multiplier: int  # depthwise: output channel c·multiplier + m reads input channel c
    dtype: np.dtype

    @property
    def out_channels(self) -> int:
        return self.matrix.shape[-1]


def prepare_weights(w, bias=None, *, x_bound: float, depthwise: bool = False,
                    depth_multiplier: int = 1) -> ConvWeights:
    """:class:`ConvWeights` of centred integer weights: dense conv (K, R, S, C) (OHWI) or fully connected (K, C);
    ``depthwise``: (R, S, C·multiplier) (TFLite's 1HWO without the 1). ``x_bound``: the largest |input| (zero
    point removed) the accumulators will see. Every partial sum is then at most x_bound · (the largest Σ|w| of
    an output channel) + the largest |bias|, which picks the accumulation type (:func:`accumulator_dtype`)."""
    w = np.asarray(w)
    if depthwise:
        if w.ndim != 3 or depth_multiplier < 1 or w.shape[2] % depth_multiplier:
            raise ValueError(f"depthwise weights must be (R, S, C*multiplier), got {list(w.shape)}")
        per_channel = np.abs(w.astype(np.float64)).sum(axis=(0, 1))
        kernel, channels = w.shape[:2], w.shape[2] // depth_multiplier
    else:
        if w.ndim == 2:
            w = w.reshape(w.shape[0], 1, 1, w.shape[1])
        if w.ndim != 4:
            raise ValueError(f"conv weights must be (K, R, S, C) or (K, C), got {list(w.shape)}")
        per_channel = np.abs(w.astype(np.float64)).reshape(w.shape[0], -1).sum(axis=1)
        kernel, channels = w.shape[1:3], w.shape[3]
    bound = float(x_bound) * float(per_channel.max(initial=0.0)) + (0.0 if bias is None else _abs_max(bias))
    dtype = accumulator_dtype(bound)
    if depthwise:
        matrix = np.ascontiguousarray(w, dtype)
    else:
        matrix = np.ascontiguousarray(w.transpose(1, 2, 3, 0).reshape(-1, w.shape[0]), dtype)
    b = None if bias is None else np.ascontiguousarray(np.asarray(bias, np.int64).reshape(-1), dtype)
    return ConvWeights(matrix, b, (int(kernel[0]), int(kernel[1])), int(channels), depthwise,
                       int(depth_multiplier), dtype)


def _centred(x: np.ndarray, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """x - zero_point in ``dtype``, in one pass (exact: the bound checks keep |x| far below 2^24)."""
    if dtype.kind == "f":
        return np.subtract(x, zero_point, dtype=dtype)
    return np.asarray(x, np.int64) - zero_point


def _bytes(x_q: np.ndarray, x_zp: int) -> tuple[np.ndarray, np.uint8, np.float32]:
    """(uint8 view, flip, offset) of 8-bit integers, for the numba kernels: value - x_zp = (byte ^ flip) - offset."""
    signed = x_q.dtype == np.int8
    return (np.ascontiguousarray(x_q).view(np.uint8), np.uint8(128 if signed else 0),
            np.float32(x_zp + (128 if signed else 0)))


@njit(cache=True, nogil=True)
def _im2col_f32(xu, flip, offset, sh, sw, pt, pl, r, s, cols):  # pragma: no cover - compiled
    """cols[b, y, x, (i·s + j)·c + ch] = (xu[b, y·sh - pt + i, x·sw - pl + j, ch] ^ flip) - offset, 0 in the
    padding (see _bytes)."""
    n, h, wd, c = xu.shape
    oh, ow = cols.shape[1], cols.shape[2]
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                dst = cols[b, oy, ox]
                for i in range(r):
                    iy = oy * sh - pt + i
                    for j in range(s):
                        ix = ox * sw - pl + j
                        t = (i * s + j) * c
                        if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                            for ch in range(c):
                                dst[t + ch] = 0
                        else:
                            row = xu[b, iy, ix]
                            for ch in range(c):
                                dst[t + ch] = np.float32(row[ch] ^ flip) - offset


def conv_nhwc(x_q, x_zp: int, cw: ConvWeights, stride: tuple[int, int], pads: tuple[int, ...], *,
              add_bias: bool = True) -> np.ndarray:
    """Σ (x - x_zp)·w (+ bias, ``add_bias``) of a dense conv on a batch: x_q (N, H, W, C) integers ->
    (N, OH, OW, K) exact integers of ``cw.dtype`` (im2col, then one BLAS matmul)."""
    x_q = np.asarray(x_q)
    n, h, wd, c = x_q.shape
    r, s = cw.kernel
    if c != cw.channels:
        raise ValueError(f"conv input has {c} channels, its weights {cw.channels}")
    oh, ow = conv_output_hw(h, wd, r, s, stride, pads)
    sh, sw = stride
    dt = cw.dtype
    if r == s == 1 and not any(pads):
        cols = _centred(x_q[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw], x_zp, dt)
    elif dt == np.float32 and x_q.dtype in (np.uint8, np.int8):
        cols = np.empty((n, oh, ow, r * s * c), dt)
        if cols.size:
            _im2col_f32(*_bytes(x_q, x_zp), sh, sw, pads[0], pads[2], r, s, cols)
    else:
        pt, pb, pl, pr = pads
        xp = np.zeros((n, h + pt + pb, wd + pl + pr, c), dt)
        xp[:, pt:pt + h, pl:pl + wd] = _centred(x_q, x_zp, dt)
        cols = np.empty((n, oh, ow, r * s * c), dt)
        for i in range(r):
            for j in range(s):
                t = (i * s + j) * c
                cols[..., t:t + c] = xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
    acc = cols.reshape(-1, r * s * c) @ cw.matrix
    if add_bias and cw.bias is not None:
        acc += cw.bias
    return acc.reshape(n, oh, ow, -1)


def fc_nhwc(x_q, x_zp: int, cw: ConvWeights, *, add_bias: bool = True) -> np.ndarray:
    """Σ (x - x_zp)·w (+ bias, ``add_bias``) of a fully connected layer: x_q (..., C) -> (..., K) exact integers
    of ``cw.dtype``."""
    x_q = np.asarray(x_q)
    acc = _centred(x_q, x_zp, cw.dtype).reshape(-1, cw.channels) @ cw.matrix
    if add_bias and cw.bias is not None:
        acc += cw.bias
    return acc.reshape(x_q.shape[:-1] + (-1,))


@njit(cache=True, nogil=True)
def _depthwise_f32(xu, flip, offset, w, bias, sh, sw, pt, pl, out):  # pragma: no cover - compiled
    """out[b, y, x, k] = bias[k] + Σ_ij ((xu[b, y·sh - pt + i, x·sw - pl + j, k // m] ^ flip) - offset) · w[i, j, k]
    over the taps inside the input (padding contributes 0), in float32: exact within prepare_weights' bound.
    xu: the input's bytes (uint8; int8 viewed as uint8 with flip = 128), offset: the zero point (+ 128)."""
    n, h, wd, c = xu.shape
    oh, ow, k = out.shape[1], out.shape[2], out.shape[3]
    r, s = w.shape[0], w.shape[1]
    m = k // c
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                acc = out[b, oy, ox]
                for ch in range(k):
                    acc[ch] = bias[ch]
                for i in range(r):
                    iy = oy * sh - pt + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(s):
                        ix = ox * sw - pl + j
                        if ix < 0 or ix >= wd:
                            continue
                        row = xu[b, iy, ix]
                        wij = w[i, j]
                        if m == 1:
                            for ch in range(k):
                                acc[ch] += (np.float32(row[ch] ^ flip) - offset) * wij[ch]
                        else:
                            for ch in range(k):
                                acc[ch] += (np.float32(row[ch // m] ^ flip) - offset) * wij[ch]


def depthwise_nhwc(x_q, x_zp: int, cw: ConvWeights, stride: tuple[int, int], pads: tuple[int, ...], *,
                   add_bias: bool = True) -> np.ndarray:
    """Σ (x - x_zp)·w (+ bias, ``add_bias``) of a depthwise conv on a batch: x_q (N, H, W, C) -> (N, OH, OW, C·m) exact
    integers of ``cw.dtype``; output channel c·multiplier + m reads input channel c. uint8 / int8 inputs with
    float32 accumulators (8-bit models) run in one numba kernel, anything else tap by tap in numpy."""
    x_q = np.asarray(x_q)
    n, h, wd, c = x_q.shape
    r, s = cw.kernel
    if c != cw.channels:
        raise ValueError(f"depthwise input has {c} channels, its weights {cw.channels}")
    oh, ow = conv_output_hw(h, wd, r, s, stride, pads)
    k = cw.out_channels
    if cw.dtype == np.float32 and x_q.dtype in (np.uint8, np.int8):
        out = np.empty((n, oh, ow, k), np.float32)
        bias = cw.bias if add_bias and cw.bias is not None else np.zeros(k, np.float32)
        if out.size:
            _depthwise_f32(*_bytes(x_q, x_zp), cw.matrix, bias, stride[0], stride[1], pads[0], pads[2], out)
        return out
    x = _centred(x_q, x_zp, cw.dtype)
    if cw.multiplier > 1:
        x = np.repeat(x, cw.multiplier, axis=3)
    acc = np.zeros((n, oh, ow, k), cw.dtype)
    for i, j, tap in _taps(x, r, s, stride, pads):
        acc += tap * cw.matrix[i, j]
    if add_bias and cw.bias is not None:
        acc += cw.bias
    return acc


def conv_accumulators(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pads: tuple[int, ...]) -> np.ndarray:
    """Σ x·w of a dense conv: x (H, W, C) or (N, H, W, C) centred ints, w (K, R, S, C) centred ints (OHWI) ->
    (OH, OW, K) / (N, OH, OW, K) int64."""
    x = np.asarray(x)
    acc = conv_nhwc(x if x.ndim == 4 else x[None], 0, prepare_weights(w, x_bound=_abs_max(x)), stride, pads)
    return acc.astype(np.int64) if x.ndim == 4 else acc[0].astype(np.int64)


def depthwise_accumulators(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pads: tuple[int, ...],
                           multiplier: int = 1) -> np.ndarray:
    """Σ x·w of a depthwise conv: x (H, W, C) or (N, H, W, C), w (R, S, C·multiplier) (TFLite 1HWO without the 1)
    -> (OH, OW, C·multiplier) / (N, ...) int64; output channel c·multiplier + m reads input channel c."""
    x = np.asarray(x)
    cw = prepare_weights(w, x_bound=_abs_max(x), depthwise=True, depth_multiplier=multiplier)
    acc = depthwise_nhwc(x if x.ndim == 4 else x[None], 0, cw, stride, pads)
    return acc.astype(np.int64) if x.ndim == 4 else acc[0].astype(np.int64)


def fc_accumulators(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ x·w of a fully connected layer: x (..., C), w (K, C) -> (..., K) int64 (exact)."""
    x = np.asarray(x)
    return fc_nhwc(x, 0, prepare_weights(w, x_bound=_abs_max(x))).astype(np.int64)


# ----------------------------------------------------------------- whole quantized ops
def conv2d(x_q, w_q, bias, *, x_zp: int, w_zp, stride: tuple[int, int], pads: tuple[int, ...],
           multiplier, shift, out_zp: int, act_min: int, act_max: int, depthwise: bool = False,
           depth_multiplier: int = 1, rounding: str = "double") -> np.ndarray:
    """TFLite CONV_2D (w_q OHWI) or DEPTHWISE_CONV_2D (w_q 1HWO) of one HWC image, quantized in and out."""
    x = np.asarray(x_q, np.int64) - x_zp
    if depthwise:  # per-channel zero points run along the last (output channel) axis
        w = np.asarray(w_q, np.int64)[0] - np.asarray(w_zp, np.int64)
        acc = depthwise_accumulators(x, w, stride, pads, depth_multiplier)
    else:
        w = np.asarray(w_q, np.int64) - np.asarray(w_zp, np.int64).reshape(-1, 1, 1, 1)
        acc = conv_accumulators(x, w, stride, pads)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max, rounding=rounding)


def fully_connected(x_q, w_q, bias, *, x_zp: int, w_zp, multiplier, shift, out_zp: int, act_min: int,
                    act_max: int, rounding: str = "double") -> np.ndarray:
    """TFLite FULLY_CONNECTED: x (..., C), w (K, C) -> (..., K)."""
    w = np.asarray(w_q, np.int64) - np.asarray(w_zp, np.int64).reshape(-1, 1)
    acc = fc_accumulators(np.asarray(x_q, np.int64) - x_zp, w)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return requantize(acc, multiplier, shift, out_zp, act_min, act_max, rounding=rounding)


def add(x1_q, x2_q, *, scale1: float, zp1: int, scale2: float, zp2: int, out_scale: float, out_zp: int,
        act_min: int, act_max: int, left_shift: int = 20, rounding: str = "double", out_dtype=None) -> np.ndarray:
    """TFLite quantized ADD (8-bit): both inputs shifted left by 20, scaled to twice the larger input scale,
    summed, then scaled to the output. ``rounding="fp32"``: XNNPACK's add instead (:func:`_add_xnnpack`).
    The result is int64, or of ``out_dtype`` (the same values)."""
    if rounding == "fp32":
        return _add_xnnpack(x1_q, x2_q, scale1, zp1, scale2, zp2, out_scale, out_zp, act_min, act_max, out_dtype)
    s1, s2, so = (float(np.float32(v)) for v in (scale1, scale2, out_scale))
    twice_max = 2.0 * max(s1, s2)
    m1, e1 = quantize_multiplier(s1 / twice_max, rounding=rounding)
    m2, e2 = quantize_multiplier(s2 / twice_max, rounding=rounding)
    mo, eo = quantize_multiplier(twice_max / ((1 << left_shift) * so), rounding=rounding)
    a = (np.asarray(x1_q, np.int64) - zp1) << left_shift
    b = (np.asarray(x2_q, np.int64) - zp2) << left_shift
    total = (multiply_by_quantized_multiplier(a, m1, e1, rounding=rounding)
             + multiply_by_quantized_multiplier(b, m2, e2, rounding=rounding))
    return requantize(total, mo, eo, out_zp, act_min, act_max, rounding=rounding, out_dtype=out_dtype)


@njit(cache=True, nogil=True)
def _add_fixed(a, fa, za, ma, b, fb, zb, mb, shift, zero_point, lo, hi, out):  # pragma: no cover - compiled
    """out = the low byte of clamp((((a ^ fa) - za)·ma + ((b ^ fb) - zb)·mb + 2^(shift-1)) >> shift) + zero point,
    lo, hi) over flat uint8 arrays (see _bytes), in int64."""
    rnd = np.int64(1) << (shift - 1)
    for i in range(a.size):
        acc = (np.int64(a[i] ^ fa) - za) * ma + (np.int64(b[i] ^ fb) - zb) * mb + rnd
        out[i] = np.uint8(min(max((acc >> shift) + zero_point, lo), hi) & 0xFF)


def _add_xnnpack(x1_q, x2_q, scale1, zp1, scale2, zp2, out_scale, out_zp, act_min, act_max,
                 out_dtype=None) -> np.ndarray:
    """XNNPACK's 8-bit add: multipliers rint(scale_i / out_scale · 2^shift) in float32, the larger one in
    [2^21, 2^22); the sum is shifted right by ``shift``, rounding ties up. Two 8-bit tensors of one shape into an
    8-bit ``out_dtype`` run in one numba pass."""
    r1 = np.float32(scale1) / np.float32(out_scale)
    r2 = np.float32(scale2) / np.float32(out_scale)
    shift = 20 - (math.frexp(float(max(r1, r2)))[1] - 1)
    m1, m2 = (int(np.rint(np.float32(math.ldexp(float(r), shift)))) for r in (r1, r2))
    x1, x2 = np.asarray(x1_q), np.asarray(x2_q)
    eight_bit = (np.uint8, np.int8)
    if (out_dtype is not None and np.dtype(out_dtype) in eight_bit and x1.dtype in eight_bit and x2.dtype in eight_bit
            and x1.shape == x2.shape and 1 <= shift < 63):
        out = np.empty(x1.shape, np.uint8)
        (a, fa, za), (b, fb, zb) = _bytes(x1, zp1), _bytes(x2, zp2)
        _add_fixed(a.reshape(-1), np.int64(fa), np.int64(za), np.int64(m1), b.reshape(-1), np.int64(fb),
                   np.int64(zb), np.int64(m2), np.int64(shift), np.int64(out_zp), np.int64(act_min),
                   np.int64(act_max), out.reshape(-1))
        return out.view(out_dtype)
    acc = (np.asarray(x1, np.int64) - zp1) * m1 + (np.asarray(x2, np.int64) - zp2) * m2 + (1 << (shift - 1))
    out = np.clip((acc >> shift) + out_zp, act_min, act_max)
    return out if out_dtype is None else out.astype(out_dtype)


def average_pool(x_q, *, filter_hw: tuple[int, int], stride: tuple[int, int], pads: tuple[int, ...],
                 act_min: int, act_max: int) -> np.ndarray:
    """TFLite quantized AVERAGE_POOL_2D of (H, W, C) or (N, H, W, C): mean over the window's valid (unpadded)
    cells, rounded half away from zero with integer division; the output keeps the input's scale and zero point."""
    x = np.asarray(x_q)
    r, s = filter_hw
    total = None
    for _, _, tap in _taps(x, r, s, stride, pads):
        total = tap.astype(np.int64) if total is None else total + tap
    count = sum(tap for _, _, tap in _taps(np.ones(x.shape[-3:-1] + (1,), np.int64), r, s, stride, pads))
    half = count // 2
    avg = np.where(total >= 0, (total + half) // count, -((-total + half) // count))
    return np.clip(avg, act_min, act_max)


def quantize(x_real, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """TFLite QUANTIZE from float: round(x / scale) + zero point, clamped (ties away from zero)."""
    v = np.asarray(x_real, np.float32) / np.float32(scale)
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    return np.clip(q.astype(np.int64) + zero_point, *QRANGE[dtype])


def dequantize(x_q, scale: float, zero_point: int) -> np.ndarray:
    """TFLite DEQUANTIZE: (x - zero point) * scale in float32."""
    return ((np.asarray(x_q, np.int64) - zero_point).astype(np.float32) * np.float32(scale)).astype(np.float32)


def requantize_tensor(x_q, *, in_scale: float, in_zp: int, out_scale: float, out_zp: int, dtype: str,
                      rounding: str = "double") -> np.ndarray:
    """TFLite QUANTIZE between integer types: (x - zp_in) rescaled to the output scale."""
    m, e = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)),
                               rounding=rounding)
    out = multiply_by_quantized_multiplier(np.asarray(x_q, np.int64) - in_zp, m, e, rounding=rounding)
    return np.clip(out + out_zp, *QRANGE[dtype])
