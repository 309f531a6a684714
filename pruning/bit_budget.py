"""Bit budgets: every weight becomes the nearest value whose magnitude has at most ``max_terms`` terms.

Terms are the non-zero signed powers of two of the magnitude under ``encoding`` (``workloads.bits``): ``binary``
(its one bits, what a bit-serial PE with per-lane shifters processes), ``csd`` or ``booth``. The allowed
magnitudes are those in [0, cap] with at most ``max_terms`` terms, cap = 2^(magnitude bits) - 1 (for signed
weights the range is taken symmetric in sign-magnitude: an 8-bit weight keeps a 7-bit magnitude, so -128 becomes
the nearest allowed magnitude below 128); a weight moves to the nearest allowed magnitude (ties: the smaller
one) and keeps its sign, so no weight ever leaves the layer's range. For 8-bit binary weights the allowed
magnitudes with 1 and 2 terms are exactly the 7-bit magnitudes of popcount <= 1 and <= 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workloads import Layer, Workload
from workloads.bits import TABLE_SIZE, term_code, terms_table

from .base import (
    METHODS,
    Param,
    PruneResult,
    PruningError,
    assemble,
    check_layers_param,
    magnitude_cap,
    register,
    selected,
)


def allowed_magnitudes(cap: int, max_terms: int, encoding: str = "binary") -> np.ndarray:
    """The magnitudes 0..cap with at most ``max_terms`` terms under ``encoding``, ascending (int64)."""
    if cap >= TABLE_SIZE:
        raise PruningError(f"magnitudes up to {cap} exceed the 16-bit term tables")
    terms = terms_table(term_code(encoding))[: cap + 1]
    return np.flatnonzero(terms <= max_terms).astype(np.int64)


def nearest_table(cap: int, allowed: np.ndarray) -> np.ndarray:
    """For every magnitude 0..cap + 1 (cap + 1: the magnitude of a signed minimum), the nearest of ``allowed``
    (sorted, starting at 0); ties go to the smaller one. int64."""
    m = np.arange(cap + 2)
    hi_idx = np.minimum(np.searchsorted(allowed, m, side="left"), allowed.size - 1)
    lo_idx = np.maximum(np.where(allowed[hi_idx] > m, hi_idx - 1, hi_idx), 0)
    lo, hi = allowed[lo_idx], allowed[hi_idx]
    return np.where(hi - m < m - lo, hi, lo).astype(np.int64)


def apply_table(weights: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Every weight's magnitude mapped through ``table``, sign kept."""
    w = weights.astype(np.int64)
    return np.sign(w) * table[np.abs(w)]


def budget_table(layer: Layer, max_terms: int, encoding: str) -> np.ndarray:
    """The nearest-allowed-magnitude table of a layer's range under a budget of ``max_terms`` terms."""
    cap = magnitude_cap(layer)
    return nearest_table(cap, allowed_magnitudes(cap, max_terms, encoding))


def budget_layer(layer: Layer, max_terms: int, encoding: str, weights: np.ndarray | None = None) -> np.ndarray:
    """The layer's weights (or ``weights`` shaped like them) restricted to ``max_terms`` terms."""
    return apply_table(layer.weights if weights is None else weights, budget_table(layer, max_terms, encoding))


@register("bit_budget",
          Param("max_terms", int, "terms a weight's magnitude may keep", lo=1),
          Param("encoding", str, "what counts as a term: binary (one bits), csd or booth", "binary",
                choices=("binary", "csd", "booth")),
          summary="every weight to the nearest value with at most max_terms terms (binary, CSD or Booth)")
def bit_budget(workload: Workload, *, max_terms: int, encoding: str = "binary", layers: Sequence[str] | None = None,
               seed: int = 0) -> PruneResult:
    """Every weight of the selected layers becomes the nearest value with at most ``max_terms`` terms."""
    check_layers_param(layers)
    params = METHODS["bit_budget"].bind({"max_terms": max_terms, "encoding": encoding})
    code = term_code(params["encoding"])
    new, extra = {}, {}
    for layer in selected(workload, layers, "bit_budget"):
        out = budget_layer(layer, params["max_terms"], params["encoding"])
        new[layer.name] = out
        extra[layer.name] = {f"mean_terms_{params['encoding']}": float(terms_table(code)[np.abs(out)].mean())}
    return assemble(workload, "bit_budget", params, new, extra)
