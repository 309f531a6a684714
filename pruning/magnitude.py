"""Classical magnitude pruning: zero the weights of smallest magnitude.

``scope="layer"``: each layer loses ``sparsity`` of its weights; ``scope="global"``: one threshold over every
selected layer. Magnitudes are compared as real values (|w| x the recorded weight scale, per tensor or per
output channel), so that layers and channels quantized with different scales compare fairly. Exactly
``round(sparsity * N)`` weights end at zero (weights already zero count); ties go to the lower flat index (layer
order first, for the global scope).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workloads import Layer, Workload

from .base import METHODS, Param, PruneResult, assemble, check_layers_param, real_magnitudes, register, selected


def smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k smallest entries of a flat array (ties: lower index first), in O(n)."""
    n = values.size
    mask = np.zeros(n, dtype=bool)
    if k <= 0:
        return mask
    if k >= n:
        mask[:] = True
        return mask
    t = np.partition(values, k - 1)[k - 1]
    below = values < t
    mask |= below
    ties = np.flatnonzero(values == t)[: k - int(below.sum())]
    mask[ties] = True
    return mask


def prune_layer(layer: Layer, weights: np.ndarray, sparsity: float) -> np.ndarray:
    """``weights`` (shaped like the layer's) with the ``sparsity`` fraction of smallest real magnitudes zeroed."""
    mags = real_magnitudes(layer, weights).ravel()
    zero = smallest(mags, round(sparsity * mags.size))
    return np.where(zero, 0, weights.ravel()).reshape(weights.shape)


@register("magnitude",
          Param("sparsity", float, "fraction of the weights set to zero", lo=0.0, hi=1.0),
          Param("scope", str, "layer: each layer by itself; global: one threshold over all layers", "layer",
                choices=("layer", "global")),
          summary="zero the weights of smallest magnitude (per layer or globally)")
def magnitude(workload: Workload, *, sparsity: float, scope: str = "layer", layers: Sequence[str] | None = None,
              seed: int = 0) -> PruneResult:
    """Zero the ``sparsity`` fraction of smallest-magnitude weights, per layer or over all selected layers."""
    check_layers_param(layers)
    params = METHODS["magnitude"].bind({"sparsity": sparsity, "scope": scope})
    chosen = selected(workload, layers, "magnitude")
    new = {}
    if params["scope"] == "layer":
        for layer in chosen:
            new[layer.name] = prune_layer(layer, layer.weights, params["sparsity"])
    else:
        mags = np.concatenate([real_magnitudes(layer).ravel() for layer in chosen]) if chosen else np.zeros(0)
        zero = smallest(mags, round(params["sparsity"] * mags.size))
        start = 0
        for layer in chosen:
            n = layer.weights.size
            new[layer.name] = np.where(zero[start:start + n], 0, layer.weights.ravel()).reshape(layer.weights.shape)
            start += n
    extra = {name: {"threshold_scope": params["scope"]} for name in new}
    return assemble(workload, "magnitude", params, new, extra)
