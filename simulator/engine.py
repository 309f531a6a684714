"""The fast engine: brick costs computed once per brick, gathered per step in numba, reduced by the sync."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from workloads import Layer, LayerKind, Workload
from workloads.bits import filter_term_sums, terms_sum, value_terms
from workloads.bricks import to_bricks, weight_bricks

from . import kernels
from .config import ArchConfig, load_arch
from .designs import DesignModel
from .designs.base import weight_error_fields
from .encodings import ENCODING_CODE
from .energy import row_energy
from .knobs import Serial, Sync
from .memory import layer_memory
from .plan import LayerPlan, Operand, plan_layer
from .results import COLUMNS, Results

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (layers done, layers total, current layer name)


def _mac_sum(layer: Layer, act_cost: np.ndarray | None, weight_cost: np.ndarray | None) -> int:
    """Sum over the layer's MACs of a per-value cost of the activation or of the weight."""
    oh, ow = layer.output_hw
    if weight_cost is not None:
        return int(weight_cost.sum(dtype=np.int64)) * oh * ow
    assert act_cost is not None
    k = layer.out_channels
    if layer.kind != LayerKind.CONV:
        return int(act_cost.sum(dtype=np.int64)) * k
    pt, pb, pl, pr = layer.padding
    g = layer.groups
    c = act_cost.shape[0]
    padded = np.pad(act_cost.astype(np.int64), ((0, 0), (pt, pb), (pl, pr)))
    per_group = padded.reshape(g, c // g, *padded.shape[1:]).sum(axis=1)
    _, _, r, s = layer.weights.shape
    sums = kernels.window_tap_sum(per_group, r, s, layer.stride, oh, ow)
    return int(sums.sum()) * (k // g)


def _fill_value(design: DesignModel, op: Operand, arch: ArchConfig) -> int:
    """The per-value cost of a zero (what padding positions cost)."""
    return int(design.value_cost(np.zeros(1, np.int32), op, arch)[0])


def simulate_layer(arch: ArchConfig, layer: Layer, *, first: bool = True, last: bool = True) -> dict:
    """One layer on one architecture: a row of the results table. ``first`` / ``last``: whether the layer starts or
    ends the network (its input is read from, or its output written to, DRAM; ``simulator.memory``)."""
    plan = plan_layer(arch, layer)
    design = arch.model
    custom = design.fast_layer(plan)
    pair_sum = None
    extras = {}
    if custom is not None:
        cyc, busy_pe, busy_lane, *more = custom
        extras = more[0] if more else {}
    elif plan.serial == Serial.BOTH:
        cyc, busy_pe, busy_lane, pair_sum = _both_path(plan, design)
    else:
        cyc, busy_pe, busy_lane = _brick_path(plan, design)
    custom_ideal = design.ideal_and_terms(plan)
    if custom_ideal is not None:
        ideal_work, terms = custom_ideal
    elif pair_sum is not None and design.pair_data_are_terms:  # the kernel summed terms(a) * terms(w) over the MACs
        ideal_work, terms = float(pair_sum), int(pair_sum)
    else:
        ideal_work, terms = _ideal_and_terms(plan, design)
    row = _row(plan, int(cyc), busy_pe, busy_lane, ideal_work, terms)
    row.update(extras)
    row.update(layer_memory(arch, layer, row["cycles"], row["act_brick_reads"], row["weight_brick_reads"],
                            plan.passes, plan.window_sets, first=first, last=last))
    row["time_us"] = row["total_cycles"] / arch.clock_mhz
    row.update(row_energy(arch, row))
    row.update(design.fidelity(arch, layer, row) or _fidelity(arch, layer))
    return row


def _fidelity(arch: ArchConfig, layer: Layer) -> dict:
    """``lossless``: the design multiplies the layer's own weights; ``weight_rel_error``: else ||w' - w|| / ||w||
    of the weights w' it multiplies (``effective_weights``)."""
    design = arch.model
    if design.surely_lossless(arch, layer):
        return {"lossless": True, "weight_rel_error": 0.0}
    w = np.asarray(layer.weights, dtype=np.float64)
    eff = np.asarray(design.effective_weights(arch, layer), dtype=np.float64)
    return weight_error_fields(float(np.sum((eff - w) ** 2)), float(np.sum(w * w)))


def _brick_path(plan: LayerPlan, design: DesignModel) -> tuple[int, int, int]:
    """Per-brick statistics from the design, gathered per step and reduced by the sync (numba kernels)."""
    arch, low, passes, serial, op = plan.arch, plan.low, plan.passes, plan.serial, plan.op
    lanes, tiles_rows = arch.lanes, arch.tiles * arch.rows
    ch, fl = low.channels.astype(np.int64), low.filters.astype(np.int64)
    if serial == Serial.WEIGHT:
        bricks = weight_bricks(low.weights, lanes)  # (G, Kg, R, S, CB, lanes)
    else:
        bricks = to_bricks(low.acts, lanes, channel_axis=1)  # (G, CB, Hp, Wp, lanes)
    shape = bricks.shape[:-1]
    stats = design.brick_stats(np.ascontiguousarray(bricks).reshape(-1, lanes), op, arch)
    hi, lo = stats.hi.reshape(shape), stats.lo.reshape(shape)
    mode, extra = stats.mode, stats.extra
    if low.is_fc:
        if serial == Serial.WEIGHT:
            cyc, busy_pe, busy_lane = kernels.fc_weight_serial(
                hi[0, :, 0, 0, :], lo[0, :, 0, 0, :], mode, extra, int(ch[0]), int(fl[0]), passes, lanes,
                arch.columns, arch.rows, arch.tiles, arch.unit_group)
        else:
            cyc, busy_pe, busy_lane = kernels.fc_activation_serial(
                hi[0, :, 0, 0], lo[0, :, 0, 0], mode, extra, int(ch[0]), int(fl[0]), passes, lanes, arch.columns,
                tiles_rows)
    elif serial == Serial.WEIGHT:
        cyc, busy_pe, busy_lane = kernels.conv_weight_serial(
            hi, lo, mode, extra, ch, fl, passes, low.windows, lanes, arch.columns, arch.rows, arch.tiles,
            arch.unit_group, low.spread_tiles, arch.run_ahead, low.diagonal)
    else:
        kr, ks = low.kernel
        cyc, busy_pe, busy_lane = kernels.conv_activation_serial(
            hi, lo, mode, extra, ch, fl, passes, low.stride, low.out_h, low.out_w, kr, ks, lanes, arch.columns,
            arch.unit_group, tiles_rows, low.spread_tiles, arch.run_ahead, low.diagonal)
    return int(cyc), int(busy_pe), int(busy_lane)


SYNC_CODE = {Sync.LOCKSTEP: 0, Sync.TILE: 1, Sync.PE: 2}


def _pair_int16(design: DesignModel, a_data: np.ndarray, w_data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A design's pair data as the kernels take them: int16, once checked non-negative with every product fitting."""
    lo = min(int(a_data.min(initial=0)), int(w_data.min(initial=0)))
    a_hi, w_hi = int(a_data.max(initial=0)), int(w_data.max(initial=0))
    if lo < 0 or a_hi * w_hi >= kernels.PAIR_LIMIT:
        raise ValueError(f"{design.design} pair data out of range (min {lo}, max {a_hi} x {w_hi}): the both-serial "
                         "kernels take non-negative counts whose products fit int16")
    return a_data.astype(np.int16, copy=False), w_data.astype(np.int16, copy=False)


def _both_path(plan: LayerPlan, design: DesignModel) -> tuple[int, int, int, int]:
    """Both operands serial: per-PE costs from the design's pair data, reduced by the ``sync`` knob; also the sum
    over the MACs of the pair data's products (``kernels.conv_both_serial``)."""
    arch, low, passes = plan.arch, plan.low, plan.passes
    acts = to_bricks(low.acts, arch.lanes, channel_axis=1)  # (G, CB, Hp, Wp, lanes)
    wgts = weight_bricks(low.weights, arch.lanes)  # (G, Kg, R, S, CB, lanes)
    lanes = arch.lanes
    aop, wop = plan.act, plan.weight
    a_data, w_data, lanewise = design.pair_data(acts.reshape(-1, lanes), wgts.reshape(-1, lanes), aop, wop, arch)
    a16, w16 = _pair_int16(design, a_data, w_data)
    ch, fl = low.channels.astype(np.int64), low.filters.astype(np.int64)
    a16 = a16.reshape(*acts.shape[:-1], -1)  # (G, CB, Hp, Wp, A)
    w16 = w16.reshape(*wgts.shape[:-1], -1)  # (G, Kg, R, S, CB, A)
    if low.is_fc:
        return kernels.fc_both_serial(a16[0, :, 0, 0], w16[0, :, 0, 0], lanewise, int(ch[0]), int(fl[0]), passes,
                                      lanes, arch.columns, arch.tiles * arch.rows)
    wt = np.ascontiguousarray(w16.transpose(0, 2, 3, 4, 5, 1))  # filters innermost: (G, R, S, CB, A, Kg)
    pe_total = np.zeros((arch.tiles, arch.rows, arch.columns), np.int64) if arch.sync == Sync.PE else None
    return kernels.conv_both_serial(
        a16, wt, lanewise, ch, fl, passes, low.stride, low.out_h, low.out_w, lanes, arch.columns, arch.rows,
        arch.tiles, low.spread_tiles, SYNC_CODE[arch.sync], low.diagonal, pe_total)


def _pair_mac_sum(layer: Layer, act_cost: np.ndarray, per_channel: np.ndarray, pad_cost: int = 0) -> int:
    """Sum over the layer's MACs of act_cost(a) * weight_cost(w), given ``per_channel`` = the weight costs summed
    over each group's filters, shaped (groups, C/groups, ...)."""
    if layer.kind == LayerKind.FC:
        return int(per_channel[0] @ act_cost.astype(np.int64))
    if layer.kind == LayerKind.GEMM:
        return int(per_channel[0] @ act_cost.sum(axis=0, dtype=np.int64))
    pt, pb, pl, pr = layer.padding
    oh, ow = layer.output_hw
    _, cg, r, s = layer.weights.shape
    # a padding position is a zero activation: it costs what a zero costs
    padded = np.pad(act_cost.astype(np.int64), ((0, 0), (pt, pb), (pl, pr)), constant_values=pad_cost)
    sums = kernels.tap_window_sums(padded, r, s, layer.stride, oh, ow)
    return int(np.einsum("gcrs,gcrs->", per_channel, sums.reshape(layer.groups, cg, r, s)))


def _per_channel(layer: Layer, weight_cost: np.ndarray | int) -> np.ndarray:
    """Weight costs summed over each group's filters; a scalar cost means every weight costs the same."""
    g = layer.groups
    kg = layer.out_channels // g
    shape = (g, *layer.weights.shape[1:])
    if np.isscalar(weight_cost):
        return np.full(shape, int(weight_cost) * kg, dtype=np.int64)
    return weight_cost.reshape(g, kg, *layer.weights.shape[1:]).sum(axis=1, dtype=np.int64)


def _ideal_and_terms(plan: LayerPlan, design: DesignModel) -> tuple[float, int]:
    """Ideal work (lane-cycles) and effectual terms, on the original layer's MACs."""
    arch, layer, serial, op = plan.arch, plan.layer, plan.serial, plan.op
    if serial == Serial.BOTH:
        aop, wop = plan.act, plan.weight
        enc = ENCODING_CODE[arch.encoding]
        w_terms = filter_term_sums(layer.weights, enc, layer.groups)
        terms = _pair_mac_sum(layer, value_terms(layer.activations, enc), w_terms)
        if design.cost_is_terms:
            return float(terms), terms
        ca, cw = design.pair_value_costs(layer.activations, layer.weights, aop, wop, arch)
        zero = int(np.asarray(design.pair_value_costs(np.zeros(1, np.int32), layer.weights.ravel()[:1], aop, wop,
                                                      arch)[0])[0])
        return float(_pair_mac_sum(layer, ca, _per_channel(layer, cw), zero)), terms
    if serial == Serial.NONE:
        ideal_work = terms = layer.macs
    else:
        values = layer.weights if serial == Serial.WEIGHT else layer.activations
        enc = ENCODING_CODE[arch.encoding]
        if serial == Serial.WEIGHT:  # every weight meets every window: plain sums, no per-value arrays kept
            oh, ow = layer.output_hw
            terms = terms_sum(values, enc) * oh * ow
            ideal_work = terms if design.cost_is_terms else _mac_sum(layer, None, design.value_cost(values, op, arch))
        else:
            cost = design.value_cost(values, op, arch)
            term_counts = cost if design.cost_is_terms else value_terms(values, enc)
            pad_cost = _fill_value(design, op, arch)
            ideal_work = _mac_sum(layer, cost, None)
            if pad_cost and layer.kind == LayerKind.CONV and any(layer.padding):
                # padding positions are zeros that still cost (e.g. Stripes' fixed precision)
                ones = np.ones(layer.activations.shape, np.int32)
                ideal_work += pad_cost * (layer.macs - _mac_sum(layer, ones, None))
            terms = _mac_sum(layer, term_counts, None)
    return ideal_work, terms


def _row(plan: LayerPlan, cycles: int, busy_pe: int, busy_lane: int, ideal_work: float, terms: int) -> dict:
    """One row of the results table: cycles, ideal work, utilization and activity counters."""
    arch, layer, low, passes = plan.arch, plan.layer, plan.low, plan.passes
    tiles_rows = arch.tiles * arch.rows
    fl = low.filters.astype(np.int64)
    steps = plan.steps
    n_ws = plan.window_sets
    real_filters = int(fl.sum())
    if low.is_fc:
        act_reads = passes * steps
        weight_reads = steps * real_filters
        psum_writes = sum(max(0, min(tiles_rows, real_filters - p * tiles_rows)) for p in range(passes)) * min(
            arch.columns, steps)
    else:
        act_reads = passes * steps * low.windows * low.groups
        weight_reads = n_ws * steps * real_filters
        psum_writes = low.windows * real_filters
    chip_lane_cycles = cycles * arch.chip_lanes
    # a layer whose every step was skipped (all-zero weights on a zero-skipping design) takes no cycle: nothing
    # ran, so nothing was utilized
    pe_util = int(busy_pe) / (cycles * arch.pes) if cycles else 0.0
    lane_util = int(busy_lane) / chip_lane_cycles if cycles else 0.0
    return {
        "arch": arch.name, "config_hash": arch.config_hash(), "layer": layer.name, "kind": str(layer.kind),
        "macs": layer.macs, "cycles": cycles, "ideal_cycles": ideal_work / arch.chip_lanes,
        "pe_utilization": pe_util, "lane_utilization": lane_util,
        "terms": int(terms), "act_brick_reads": int(act_reads), "weight_brick_reads": int(weight_reads),
        "psum_writes": int(psum_writes), "busy_pe_cycles": int(busy_pe), "busy_lane_cycles": int(busy_lane),
        "idle_lane_cycles": chip_lane_cycles - int(busy_lane),
    }


def effective_weights(arch: ArchConfig | str, layer: Layer) -> np.ndarray:
    """The weights ``arch`` actually multiplies on ``layer`` (differs from layer.weights for lossy designs)."""
    if not isinstance(arch, ArchConfig):
        arch = load_arch(arch)
    return arch.model.effective_weights(arch, layer)


def simulate(arch: ArchConfig | str, workload: Workload, *, progress: Progress | None = None) -> Results:
    """Simulate ``workload`` on ``arch`` (an ArchConfig or a preset name) with the fast engine."""
    if not isinstance(arch, ArchConfig):
        arch = load_arch(arch)
    if not isinstance(workload, Workload):
        raise TypeError(f"simulate: workload must be a workloads.Workload, not {type(workload).__name__} "
                        f"{workload!r:.60}; build one with workloads.synthetic.build(name), "
                        f"workloads.load_builtin(name) or Workload.load(path)")
    rows = []
    n = len(workload.layers)
    for i, layer in enumerate(workload.layers):
        if progress:
            progress(i, n, layer.name)
        rows.append(simulate_layer(arch, layer, first=i == 0, last=i == n - 1))
        log.debug("%s %s: %d cycles", arch.name, layer.name, rows[-1]["cycles"])
    if progress:
        progress(len(workload.layers), len(workload.layers), "")
    table = pd.DataFrame(rows)
    table.insert(2, "workload", workload.name)
    return Results(arch, workload.name, table[COLUMNS + list(arch.model.extra_columns)], workload.digest())
