"""Integer reference operators in numpy, exact in int64 (the ground truth for the datapath).

Float32-weight layers (``weight_format="fp32"``) are computed exactly too: every float32 weight is an integer
times a power of two, so the layer's weights scaled by one common power of two 2^s (s = the smallest weight's
unit in the last place) are integers. Those integers are split into 20-bit limbs; each limb's convolution is
exact in int64 (|activation| < 2^16, |limb| < 2^20), and the limbs are recombined in Python integers. The
result is the exact sum ``ints * 2^s`` (:func:`layer_output_exact`), which :func:`layer_output` rounds once,
to nearest, to float64.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layer import Layer, LayerKind, WeightFormat

_LIMB_BITS = 20  # activations < 2^16 in magnitude: a limb product < 2^36, sums of up to 2^27 of them fit int64


def conv2d(
    activations: np.ndarray,
    weights: np.ndarray,
    *,
    stride: int = 1,
    padding: int | tuple[int, int, int, int] = 0,
    groups: int = 1,
) -> np.ndarray:
    """Integer convolution: (C, H, W) * (K, C/groups, R, S) -> (K, OH, OW) int64."""
    a = np.asarray(activations, dtype=np.int64)
    w = np.asarray(weights, dtype=np.int64)
    pt, pb, pl, pr = (padding,) * 4 if np.isscalar(padding) else padding
    a = np.pad(a, ((0, 0), (pt, pb), (pl, pr)))
    k, cg, r, s = w.shape
    win = sliding_window_view(a, (r, s), axis=(1, 2))[:, ::stride, ::stride]  # (C, OH, OW, R, S)
    kg = k // groups
    out = np.empty((k, win.shape[1], win.shape[2]), dtype=np.int64)
    for g in range(groups):
        wg = w[g * kg:(g + 1) * kg]
        ag = win[g * cg:(g + 1) * cg]
        out[g * kg:(g + 1) * kg] = np.einsum("chwrs,kcrs->khw", ag, wg, optimize=True)
    return out


def fc(activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integer fully connected: (C,) * (K, C) -> (K,) int64."""
    return np.asarray(weights, dtype=np.int64) @ np.asarray(activations, dtype=np.int64)


def gemm(activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integer GEMM over tokens: (T, C) * (K, C) -> (T, K) int64."""
    return np.asarray(activations, dtype=np.int64) @ np.asarray(weights, dtype=np.int64).T


def _integer_output(layer: Layer, w: np.ndarray) -> np.ndarray:
    if layer.kind == LayerKind.CONV:
        return conv2d(layer.activations, w, stride=layer.stride, padding=layer.padding, groups=layer.groups)
    if layer.kind == LayerKind.FC:
        return fc(layer.activations, w)
    return gemm(layer.activations, w)


def _is_fp32(layer: Layer) -> bool:
    return getattr(layer, "weight_format", WeightFormat.INT) == WeightFormat.FP32


def layer_output(layer: Layer, weights: np.ndarray | None = None) -> np.ndarray:
    """The layer's exact accumulators (optionally with substitute weights of the same shape).

    Integer layers: int64, exact. Float32-weight layers (``weight_format="fp32"``; substitute weights are read
    as float32): float64, the exact sum rounded once to nearest (:func:`layer_output_exact` gives the exact value).
    """
    w = layer.weights if weights is None else weights
    if not _is_fp32(layer):
        return _integer_output(layer, w)
    ints, exponent = layer_output_exact(layer, weights)
    flat = [math.ldexp(float(v), exponent) for v in ints.ravel()]  # int -> float rounds to nearest; ldexp exact
    return np.array(flat, dtype=np.float64).reshape(ints.shape)


def fp32_integer_scale(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Float32 weights as ``sign * mant * 2^(shift + s)`` with int64 ``mant`` < 2^24 and ``shift`` >= 0:
    returns (signed mantissas, shifts, s); ``s`` is the smallest unit in the last place over the non-zero weights
    (0 if every weight is zero)."""
    w = np.asarray(weights, dtype=np.float32).astype(np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("fp32 weights must be finite")
    frac, exp = np.frexp(w)  # w = frac * 2^exp, 0.5 <= |frac| < 1: frac * 2^24 is an integer for any float32
    mant = np.ldexp(frac, 24).astype(np.int64)
    ulp = exp.astype(np.int64) - 24
    nz = mant != 0
    s = int(ulp[nz].min()) if nz.any() else 0
    return mant, np.where(nz, ulp - s, 0), s


def layer_output_exact(layer: Layer, weights: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The layer's exact accumulators as ``(ints, s)``: an object array of Python ints and an exponent, the
    output being ``ints * 2^s``. Integer weights give s = 0; float32 weights are split into int64 limbs at a common
    power-of-two scale (module docstring), so the result is exact for any finite float32 weights."""
    w = layer.weights if weights is None else np.asarray(weights)
    if not _is_fp32(layer):
        return _integer_output(layer, w).astype(object), 0
    mant, shift, s = fp32_integer_scale(w)
    sign, mag = np.sign(mant), np.abs(mant)
    top = int((shift + 24).max()) if mag.any() else 1
    total = None
    mask = (1 << _LIMB_BITS) - 1
    for limb in range(-(-top // _LIMB_BITS)):
        lo = limb * _LIMB_BITS  # bits [lo, lo + LIMB) of mag << shift
        down = lo - shift
        part = np.where(down >= 0, mag >> np.clip(down, 0, 63), (mag << np.clip(-down, 0, _LIMB_BITS)) & mask) & mask
        if not part.any():
            continue
        term = _integer_output(layer, sign * part).astype(object) * (1 << lo)
        total = term if total is None else total + term
    if total is None:
        total = _integer_output(layer, np.zeros(w.shape, dtype=np.int64)).astype(object)
    return total, s
