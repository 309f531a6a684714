"""Integer reference operators in numpy, exact in int64 (the ground truth for the datapath)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layer import Layer, LayerKind


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


def layer_output(layer: Layer, weights: np.ndarray | None = None) -> np.ndarray:
    """The layer's exact accumulators (optionally with substitute weights of the same shape)."""
    w = layer.weights if weights is None else weights
    if layer.kind == LayerKind.CONV:
        return conv2d(layer.activations, w, stride=layer.stride, padding=layer.padding, groups=layer.groups)
    if layer.kind == LayerKind.FC:
        return fc(layer.activations, w)
    return gemm(layer.activations, w)
