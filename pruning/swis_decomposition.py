"""SWIS offline weight decomposition (Li, Romaszkan, Graening, Gupta, "SWIS: Shared Weight bIt Sparsity for
Efficient Neural Network Acceleration", arXiv:2103.01308, 2021).

A *group* is ``group_size`` consecutive weights along the input-channel axis of one filter at one kernel
position: for conv weights (K, C, R, S) the groups run along C at every (k, r, s), for fc / GEMM weights
(K, C) along C; the last group of a channel range is zero-padded. That is the grouping the ``swis`` design
applies to the lanes of a weight brick when its ``group_size`` is the same G (G divides the lanes, so groups
never straddle bricks). ``swis`` (the pruning method) also follows the simulator's space-to-depth rewrite of a
3-channel strided conv (docs/design.md §3), whose channels are re-ordered before they are cut into bricks.

Methods (each weight keeps its sign; magnitudes are approximated):

- ``swis``: per group, choose N = ``shared_terms`` shared bit positions P and, for every weight, bits b_p
  in {0, 1} on P (|w| ~ sum b_p 2^p) minimising the group's squared error. Exact search: every N-subset P
  of the B magnitude bit positions is tried, each weight taking the best subset sum of P (a precomputed
  table; ties go to the smaller magnitude); among equal-error sets the one whose weights use the fewest
  distinct positions (fewest cycles) wins, then the first in increasing-mask order. The search is exact
  whenever the table (C(B, N) sets x 2^B magnitudes) has at most ``EXACT_TABLE_LIMIT`` = 2^21 entries:
  always for B <= 8 (at most 70 x 256), also e.g. B = 12 with N <= 4. Otherwise (e.g. 16-bit weights with
  2 <= N <= 14) it is a heuristic: the best of three seeds (greedy forward selection of positions, the
  group's N most significant OR positions, the ``fixed`` set below) improved by first-improvement single
  swaps (one position out, one in) until no swap lowers the error; positions above the group's largest
  msb + 1 are not tried (they cannot help). On int8 Laplace data it matches the exact search on 99.96 % of
  the groups. Approximations never leave the layer's range (e.g. +127 / -128 for signed 8-bit).
- ``truncate``: every weight keeps its own N most significant one bits (no sharing: up to G*N positions
  per group). Not always worse than ``swis``, which shares N positions per group (weights [1, 2] with
  N = 1: truncation is exact, SWIS is not); ``swis`` is never worse on a group whose truncated weights use
  at most N distinct positions in all.
- ``shared_msb``: every weight restricted to the N most significant positions of its group's OR: what the
  ``swis`` design applies at run time to weights that were not decomposed.
- ``fixed``: every weight restricted to the same N positions, the N most significant ones of the tensor's
  largest magnitude (N-bit truncation of the tensor's range): our reading of the paper's "weight
  truncation" baseline (its abstract reports SWIS far more accurate than truncation, which per-weight
  ``truncate`` is not).

``swis`` is never worse than ``shared_msb`` or ``fixed`` on any group: their position sets are candidates of
the exact search and seeds of the heuristic.

Library code: no printing; deterministic (no random choices).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
from numba import njit

from workloads import Layer, Workload
from workloads.bits import msb_index, popcount, top_bits
from workloads.bricks import channel_groups, layer_channel_groups

from .base import METHODS, SPACE_TO_DEPTH, Param, PruneResult, assemble, check_layers_param, register, selected

DECOMPOSITIONS = ("swis", "truncate", "shared_msb", "fixed")
EXACT_TABLE_LIMIT = 1 << 21  # exhaustive search when C(B, N) position sets x 2^B magnitudes fit this table
_MAX_SWAP_ROUNDS = 256


# --------------------------------------------------------------------------------------------- numba kernels
@njit(cache=True)
def _nearest(m: int, mask: int, cap: int, nbits: int) -> int:
    """The subset sum of the powers of two in ``mask`` nearest to m (<= cap; ties: the smaller one).

    Floor: greedy from the top (the lower positions of a set sum to less than any higher one). Ceiling: the
    smallest of prefix + 2^p over the positions p the greedy floor skipped (every value above m is at least
    one of them)."""
    floor = 0
    ceil = -1
    for p in range(nbits - 1, -1, -1):
        if (mask >> p) & 1:
            v = floor + (1 << p)
            if v <= m:
                floor = v
            elif v <= cap and (ceil < 0 or v < ceil):
                ceil = v
    if ceil >= 0 and ceil - m < m - floor:
        return ceil
    return floor


@njit(cache=True)
def _tables(sets: np.ndarray, max_m: int, cap_pos: int, cap_neg: int, nbits: int):
    """approx[sign][s, m]: best approximation of magnitude m on position set s (sign 0: positive, 1: negative)."""
    approx = np.empty((2, sets.shape[0], max_m + 1), dtype=np.int64)
    for s in range(sets.shape[0]):
        for m in range(max_m + 1):
            approx[0, s, m] = _nearest(m, sets[s], cap_pos, nbits)
            approx[1, s, m] = _nearest(m, sets[s], cap_neg, nbits)
    return approx


@njit(cache=True)
def _search_exact(mags: np.ndarray, negs: np.ndarray, approx: np.ndarray):
    """Exhaustive search over the position sets of ``approx`` for every group (row of ``mags``)."""
    n_groups, g_size = mags.shape
    n_sets = approx.shape[1]
    out = np.empty_like(mags)
    sse = np.empty(n_groups, dtype=np.int64)
    for g in range(n_groups):
        best_e = -1
        best_used = 0
        best_s = 0
        for s in range(n_sets):
            e = 0
            used = 0
            for i in range(g_size):
                m = mags[g, i]
                a = approx[1 if negs[g, i] else 0, s, m]
                e += (m - a) * (m - a)
                used |= a
            u = popcount(used)
            if best_e < 0 or e < best_e or (e == best_e and u < best_used):
                best_e = e
                best_used = u
                best_s = s
        for i in range(g_size):
            out[g, i] = approx[1 if negs[g, i] else 0, best_s, mags[g, i]]
        sse[g] = best_e
    return out, sse


@njit(cache=True)
def _set_error(mags, negs, g, mask, cap_pos, cap_neg, nbits, bound) -> int:
    """Squared error of group g on position set ``mask``; stops early once it reaches ``bound`` (-1: none)."""
    e = 0
    for i in range(mags.shape[1]):
        m = mags[g, i]
        a = _nearest(m, mask, cap_neg if negs[g, i] else cap_pos, nbits)
        e += (m - a) * (m - a)
        if 0 <= bound <= e:
            return e
    return e


@njit(cache=True)
def _search_local(mags: np.ndarray, negs: np.ndarray, n: int, cap_pos: int, cap_neg: int, nbits: int,
                  fixed_mask: int):
    """Heuristic for wide weights: best of three seeds (greedy forward selection, the group's top-n OR
    positions, ``fixed_mask``), then first-improvement single swaps until none lowers the squared error."""
    n_groups, g_size = mags.shape
    out = np.empty_like(mags)
    sse = np.empty(n_groups, dtype=np.int64)
    for g in range(n_groups):
        union = 0
        for i in range(g_size):
            union |= mags[g, i]
        top = max(min(nbits - 1, msb_index(union) + 1), msb_index(fixed_mask))  # higher ones cannot help
        # seed 1: greedy forward selection
        mask = 0
        for _ in range(n):
            best_p = -1
            best_e = 0
            for p in range(top + 1):
                if (mask >> p) & 1:
                    continue
                e = _set_error(mags, negs, g, mask | (1 << p), cap_pos, cap_neg, nbits, best_e if best_p >= 0 else -1)
                if best_p < 0 or e < best_e:
                    best_p = p
                    best_e = e
            if best_p < 0:
                break
            mask |= 1 << best_p
        cur = _set_error(mags, negs, g, mask, cap_pos, cap_neg, nbits, -1)
        # seed 2: the group's n most significant OR positions
        msb_mask = top_bits(union, n)
        e2 = _set_error(mags, negs, g, msb_mask, cap_pos, cap_neg, nbits, cur)
        if e2 < cur:
            mask = msb_mask
            cur = e2
        e3 = _set_error(mags, negs, g, fixed_mask, cap_pos, cap_neg, nbits, cur)
        if e3 < cur:
            mask = fixed_mask
            cur = e3
        for _ in range(_MAX_SWAP_ROUNDS):
            improved = False
            for p in range(top + 1):
                if not (mask >> p) & 1:
                    continue
                for q in range(top + 1):
                    if (mask >> q) & 1:
                        continue
                    cand = (mask ^ (1 << p)) | (1 << q)
                    e = _set_error(mags, negs, g, cand, cap_pos, cap_neg, nbits, cur)
                    if e < cur:
                        mask = cand
                        cur = e
                        improved = True
                        break
                if improved:
                    break
            if not improved:
                break
        for i in range(g_size):
            out[g, i] = _nearest(mags[g, i], mask, cap_neg if negs[g, i] else cap_pos, nbits)
        sse[g] = cur
    return out, sse


@njit(cache=True)
def _truncate(mags: np.ndarray, n: int, mode: int, fixed_mask: int) -> np.ndarray:
    """mode 0: each weight's own top n one bits; 1: restricted to its group's top n OR positions;
    2: restricted to ``fixed_mask``."""
    n_groups, g_size = mags.shape
    out = np.empty_like(mags)
    for g in range(n_groups):
        keep = fixed_mask
        if mode == 1:
            union = 0
            for i in range(g_size):
                union |= mags[g, i]
            keep = top_bits(union, n)
        for i in range(g_size):
            m = mags[g, i]
            out[g, i] = top_bits(m, n) if mode == 0 else m & keep
    return out


# --------------------------------------------------------------------------------------------- public API
@dataclass(frozen=True, eq=False)
class SwisResult:
    """A decomposition. Group j holds the weights at flat indices ``groups[j]`` (-1 = zero padding)."""

    weights: np.ndarray  # the approximated integer weights, same shape and dtype as the input
    positions: np.ndarray  # (n_groups,) int64 bit mask of the positions the group's weights use (= its cycles)
    groups: np.ndarray  # (n_groups, group_size) flat indices into ``weights``, -1 = padding
    group_sse: np.ndarray  # (n_groups,) int64 squared error of each group
    mse: float  # mean squared error per weight, in (weight LSB)^2
    max_abs_error: int  # in weight LSBs
    method: str
    shared_terms: int
    group_size: int

    def positions_of(self, group: int) -> list[int]:
        """The positions group ``group`` uses, most significant first."""
        mask = int(self.positions[group])
        return [p for p in reversed(range(mask.bit_length())) if (mask >> p) & 1]


def _range_of(weights: np.ndarray, weight_bits: int | None, signed: bool) -> tuple[int, int, int]:
    """(cap for positive magnitudes, cap for negative magnitudes, magnitude bits) of the weights' range."""
    lo, hi = (int(weights.min()), int(weights.max())) if weights.size else (0, 0)
    if weight_bits is None:
        if signed:
            weight_bits = max(1, (-lo - 1).bit_length() + 1 if lo < 0 else 1, hi.bit_length() + 1)
        else:
            weight_bits = max(1, hi.bit_length())
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 1 <= weight_bits <= 32:
        raise ValueError(f"weight_bits ({weight_bits!r}) must be an integer in 1..32")
    cap_pos, cap_neg = ((1 << (weight_bits - 1)) - 1, 1 << (weight_bits - 1)) if signed else ((1 << weight_bits) - 1, 0)
    if hi > cap_pos or -lo > cap_neg:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"weights in [{lo}, {hi}] do not fit {weight_bits}-bit {kind} values")
    return cap_pos, cap_neg, max(cap_pos, cap_neg).bit_length()


def _check_knobs(shared_terms: int, group_size: int, method: str) -> None:
    for name, value in (("shared_terms", shared_terms), ("group_size", group_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} ({value!r}) must be a positive integer")
    if method not in DECOMPOSITIONS:
        raise ValueError(f"method ({method!r}) must be one of: {', '.join(DECOMPOSITIONS)}")


def _decompose_groups(weights: np.ndarray, groups: np.ndarray, shared_terms: int, method: str,
                      weight_bits: int | None, signed: bool) -> SwisResult:
    cap_pos, cap_neg, nbits = _range_of(weights, weight_bits, signed)
    flat = weights.ravel().astype(np.int64)
    real = groups >= 0
    vals = np.where(real, flat[np.maximum(groups, 0)], 0)
    mags, negs = np.abs(vals), vals < 0
    top = int(np.abs(flat).max()).bit_length() if flat.size else 0
    fixed_mask = ((1 << top) - 1) ^ ((1 << max(0, top - shared_terms)) - 1)  # the tensor's top N positions
    if method == "swis":
        n = min(shared_terms, nbits)
        if comb(nbits, n) << nbits <= EXACT_TABLE_LIMIT:
            sets = np.array([m for m in range(1 << nbits) if bin(m).count("1") == n], dtype=np.int64)
            approx = _tables(sets, max(cap_pos, cap_neg), cap_pos, cap_neg, nbits)
            approx_mags, sse = _search_exact(mags, negs, approx)
        else:
            approx_mags, sse = _search_local(mags, negs, n, cap_pos, cap_neg, nbits, fixed_mask)
    else:
        approx_mags = _truncate(mags, shared_terms, DECOMPOSITIONS.index(method) - 1, fixed_mask)
        sse = ((mags - approx_mags) ** 2).sum(axis=1)
    approx = np.where(negs, -approx_mags, approx_mags)
    out = flat.copy()
    out[groups[real]] = approx[real]
    positions = np.bitwise_or.reduce(approx_mags, axis=1) if len(groups) else np.zeros(0, np.int64)
    err = np.abs(out - flat)
    return SwisResult(
        weights=out.astype(weights.dtype).reshape(weights.shape), positions=positions.astype(np.int64),
        groups=groups, group_sse=sse.astype(np.int64), mse=float(sse.sum()) / max(1, flat.size),
        max_abs_error=int(err.max()) if err.size else 0, method=method, shared_terms=int(shared_terms),
        group_size=int(groups.shape[1]),
    )


def decompose(weights: np.ndarray, *, shared_terms: int, group_size: int, method: str = "swis",
              weight_bits: int | None = None, signed: bool = True) -> SwisResult:
    """Approximate integer ``weights`` ((K, C) or (K, C, R, S)) with N = ``shared_terms`` shift positions per
    group of ``group_size`` consecutive input channels (see the module docstring for the methods).

    ``weight_bits`` / ``signed`` give the range the results must stay in (default: the smallest two's
    complement width holding the weights, or unsigned width if ``signed`` is false).
    """
    _check_knobs(shared_terms, group_size, method)
    weights = np.asarray(weights)
    if not np.issubdtype(weights.dtype, np.integer):
        raise ValueError(f"weights must be integers, got dtype {weights.dtype}")
    groups = channel_groups(weights.shape, int(group_size))
    return _decompose_groups(weights, groups, int(shared_terms), method, weight_bits, signed)


@register("swis",
          Param("shared_terms", int, "shift positions a group shares (N)", 3, lo=1),
          Param("group_size", int, "consecutive input channels per group (the swis design's group_size)", 8, lo=1),
          Param("decomposition", str, "swis (shared positions, exact search), truncate, shared_msb or fixed",
                "swis", choices=DECOMPOSITIONS),
          SPACE_TO_DEPTH,
          summary="SWIS: N shift positions shared per group of weights (offline decomposition)")
def swis(workload: Workload, *, shared_terms: int = 3, group_size: int = 8, decomposition: str = "swis",
         first_layer_space_to_depth: bool = True, layers=None, seed: int = 0) -> PruneResult:
    """Every selected layer's weights decomposed with ``decomposition``; the report gives, per layer, the error of
    every decomposition (``mse_<d>_lsb2``: mean squared error in weight LSBs squared; ``rel_mse_<d>``: that over
    the mean squared weight; ``max_abs_error_<d>_lsb``; ``positions_per_group_<d>``: mean distinct positions a group
    uses = its cycles on the ``swis`` design). ``group_size`` must equal the ``swis`` design's and
    ``first_layer_space_to_depth`` the simulator's knob of the same name."""
    check_layers_param(layers)
    params = METHODS["swis"].bind({"shared_terms": shared_terms, "group_size": group_size,
                                   "decomposition": decomposition,
                                   "first_layer_space_to_depth": first_layer_space_to_depth})
    new, extra = {}, {}
    for layer in selected(workload, layers, "swis"):
        groups = layer_channel_groups(layer, params["group_size"], params["first_layer_space_to_depth"])
        results = {m: _decompose_groups(layer.weights, groups, params["shared_terms"], m, layer.weight_bits,
                                        layer.weight_signed) for m in DECOMPOSITIONS}
        new[layer.name] = results[params["decomposition"]].weights
        mean_sq = float((layer.weights.astype(np.float64) ** 2).mean())
        row = {"groups": int(len(groups))}
        for m, res in results.items():
            row[f"mse_{m}_lsb2"] = res.mse
            row[f"rel_mse_{m}"] = res.mse / mean_sq if mean_sq else 0.0
            row[f"max_abs_error_{m}_lsb"] = res.max_abs_error
            used = np.bitwise_count(res.positions.astype(np.uint64))
            row[f"positions_per_group_{m}"] = float(used.mean()) if used.size else 0.0
        extra[layer.name] = row
    return assemble(workload, "swis", params, new, extra)


def swis_layer(layer: Layer, weights: np.ndarray, shared_terms: int, group_size: int,
               first_layer_space_to_depth: bool = True) -> np.ndarray:
    """``weights`` (shaped like the layer's) decomposed with SWIS's shared positions (the retraining projection)."""
    groups = layer_channel_groups(layer, group_size, first_layer_space_to_depth)
    return _decompose_groups(weights, groups, shared_terms, "swis", layer.weight_bits, layer.weight_signed).weights


def swis_tables(layer: Layer, weights: np.ndarray, shared_terms: int, group_size: int,
                first_layer_space_to_depth: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """SWIS's decomposition of ``weights`` as nearest-value tables: one table (over magnitudes 0 .. cap + 1) per
    distinct position set the groups chose, and the table of every weight (shaped like the weights; the
    retraining projection, which keeps the groups' position sets between refreshes)."""
    groups = layer_channel_groups(layer, group_size, first_layer_space_to_depth)
    res = _decompose_groups(weights, groups, shared_terms, "swis", layer.weight_bits, layer.weight_signed)
    cap_pos, cap_neg, nbits = _range_of(weights, layer.weight_bits, layer.weight_signed)
    sets, index = np.unique(res.positions, return_inverse=True)
    tables = _tables(sets.astype(np.int64), max(cap_pos, cap_neg) + 1, cap_pos, cap_neg, nbits)[0]
    which = np.zeros(weights.size, dtype=np.int64)
    real = groups >= 0
    which[groups[real]] = np.broadcast_to(index.reshape(-1, 1), groups.shape)[real]
    return tables, which.reshape(weights.shape)
