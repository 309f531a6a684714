"""Layer -> the dense convolutions the PE array runs, in order (DESIGN §3).

Every layer becomes a stack of G dense sub-convolutions run one after the other (groups outermost):
a dense conv is G = 1; a grouped conv is G dense convs of C/g channels and K/g filters; a
depthwise conv under the DNNsim mapping is ceil(C/m) sub-convs of m channels and m filters whose
weights are diagonal (filter i sees only channel i), m = min(lanes, rows); a GEMM is a 1x1 conv over
(C, T, 1); an FC layer keeps its own pipeline (``is_fc``). A strided 3-channel first conv is
rewritten space-to-depth first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workloads import Layer, LayerKind

from .config import ArchConfig, DepthwiseMapping


@dataclass(frozen=True)
class Lowered:
    """Sub-convolutions of one layer, in the order the machine runs them."""

    acts: np.ndarray  # (G, Cg, Hp, Wp) int32, padded inputs of every sub-conv
    weights: np.ndarray  # (G, Kg, Cg, R, S) int32
    channels: np.ndarray  # (G,) real channels per sub-conv (the rest is zero padding)
    filters: np.ndarray  # (G,) real filters per sub-conv
    filter_offset: np.ndarray  # (G,) first output channel of each sub-conv
    stride: int
    out_h: int
    out_w: int
    diagonal: bool  # depthwise: filter i multiplies only channel i (one useful lane per PE)
    is_fc: bool
    spread_tiles: int = 1  # depthwise 'spread': sub-convs run this many at a time, one per tile

    @property
    def groups(self) -> int:
        return int(self.acts.shape[0])

    @property
    def windows(self) -> int:
        return self.out_h * self.out_w

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weights.shape[3]), int(self.weights.shape[4])


def space_to_depth(acts: np.ndarray, weights: np.ndarray, padding, stride: int):
    """DNNsim's first-layer rewrite: returns (acts', weights') for a stride-1 conv with the same outputs.

    After padding, input (c, h, w) moves to channel ((h mod s)*s + w mod s)*3 + c at (h div s, w div s);
    weights are rearranged alike into a ceil(R/s) x ceil(S/s) kernel (zero where there is no tap).
    """
    s = stride
    pt, pb, pl, pr = padding
    a = np.pad(acts, ((0, 0), (pt, pb), (pl, pr)))
    c, h, w = a.shape
    hs, ws = -(-h // s), -(-w // s)
    a = np.pad(a, ((0, 0), (0, hs * s - h), (0, ws * s - w)))
    # (c, hs, s_h, ws, s_w) -> (s_h, s_w, c, hs, ws)
    a2 = a.reshape(c, hs, s, ws, s).transpose(2, 4, 0, 1, 3).reshape(s * s * c, hs, ws)
    k, _, r, sk = weights.shape
    r2, s2 = -(-r // s), -(-sk // s)
    wp = np.pad(weights, ((0, 0), (0, 0), (0, r2 * s - r), (0, s2 * s - sk)))
    w2 = wp.reshape(k, c, r2, s, s2, s).transpose(0, 3, 5, 1, 2, 4).reshape(k, s * s * c, r2, s2)
    return np.ascontiguousarray(a2), np.ascontiguousarray(w2)


def uses_space_to_depth(layer: Layer, arch: ArchConfig) -> bool:
    """Whether the machine rewrites this layer space-to-depth (a strided, dense, 3-channel conv)."""
    return (arch.first_layer_space_to_depth and layer.kind == LayerKind.CONV and layer.groups == 1
            and layer.in_channels == 3 and layer.stride > 1)


def channels_are_bricked_in_order(layer: Layer, arch: ArchConfig) -> bool:
    """True when every brick holds consecutive input channels of one filter (no space-to-depth, no depthwise
    diagonal): per-channel-group quantities can then be computed on ``layer.weights`` directly."""
    return not (uses_space_to_depth(layer, arch) or layer.is_depthwise)


def lower(layer: Layer, arch: ArchConfig) -> Lowered:
    """Map one layer onto the machine's sub-convolutions."""
    if layer.kind == LayerKind.FC:
        a = layer.activations.reshape(1, -1, 1, 1)
        w = layer.weights.reshape(1, layer.out_channels, -1, 1, 1)
        return Lowered(a, w, np.array([a.shape[1]]), np.array([w.shape[1]]), np.zeros(1, np.int64), 1, 1, 1,
                       False, True)
    if layer.kind == LayerKind.GEMM:
        a = np.ascontiguousarray(layer.activations.T).reshape(1, -1, layer.activations.shape[0], 1)
        w = layer.weights.reshape(1, layer.out_channels, -1, 1, 1)
        return Lowered(a, w, np.array([a.shape[1]]), np.array([w.shape[1]]), np.zeros(1, np.int64), 1,
                       a.shape[2], 1, False, False)
    out_h, out_w = layer.output_hw
    acts, weights, stride = layer.activations, layer.weights, layer.stride
    c = layer.in_channels
    if uses_space_to_depth(layer, arch):
        acts, weights = space_to_depth(acts, weights, layer.padding, stride)
        stride = 1
    else:
        pt, pb, pl, pr = layer.padding
        acts = np.pad(acts, ((0, 0), (pt, pb), (pl, pr)))
    if layer.is_depthwise:
        m = min(arch.lanes, arch.rows)
        g = -(-c // m)
        cpad = g * m - c
        a = np.pad(acts, ((0, cpad), (0, 0), (0, 0))).reshape(g, m, *acts.shape[1:])
        wd = np.pad(weights[:, 0], ((0, cpad), (0, 0), (0, 0))).reshape(g, m, *weights.shape[2:])
        w = np.zeros((g, m, m, *weights.shape[2:]), dtype=weights.dtype)
        idx = np.arange(m)
        w[:, idx, idx] = wd
        real = np.minimum(m, c - m * np.arange(g))
        spread = arch.tiles if arch.depthwise_mapping == DepthwiseMapping.SPREAD else 1
        return Lowered(np.ascontiguousarray(a), w, real, real.copy(), m * np.arange(g), stride, out_h, out_w,
                       True, False, spread)
    g = layer.groups
    cg, kg = acts.shape[0] // g, weights.shape[0] // g
    a = acts.reshape(g, cg, *acts.shape[1:])
    w = weights.reshape(g, kg, *weights.shape[1:])
    return Lowered(np.ascontiguousarray(a), np.ascontiguousarray(w), np.full(g, cg), np.full(g, kg),
                   kg * np.arange(g), stride, out_h, out_w, False, False)
