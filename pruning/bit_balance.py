"""Bit-Pruner's restructuring for a lane-synchronous bit-serial engine (Zhao et al., TCAD 42(5), 2023).

On a weight-serial engine whose lanes run in lockstep with full per-lane shifters (the ``bsa`` preset), a group
of ``lanes`` weights that share a step costs the largest popcount among them: one heavy weight stalls the whole
group. This method gives every group a term budget b (its weights are capped at b one bits each: a weight with
more becomes the nearest value with at most b one bits, ties to the smaller magnitude, never leaving the range),
and chooses the budgets so that the layer reaches ``target`` bit sparsity with the least squared error.

What the sources leave open, and what this method does (docs/pruning.md):

- Groups are the lanes of a weight brick in the simulator's order (``workloads.bricks.layer_channel_groups`` with
  ``lanes`` consecutive input channels of one filter at one kernel position, space-to-depth included).
- Terms are binary one bits of the sign-magnitude value (Bit-Pruner's bit sparsity).
- Budgets minimise the total squared error subject to the layer's bit sparsity: for a multiplier lambda, each
  group takes the budget minimising ``error + lambda * bits`` (its own choice, independent of the others); the
  smallest lambda that reaches ``target`` is found by bisection (a layer already sparser than ``target`` is left
  as it is). The cost the engine sees, the mean budget actually used (max popcount per group), is reported
  before and after as ``group_cycles_before`` / ``group_cycles_after``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from workloads import Layer, Workload
from workloads.bricks import layer_channel_groups
from workloads.parallel import kernel, parts

from .base import (
    METHODS,
    SPACE_TO_DEPTH,
    Param,
    PruneResult,
    assemble,
    check_layers_param,
    magnitude_bits,
    magnitude_cap,
    register,
    selected,
)
from .bit_budget import allowed_magnitudes, nearest_table


@njit(cache=True)
def _group_tables(mags: np.ndarray, near: np.ndarray, pop: np.ndarray):
    """Per group (rows of ``mags``) and budget b (rows of ``near``): squared error and one bits left when every
    magnitude is capped at b one bits."""
    n_g, g = mags.shape
    n_b = near.shape[0]
    err = np.zeros((n_g, n_b), dtype=np.float64)
    ones = np.zeros((n_g, n_b), dtype=np.int64)
    for i in range(n_g):
        for b in range(n_b):
            e = 0.0
            o = 0
            for j in range(g):
                m = mags[i, j]
                v = near[b, m]
                e += float(m - v) * float(m - v)
                o += pop[v]
            err[i, b] = e
            ones[i, b] = o
    return err, ones


@njit(cache=True)
def _best_budget(err, ones, lam, i):
    """Group i's budget minimising err + lam * ones (ties: the larger budget)."""
    best = err.shape[1] - 1
    best_cost = err[i, best] + lam * ones[i, best]
    for b in range(best - 1, -1, -1):
        c = err[i, b] + lam * ones[i, b]
        if c < best_cost:
            best_cost = c
            best = b
    return best


@kernel
def _choose_budgets(n_parts, err, ones, lam, budget):
    total = 0
    for i in prange(err.shape[0]):
        best = _best_budget(err, ones, lam, i)
        budget[i] = best
        total += ones[i, best]
    return total


@kernel
def _chosen_ones(n_parts, err, ones, lam, idx):
    """Total ones over the groups ``idx`` of the budgets :func:`_choose` picks (the same rule, no budgets kept)."""
    total = 0
    for k in prange(idx.size):
        total += ones[idx[k], _best_budget(err, ones, lam, idx[k])]
    return total


def _lagrange_multiplier(err: np.ndarray, ones: np.ndarray, limit: float) -> float:
    """The multiplier of the search: doubling, then 60 bisection steps keeping ``hi`` feasible (total ones within
    ``limit``). A group picks the same budget at every multiplier between two at which it picks the same (its ones
    only fall as the multiplier grows), so every 8 steps the groups settled over [lo, hi] leave the search as a
    constant: the same steps, fewer groups."""
    def total(lam: float, idx: np.ndarray) -> int:
        return int(_chosen_ones(parts(idx.size * err.shape[1]), err, ones, float(lam), idx))

    active = np.arange(err.shape[0], dtype=np.int64)
    settled = 0
    lo, hi = 0.0, 1.0
    while total(hi, active) > limit:
        hi *= 2
    for step in range(60):
        mid = (lo + hi) / 2
        if settled + total(mid, active) > limit:
            lo = mid
        else:
            hi = mid
        if step % 8 == 7 and active.size:
            at_lo, at_hi = _choose(err[active], ones[active], lo)[0], _choose(err[active], ones[active], hi)[0]
            same = at_lo == at_hi
            settled += int(ones[active[same], at_hi[same]].sum())
            active = active[~same]
    return hi


def _choose(err: np.ndarray, ones: np.ndarray, lam: float) -> tuple[np.ndarray, int]:
    """Per group, the budget minimising err + lam * ones (ties: the larger budget); returns (budgets, total ones)."""
    budget = np.empty(err.shape[0], dtype=np.int64)
    return budget, int(_choose_budgets(parts(err.size), err, ones, float(lam), budget))


def balance_budgets(layer: Layer, weights: np.ndarray, lanes: int, target: float,
                    first_layer_space_to_depth: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The budgets ``balance_layer`` chooses for ``weights`` (shaped like the layer's), as nearest-value tables
    (B + 1, cap + 2) and the table of every weight (its group's budget; shaped like the weights)."""
    out, _, _, tables, budget = _balance(layer, weights, lanes, target, first_layer_space_to_depth)
    groups = layer_channel_groups(layer, lanes, first_layer_space_to_depth)
    which = np.full(weights.size, tables.shape[0] - 1, dtype=np.int64)
    real = groups >= 0
    which[groups[real]] = np.broadcast_to(budget[:, None], groups.shape)[real]
    return tables, which.reshape(weights.shape)


def balance_layer(layer: Layer, lanes: int, target: float, first_layer_space_to_depth: bool = True,
                  weights: np.ndarray | None = None):
    """(new weights, group cycles before, after) of one layer (or of ``weights`` shaped like its own): per-group
    budgets reaching ``target`` bit sparsity with the least squared error."""
    out, before, after, _, _ = _balance(layer, layer.weights if weights is None else weights, lanes, target,
                                        first_layer_space_to_depth)
    return out, before, after


def _balance(layer: Layer, weights: np.ndarray, lanes: int, target: float, first_layer_space_to_depth: bool):
    """(new weights, group cycles before, after, nearest tables per budget, budget of every group)."""
    cap = magnitude_cap(layer)
    groups = layer_channel_groups(layer, lanes, first_layer_space_to_depth)
    flat = weights.ravel().astype(np.int64)
    real = groups >= 0
    mags = np.where(real, np.abs(flat[np.maximum(groups, 0)]), 0)
    pop = np.bitwise_count(np.arange(cap + 2)).astype(np.int64)
    top = int(pop[mags].max()) if mags.size else 0
    near = np.stack([nearest_table(cap, allowed_magnitudes(cap, b)) for b in range(top + 1)])
    err, ones = _group_tables(mags, near, pop)
    limit = (1 - target) * flat.size * magnitude_bits(layer)  # one bits the layer may keep
    before = float(pop[mags].max(axis=1).mean()) if mags.size else 0.0
    if ones[:, top].sum() <= limit:
        return weights, before, before, near, np.full(len(groups), top, dtype=np.int64)
    budget, _ = _choose(err, ones, _lagrange_multiplier(err, ones, limit))
    capped = near[budget[:, None], mags]
    out = flat.copy()
    out[groups[real]] = (np.sign(flat[groups[real]]) * capped[real])
    after = float(pop[capped].max(axis=1).mean()) if mags.size else 0.0
    return out.reshape(weights.shape), before, after, near, budget


@register("bit_balance",
          Param("target", float, "bit sparsity each layer reaches (sign-magnitude)", lo=0.0, hi=1.0),
          Param("lanes", int, "weights that run in lockstep: the lanes of a weight brick", 16, lo=1),
          SPACE_TO_DEPTH,
          summary="Bit-Pruner restructuring: per lane-group bit budgets reaching a target bit sparsity")
def bit_balance(workload: Workload, *, target: float, lanes: int = 16, first_layer_space_to_depth: bool = True,
                layers: Sequence[str] | None = None, seed: int = 0) -> PruneResult:
    """Cap every lane group's weights at a bit budget chosen for least squared error at ``target`` bit sparsity."""
    check_layers_param(layers)
    params = METHODS["bit_balance"].bind({"target": target, "lanes": lanes,
                                          "first_layer_space_to_depth": first_layer_space_to_depth})
    new, extra = {}, {}
    for layer in selected(workload, layers, "bit_balance"):
        out, before, after = balance_layer(layer, params["lanes"], params["target"],
                                           params["first_layer_space_to_depth"])
        new[layer.name] = out
        extra[layer.name] = {"group_cycles_before": before, "group_cycles_after": after}
    return assemble(workload, "bit_balance", params, new, extra)
