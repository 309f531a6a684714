"""How a layer's channels are cut into bricks and lane groups (docs/design.md §3), for the simulator and pruning.

A *brick* is ``lanes`` consecutive input channels of one position (an activation brick) or of one filter at one
kernel position (a weight brick), zero-padded at the end of the channel range. Before channels are cut, the
machine rewrites some layers, and every user of the grouping (the simulator's engines, the pruning methods that
balance or share bits per group of lanes) must see the same channels together:

- a dense conv with 3 input channels and stride s > 1 is rewritten space-to-depth (DNNsim's order): after
  padding, input (c, h, w) moves to channel ((h mod s)*s + w mod s)*3 + c at (h div s, w div s); the weights
  are rearranged alike into a ceil(R/s) x ceil(S/s) kernel (zero where there is no tap); stride becomes 1;
- a grouped conv is G dense sub-convs of C/g channels and K/g filters, run one after the other;
- a depthwise conv (DNNsim's mapping) is ceil(C/m) sub-convs of m channels and m filters whose weights are
  diagonal (filter i sees only channel i), m = min(lanes, rows);
- a GEMM is a 1x1 conv over (C, T, 1); an FC layer is one sub-conv of one window.

:func:`lower` returns those sub-convolutions; :func:`to_bricks` cuts an axis into bricks;
:func:`weight_brick_index` says where every weight sits in the bricks; :func:`channel_groups` gives the flat
indices of the weights that share a group of lanes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .layer import Layer, LayerKind, WeightFormat


@dataclass(frozen=True)
class Lowered:
    """Sub-convolutions of one layer, in the order the machine runs them."""

    acts: np.ndarray  # (G, Cg, Hp, Wp) int32, padded inputs of every sub-conv
    weights: np.ndarray  # (G, Kg, Cg, R, S)
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


def space_to_depth_weights(weights: np.ndarray, stride: int) -> np.ndarray:
    """Weights (K, 3, R, S) of a strided first conv rearranged for its space-to-depth rewrite: (K, s*s*3,
    ceil(R/s), ceil(S/s)), tap (r, s_) of channel c at channel ((r mod s)*s + s_ mod s)*3 + c, position
    (r div s, s_ div s); zero where the original kernel has no tap."""
    s = stride
    k, c, r, sk = weights.shape
    r2, s2 = -(-r // s), -(-sk // s)
    wp = np.pad(weights, ((0, 0), (0, 0), (0, r2 * s - r), (0, s2 * s - sk)))
    w2 = wp.reshape(k, c, r2, s, s2, s).transpose(0, 3, 5, 1, 2, 4).reshape(k, s * s * c, r2, s2)
    return np.ascontiguousarray(w2)


def space_to_depth(acts: np.ndarray, weights: np.ndarray, padding, stride: int):
    """DNNsim's first-layer rewrite: returns (acts', weights') for a stride-1 conv with the same outputs."""
    s = stride
    pt, pb, pl, pr = padding
    a = np.pad(acts, ((0, 0), (pt, pb), (pl, pr)))
    c, h, w = a.shape
    hs, ws = -(-h // s), -(-w // s)
    a = np.pad(a, ((0, 0), (0, hs * s - h), (0, ws * s - w)))
    # (c, hs, s_h, ws, s_w) -> (s_h, s_w, c, hs, ws)
    a2 = a.reshape(c, hs, s, ws, s).transpose(2, 4, 0, 1, 3).reshape(s * s * c, hs, ws)
    return np.ascontiguousarray(a2), space_to_depth_weights(weights, stride)


def uses_space_to_depth(layer: Layer, enabled: bool = True) -> bool:
    """Whether the machine rewrites this layer space-to-depth (a strided, dense, 3-channel conv), given the
    simulator's ``first_layer_space_to_depth`` knob."""
    return (enabled and layer.kind == LayerKind.CONV and layer.groups == 1 and layer.in_channels == 3
            and layer.stride > 1)


def channels_are_bricked_in_order(layer: Layer, space_to_depth_enabled: bool = True) -> bool:
    """True when every brick holds consecutive input channels of one filter (no space-to-depth, no depthwise
    diagonal): per-channel-group quantities can then be computed on ``layer.weights`` directly."""
    return not (uses_space_to_depth(layer, space_to_depth_enabled) or layer.is_depthwise)


def channel_rows(layer: Layer) -> np.ndarray:
    """The layer's weights with input channels on the last axis, one row per (filter, tap), contiguous: when
    :func:`channels_are_bricked_in_order`, a brick's lanes are consecutive channels of a row."""
    return np.ascontiguousarray(np.moveaxis(layer.weights, 1, -1).reshape(-1, layer.weights.shape[1]))


def lowered_elements(layer: Layer, *, lanes: int, rows: int, space_to_depth_enabled: bool = True) -> int:
    """How many values :func:`lower` would allocate (activations + weights), computed from the shapes alone, so
    that a layer too large to simulate can be refused before anything is allocated."""
    if layer.kind != LayerKind.CONV:
        return int(layer.activations.size) + int(layer.weights.size)
    c, h, w = layer.activations.shape
    k, cg, r, s = layer.weights.shape
    pt, pb, pl, pr = layer.padding
    hp, wp = h + pt + pb, w + pl + pr
    if uses_space_to_depth(layer, space_to_depth_enabled):
        st = layer.stride
        return c * st * st * -(-hp // st) * -(-wp // st) + k * c * st * st * -(-r // st) * -(-s // st)
    if layer.is_depthwise:
        m = min(lanes, rows)
        g = -(-c // m)
        return g * m * hp * wp + g * m * m * r * s
    return c * hp * wp + k * cg * r * s


def lower(layer: Layer, *, lanes: int, rows: int, tiles: int = 1, space_to_depth_enabled: bool = True,
          spread: bool = False) -> Lowered:
    """Map one layer onto the machine's sub-convolutions (``spread``: depthwise groups run ``tiles`` at a time)."""
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
    if uses_space_to_depth(layer, space_to_depth_enabled):
        acts, weights = space_to_depth(acts, weights, layer.padding, stride)
        stride = 1
    else:
        pt, pb, pl, pr = layer.padding
        acts = np.pad(acts, ((0, 0), (pt, pb), (pl, pr)))
    if layer.is_depthwise:
        m = min(lanes, rows)
        g = -(-c // m)
        cpad = g * m - c
        a = np.pad(acts, ((0, cpad), (0, 0), (0, 0))).reshape(g, m, *acts.shape[1:])
        wd = np.pad(weights[:, 0], ((0, cpad), (0, 0), (0, 0))).reshape(g, m, *weights.shape[2:])
        w = np.zeros((g, m, m, *weights.shape[2:]), dtype=weights.dtype)
        idx = np.arange(m)
        w[:, idx, idx] = wd
        real = np.minimum(m, c - m * np.arange(g))
        return Lowered(np.ascontiguousarray(a), w, real, real.copy(), m * np.arange(g), stride, out_h, out_w,
                       True, False, tiles if spread else 1)
    g = layer.groups
    cg, kg = acts.shape[0] // g, weights.shape[0] // g
    a = acts.reshape(g, cg, *acts.shape[1:])
    w = weights.reshape(g, kg, *weights.shape[1:])
    return Lowered(np.ascontiguousarray(a), np.ascontiguousarray(w), np.full(g, cg), np.full(g, kg),
                   kg * np.arange(g), stride, out_h, out_w, False, False)


def to_bricks(values: np.ndarray, lanes: int, channel_axis: int = 0) -> np.ndarray:
    """Cut ``values`` along ``channel_axis`` into bricks of ``lanes`` channels (zero-padded at the end).

    Returns an array shaped like ``values`` with the channel axis replaced by the brick index and a
    trailing lane axis: e.g. (C, H, W) -> (CB, H, W, lanes).
    """
    c = values.shape[channel_axis]
    cb = -(-c // lanes)
    v = values
    if cb * lanes != c:
        pad = [(0, 0)] * values.ndim
        pad[channel_axis] = (0, cb * lanes - c)
        v = np.pad(values, pad)
    shape = list(v.shape)
    shape[channel_axis:channel_axis + 1] = [cb, lanes]
    v = v.reshape(shape)
    return np.ascontiguousarray(np.moveaxis(v, channel_axis + 1, -1))


def weight_bricks(weights: np.ndarray, lanes: int) -> np.ndarray:
    """Lowered weights (G, Kg, Cg, R, S) as weight bricks (G, Kg, R, S, CB, lanes), in step order (r, s, brick)."""
    return np.ascontiguousarray(to_bricks(weights, lanes, channel_axis=2).transpose(0, 1, 3, 4, 2, 5))


def weight_brick_index(layer: Layer, *, lanes: int, rows: int, space_to_depth_enabled: bool = True) -> np.ndarray:
    """Where every weight of ``layer`` sits in the machine's weight bricks: (G, Kg, R, S, CB, lanes) int64 holding
    the flat index + 1 into ``layer.weights`` of the weight at each brick lane, 0 where no weight sits (padding,
    space-to-depth holes, depthwise off-diagonal lanes). Works for any number format: it lowers the map of
    indices, not the values."""
    ids = np.arange(1, layer.weights.size + 1, dtype=np.int64).reshape(layer.weights.shape)
    indexed = dataclasses.replace(layer, weights=ids, weight_format=WeightFormat.INT)  # a map, not values: no checks
    low = lower(indexed, lanes=lanes, rows=rows, space_to_depth_enabled=space_to_depth_enabled)
    return weight_bricks(low.weights, lanes)


def channel_groups(shape: tuple[int, ...], group_size: int, space_to_depth_stride: int = 1) -> np.ndarray:
    """(n_groups, group_size) flat indices into weights of ``shape`` ((K, C) or (K, C, R, S); -1 = padding) of the
    groups of ``group_size`` consecutive input channels of one filter at one kernel position, listed filter by
    filter, kernel position by position; with ``space_to_depth_stride`` s > 1, of the space-to-depth rewritten conv.
    Groups holding no weight are dropped. These are the lanes of a weight brick that share hardware when
    ``group_size`` divides the lanes."""
    if len(shape) not in (2, 4):
        raise ValueError(f"weights must be (K, C) or (K, C, R, S), got shape {tuple(shape)}")
    index = np.arange(1, int(np.prod(shape)) + 1, dtype=np.int64).reshape(shape)  # 0 = padding
    if len(shape) == 4:
        if space_to_depth_stride > 1:
            index = space_to_depth_weights(index, space_to_depth_stride)
        index = np.moveaxis(index, 1, -1)  # channels last: (K, R, S, C)
    c = index.shape[-1]
    cpad = -(-c // group_size) * group_size - c
    index = np.pad(index, [(0, 0)] * (index.ndim - 1) + [(0, cpad)]).reshape(-1, group_size)
    index = index[(index > 0).any(axis=1)]
    return index - 1


def layer_channel_groups(layer: Layer, group_size: int, space_to_depth_enabled: bool = True) -> np.ndarray:
    """:func:`channel_groups` of a layer's weights as the machine bricks them (space-to-depth rewrite included;
    depthwise weights: every weight is a group of its own, as on the diagonal bricks)."""
    stride = layer.stride if uses_space_to_depth(layer, space_to_depth_enabled) else 1
    return channel_groups(layer.weights.shape, group_size, stride)
