"""TFLite-exact integer operators (numpy): the quantized kernels' arithmetic, bit for bit.

Tensors are one image, channels last (HWC), integer arrays; per-channel parameters broadcast along the last
axis. Zero points are removed before multiplying (padding therefore contributes 0), accumulators are exact
(int64, or float64 BLAS while every partial sum stays below 2^53), and the requantization is TFLite's
fixed-point one: :func:`quantize_multiplier` (frexp into a Q31 multiplier and a power-of-two exponent) and
:func:`multiply_by_quantized_multiplier`. Its ``rounding`` is ``"double"`` (SaturatingRoundingDoublingHighMul
then RoundingDivideByPOT: TFLite's reference kernels, ai-edge-litert's ``BUILTIN_REF`` resolver), ``"single"``
(its reference int8 fc), ``"ruy"`` (its optimized conv and fc); :func:`requantize` and :func:`add` add
``"fp32"``: the arithmetic of its default XNNPACK delegate (float32 scaling rounded to nearest even for conv /
depthwise / fc; XNNPACK's own fixed-point add). Each was checked
against ai-edge-litert (tests/test_tflite.py).
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
_EXACT_F64 = float(1 << 53)
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
               rounding: str = "double", scale=None) -> np.ndarray:
    """int32 accumulators -> output integers: scale, add the output zero point, clamp.

    ``rounding="fp32"`` is XNNPACK's float requantization instead: float32(acc) · ``scale`` (float32, the real
    multiplier), clamped, rounded to nearest even; ``multiplier`` and ``shift`` are then unused."""
    if rounding == "fp32":
        f = np.asarray(acc).astype(np.float32) * np.asarray(scale, np.float32)
        f = np.clip(f, np.float32(act_min - zero_point), np.float32(act_max - zero_point))
        return np.rint(f).astype(np.int64) + zero_point
    out = multiply_by_quantized_multiplier(acc, multiplier, shift, rounding=rounding) + zero_point
    return np.clip(out, act_min, act_max)


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


def _taps(x: np.ndarray, r: int, s: int, stride: tuple[int, int], pads: tuple[int, ...]):
    """Yield (kernel row, kernel column, input slice (OH, OW, C)) of a zero-padded HWC array."""
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((pt, pb), (pl, pr), (0, 0))) if any(pads) else x
    oh = (xp.shape[0] - r) // stride[0] + 1
    ow = (xp.shape[1] - s) // stride[1] + 1
    for i in range(r):
        for j in range(s):
            yield i, j, xp[i:i + (oh - 1) * stride[0] + 1:stride[0], j:j + (ow - 1) * stride[1] + 1:stride[1]]


# ----------------------------------------------------------------- accumulators (zero points removed)
def conv_accumulators(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pads: tuple[int, ...]) -> np.ndarray:
    """Σ x·w of a dense conv: x (H, W, C) centred ints, w (K, R, S, C) centred ints (OHWI) -> (OH, OW, K) int64."""
    k, r, s, c = w.shape
    exact_float = float(np.abs(x).max(initial=0)) * float(np.abs(w).max(initial=0)) * r * s * c < _EXACT_F64
    dt = np.float64 if exact_float else np.int64
    xf = np.asarray(x).astype(dt)
    wt = np.ascontiguousarray(np.asarray(w).astype(dt).transpose(1, 2, 3, 0))  # (R, S, C, K)
    taps = [tap for _, _, tap in _taps(xf, r, s, stride, pads)]
    oh, ow = taps[0].shape[:2]
    cols = taps[0] if len(taps) == 1 else np.concatenate(taps, axis=2)  # im2col: (OH, OW, R·S·C)
    return (cols.reshape(oh * ow, -1) @ wt.reshape(-1, k)).reshape(oh, ow, k).astype(np.int64)


def depthwise_accumulators(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pads: tuple[int, ...],
                           multiplier: int = 1) -> np.ndarray:
    """Σ x·w of a depthwise conv: x (H, W, C), w (R, S, C·multiplier) (TFLite 1HWO without the 1) ->
    (OH, OW, C·multiplier) int64; output channel c·multiplier + m reads input channel c."""
    r, s, _ = w.shape
    x = np.repeat(x.astype(np.int64), multiplier, axis=2) if multiplier > 1 else x.astype(np.int64)
    w = w.astype(np.int64)
    acc = None
    for i, j, tap in _taps(x, r, s, stride, pads):
        part = tap * w[i, j]
        acc = part if acc is None else acc + part
    return acc


def fc_accumulators(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ x·w of a fully connected layer: x (..., C), w (K, C) -> (..., K) int64 (exact)."""
    return np.asarray(x, np.int64) @ np.asarray(w, np.int64).T


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
        act_min: int, act_max: int, left_shift: int = 20, rounding: str = "double") -> np.ndarray:
    """TFLite quantized ADD (8-bit): both inputs shifted left by 20, scaled to twice the larger input scale,
    summed, then scaled to the output. ``rounding="fp32"``: XNNPACK's add instead (:func:`_add_xnnpack`)."""
    if rounding == "fp32":
        return _add_xnnpack(x1_q, x2_q, scale1, zp1, scale2, zp2, out_scale, out_zp, act_min, act_max)
    s1, s2, so = (float(np.float32(v)) for v in (scale1, scale2, out_scale))
    twice_max = 2.0 * max(s1, s2)
    m1, e1 = quantize_multiplier(s1 / twice_max, rounding=rounding)
    m2, e2 = quantize_multiplier(s2 / twice_max, rounding=rounding)
    mo, eo = quantize_multiplier(twice_max / ((1 << left_shift) * so), rounding=rounding)
    a = (np.asarray(x1_q, np.int64) - zp1) << left_shift
    b = (np.asarray(x2_q, np.int64) - zp2) << left_shift
    total = (multiply_by_quantized_multiplier(a, m1, e1, rounding=rounding)
             + multiply_by_quantized_multiplier(b, m2, e2, rounding=rounding))
    return requantize(total, mo, eo, out_zp, act_min, act_max, rounding=rounding)


def _add_xnnpack(x1_q, x2_q, scale1, zp1, scale2, zp2, out_scale, out_zp, act_min, act_max) -> np.ndarray:
    """XNNPACK's 8-bit add: multipliers rint(scale_i / out_scale · 2^shift) in float32, the larger one in
    [2^21, 2^22); the sum is shifted right by ``shift``, rounding ties up."""
    r1 = np.float32(scale1) / np.float32(out_scale)
    r2 = np.float32(scale2) / np.float32(out_scale)
    shift = 20 - (math.frexp(float(max(r1, r2)))[1] - 1)
    m1, m2 = (int(np.rint(np.float32(math.ldexp(float(r), shift)))) for r in (r1, r2))
    acc = (np.asarray(x1_q, np.int64) - zp1) * m1 + (np.asarray(x2_q, np.int64) - zp2) * m2 + (1 << (shift - 1))
    return np.clip((acc >> shift) + out_zp, act_min, act_max)


def average_pool(x_q, *, filter_hw: tuple[int, int], stride: tuple[int, int], pads: tuple[int, ...],
                 act_min: int, act_max: int) -> np.ndarray:
    """TFLite quantized AVERAGE_POOL_2D: mean over the window's valid (unpadded) cells, rounded half away from
    zero with integer division; the output keeps the input's scale and zero point."""
    x = np.asarray(x_q, np.int64)
    r, s = filter_hw
    total = sum(tap for _, _, tap in _taps(x, r, s, stride, pads))
    count = sum(tap for _, _, tap in _taps(np.ones(x.shape[:2] + (1,), np.int64), r, s, stride, pads))
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
