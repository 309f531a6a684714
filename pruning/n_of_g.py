"""Accelerator-aware N-of-g balanced pruning (Kang, IEEE TCSVT 30(7), 2020).

Every group of ``group`` weights that meet the activations fetched together keeps the same number of non-zero
weights, ``keep`` of ``group``: the ``keep`` largest magnitudes (ties: the lower channel). A group is ``group``
consecutive input channels of one filter at one kernel position, in the simulator's own brick order
(``workloads.bricks.layer_channel_groups``: the space-to-depth rewrite of a strided 3-channel first conv
included); with ``group`` = the PE's lanes, a group is a weight brick, so every PE of an indexed sparse
accelerator (Cambricon-X) finds the same work in every brick. The last group of a channel range holds fewer real
weights (the rest is padding) and keeps at most ``keep`` of them. Within a group all weights share their filter's
scale, so integer magnitudes compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from workloads import Layer, Workload
from workloads.bricks import layer_channel_groups

from .base import (
    METHODS,
    SPACE_TO_DEPTH,
    Param,
    PruneResult,
    PruningError,
    assemble,
    check_layers_param,
    register,
    selected,
)


@njit(cache=True)
def _keep_largest(flat: np.ndarray, groups: np.ndarray, keep: int, out: np.ndarray) -> None:
    """Write into ``out`` the weights of ``flat`` each group keeps: its ``keep`` largest |w|, ties to the lower
    position in the group (groups: flat indices, -1 = padding)."""
    n_g, g = groups.shape
    mags = np.empty(g, dtype=np.int64)
    for i in range(n_g):
        for j in range(g):
            idx = groups[i, j]
            mags[j] = abs(flat[idx]) if idx >= 0 else -1
        for _ in range(keep):
            best = -1
            for j in range(g):
                if mags[j] > 0 and (best < 0 or mags[j] > mags[best]):
                    best = j
            if best < 0:
                break
            out[groups[i, best]] = flat[groups[i, best]]
            mags[best] = -1


def keep_layer(layer: Layer, weights: np.ndarray, keep: int, group: int, first_layer_space_to_depth: bool = True
               ) -> np.ndarray:
    """``weights`` (shaped like the layer's) with only the ``keep`` largest of every group left."""
    groups = layer_channel_groups(layer, group, first_layer_space_to_depth)
    flat = weights.ravel().astype(np.int64)
    out = np.zeros_like(flat)
    _keep_largest(flat, groups, keep, out)
    return out.reshape(weights.shape)


@register("n_of_g",
          Param("keep", int, "non-zero weights each group keeps (N)", lo=0),
          Param("group", int, "weights per group: consecutive input channels of one filter and tap (g)", 16, lo=1),
          SPACE_TO_DEPTH,
          summary="N-of-g balanced pruning: every group of g channels keeps its N largest weights (Kang)")
def n_of_g(workload: Workload, *, keep: int, group: int = 16, first_layer_space_to_depth: bool = True,
           layers: Sequence[str] | None = None, seed: int = 0) -> PruneResult:
    """Keep the ``keep`` largest-magnitude weights of every group of ``group`` consecutive input channels."""
    check_layers_param(layers)
    params = METHODS["n_of_g"].bind({"keep": keep, "group": group,
                                     "first_layer_space_to_depth": first_layer_space_to_depth})
    if params["keep"] > params["group"]:
        raise PruningError(f"n_of_g: keep ({params['keep']}) must not exceed group ({params['group']})")
    new, extra = {}, {}
    for layer in selected(workload, layers, "n_of_g"):
        out = keep_layer(layer, layer.weights, params["keep"], params["group"], params["first_layer_space_to_depth"])
        new[layer.name] = out
        groups = layer_channel_groups(layer, params["group"], params["first_layer_space_to_depth"])
        nz = (np.where(groups >= 0, out.ravel()[np.maximum(groups, 0)], 0) != 0).sum(axis=1)
        extra[layer.name] = {"groups": len(groups), "max_nonzero_per_group": int(nz.max()) if nz.size else 0}
    return assemble(workload, "n_of_g", params, new, extra)
