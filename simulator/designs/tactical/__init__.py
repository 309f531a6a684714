"""Bit-Tactical (Delmas Lascorz et al., ASPLOS 2019): a static weight schedule skips zero weights in front of a
DaDianNao (TCL), Pragmatic (TCLe) or Dynamic Stripes (TCLp) back end.

Front end (:mod:`.schedule`): every filter set's weights are scheduled once, offline; a tile
holding filter set s runs its issued steps in order. All rows (filters) of a tile share the step sequence (a
step is skipped only if it is zero for every filter of the set) while each filter's lanes are filled by its own
promotions; a slot multiplies the activation its weight came with (up to h steps ahead, d lanes aside). Tiles
hold different sets, so they issue different numbers of steps: call i of a (window set, pass) gives every tile
its i-th issued step (a tile already done idles) and lasts as long as its slowest column, DNNsim's model.

Back ends (cost of one PE on one step, over the ``lanes`` activations its slots select; a slot without a
weight keeps its lane's own activation of the current step, the multiplexer's default, which the
activation-serial back ends process like any other: zero weights are not gated. With ``empty_slots: dnnsim``
the slots a promotion emptied (the weight went to an earlier step) are skipped, as DNNsim's process_pe does;
DNNsim's conv1 TCLe row is 662 either way, the least_flexible one is 563 with ``process`` and 562 with ``dnnsim``):
- ``dadiannao`` (TCL): 1 cycle;
- ``pragmatic`` (TCLe): PRA(term masks of the selected activations, first_stage_bits) with ``encoding``;
- ``dynamic_stripes`` (TCLp): the detected precision of the selected activations, shared by every PE of the
  tile in the column group (max msb - min lsb over their union, as Dynamic Stripes).
A column group (``group_size`` columns, spanning every tile) costs the max over its PEs; column groups run in
lockstep or with ``run_ahead`` registers (docs/design.md §4). FC layers issue the scheduled steps to the columns
round robin (docs/design.md §3) at the cost of the step's slowest PE; TCL's FC cycles are its steps.

The package: this model, ``schedule`` (the numba weight scheduler and the independent plain-Python one the
reference engine uses), ``fast`` (the fast engine's cost kernels), ``reference`` (the cycle-by-cycle model).
"""

from __future__ import annotations

import numpy as np

from workloads.bits import bit_tables, mask_table, value_terms, value_widths

from ... import components as hw
from ...encodings import ENCODING_CODE, brick_msb_lsb
from ...knobs import (
    DESIGNS,
    ENCODING,
    FIRST_STAGE_BITS,
    GROUP_SIZE,
    MINOR_BIT,
    RUN_AHEAD,
    Backend,
    Design,
    EmptySlots,
    Encoding,
    Knob,
    Promotion,
    SearchShape,
    Serial,
)
from ...plan import LayerPlan
from ...sync import fc_pipeline
from ..base import DesignModel
from .fast import (
    TCL,
    TCLE,
    TCLP,
    _act_values,
    _call_activity,
    _call_rows,
    _call_table,
    _conv_reduce,
    _effectual_mac_sum,
    _geometry,
    _job_table,
    _nonzero_counts,
    _units_tcl,
    _units_tcle,
    _units_tclp,
    brick_tables,
    duplicates,
    row_bounds,
    unit_costs,
)
from .reference import Reference
from .schedule import lane_words, schedule_compact

BACKEND_CODE = {Backend.DADIANNAO: TCL, Backend.PRAGMATIC: TCLE, Backend.DYNAMIC_STRIPES: TCLP}


class Tactical(DesignModel):
    design = Design.TACTICAL
    knobs = (
        Knob("backend", Backend, Backend.PRAGMATIC,
             "back end: dadiannao (TCL), pragmatic (TCLe) or dynamic_stripes (TCLp); sets the serial operand"),
        ENCODING.but(default=Encoding.BOOTH, choices=(Encoding.BOOTH, Encoding.BINARY, Encoding.CSD),
                     help="pragmatic back end: activation terms (booth, binary or csd)"),
        FIRST_STAGE_BITS.but(help="pragmatic back end: first-stage shifter reach B"),
        MINOR_BIT.but(help="dynamic_stripes back end: also trim trailing zero bits"),
        RUN_AHEAD, GROUP_SIZE,
        Knob("lookahead", int, 2, "steps a weight may be promoted from (h)", 0, 16),
        Knob("lookaside", int, 5, "lanes a weight may move across (d)", 0, 16),
        Knob("search_shape", SearchShape, SearchShape.T, "shape of the search map: T or L"),
        Knob("promotion", Promotion, Promotion.LEAST_FLEXIBLE,
             "which zero lane is filled first: least_flexible (paper) or most_candidates (DNNsim HEAD)"),
        Knob("empty_slots", EmptySlots, EmptySlots.PROCESS,
             "slots without a weight: process (each processes its lane's own activation) or dnnsim (the slots a "
             "promotion emptied are skipped by the activation-serial back ends)"),
    )

    def serial(self, knobs) -> Serial:
        return Serial.NONE if knobs["backend"] == Backend.DADIANNAO else Serial.ACTIVATION

    # ----------------------------------------------------------------- fast engine
    def fast_layer(self, plan: LayerPlan) -> tuple[int, int, int]:
        arch, layer, low, passes = plan.arch, plan.layer, plan.low, plan.passes
        lanes, tiles = arch.lanes, arch.tiles
        sched = schedule_compact(low.weights, arch, low.filters, low.channels, low.diagonal)
        sets = sched.sets_per_group
        backend = BACKEND_CODE[arch.backend]
        wbase, rowoff = _geometry(low, lanes)
        values = _act_values(low, lanes)
        n_sub = values.shape[0]
        full = tuple(int(x) for x in lane_words(lanes))  # the lanes of each word of 64
        dts, dlm = sched.smap[:, 0].copy(), sched.smap[:, 1] % lanes
        pop = bit_tables()[2]
        spread = low.spread_tiles
        n_batches = n_sub if spread == 1 else -(-n_sub // spread)
        held, step, first = _call_table(n_batches, passes, tiles, spread, n_sub, sets, sched.steps)
        rows_on, lanes_on = _call_activity(held, step, sched.filters, sched.slot_busy)
        n_ws, n_win, columns, group = (1, 1, 1, 1) if low.is_fc else (
            -(-low.windows // arch.columns), low.windows, arch.columns, arch.group_size)  # FC: the units are the calls
        jobs = _job_table(first, n_ws, columns // group, 64)
        n_units = n_ws * int(first[-1]) * (columns // group)
        if backend == TCLE:
            masks = mask_table(ENCODING_CODE[arch.encoding])[np.abs(values)]
            planes, most = brick_tables(masks, lanes, pop)
            bricks_per_sub = planes.shape[0] // n_sub
            bound = row_bounds(planes, bricks_per_sub, wbase, rowoff, sched.dense_steps, lanes, arch.lookahead,
                               arch.first_stage_bits)
            rowinfo = _call_rows(held, step, sets, sched.rows, sched.smaxdt, sched.ident, sched.cov, sched.filters)
            if low.is_fc:  # one window: every filter is costed at most once anyway
                rep = np.empty(sched.fmaxdt.shape, np.int16)
                rep[:] = np.arange(arch.rows)
            else:
                rep = duplicates(sched.opt, sched.steps, sched.filters)
            k = unit_costs(_units_tcle, n_units, (
                jobs, held, step, n_win, columns, group, sets, sched.rows, sched.opt, sched.fmaxdt, sched.smaxdt,
                sched.filters, rep, sched.cov, *rowinfo, masks, most.reshape(n_sub, -1), bound, pop, planes,
                bricks_per_sub, wbase, rowoff, dts, dlm, full, arch.first_stage_bits))
        elif backend == TCLP:
            hi, lo = brick_msb_lsb(values.reshape(-1, 1), arch.minor_bit)
            bhi, blo = hi.reshape(-1, lanes).max(axis=1), lo.reshape(-1, lanes).min(axis=1)  # per brick
            k = unit_costs(_units_tclp, n_units, (
                jobs, held, step, n_win, columns, group, sets, sched.rows, sched.smaxdt, sched.cov, sched.filters,
                *(a.reshape(n_sub, -1) for a in (hi, lo, bhi, blo)), wbase, rowoff, full, lanes,
                int(layer.act_signed)))
        else:
            k = unit_costs(_units_tcl, n_units, (jobs, held, n_win, columns, group))
        if low.is_fc:
            return int(fc_pipeline(k, arch.columns)), int(k @ rows_on), int(k @ lanes_on)
        cyc, busy_pe, busy_lane = _conv_reduce(k, first, rows_on, lanes_on, n_ws, n_win, columns, group,
                                               arch.run_ahead)
        return int(cyc), int(busy_pe), int(busy_lane)

    def ideal_and_terms(self, plan: LayerPlan) -> tuple[float, int]:
        """Only MACs with a non-zero weight count: 1 each (TCL), the activation's terms (TCLe) or its own width
        (TCLp); ``terms`` counts effectual MACs (TCL) or the activation terms processed for them."""
        arch, layer = plan.arch, plan.layer
        nonzero = _nonzero_counts(layer)
        if arch.backend == Backend.DADIANNAO:
            work = _effectual_mac_sum(layer, np.ones(layer.activations.shape, np.int64), 1, nonzero)
            return float(work), work
        enc = ENCODING_CODE[arch.encoding if arch.backend == Backend.PRAGMATIC else Encoding.BINARY]
        terms = _effectual_mac_sum(layer, value_terms(layer.activations, enc), 0, nonzero)
        if arch.backend == Backend.PRAGMATIC:
            return float(terms), terms
        widths = value_widths(layer.activations, layer.act_signed, arch.minor_bit)
        return float(_effectual_mac_sum(layer, widths, 0, nonzero)), terms

    # ----------------------------------------------------------------- reference engine
    def reference_layer(self, plan: LayerPlan) -> tuple[int, np.ndarray]:
        return Reference(plan.arch, plan.layer, plan.low, plan.passes).run()

    # ----------------------------------------------------------------- hardware
    def parts(self, arch) -> list[hw.Part]:
        """The back end's datapath, and in front of every lane a multiplexer over the activations the weight
        schedule may take (1 + lookahead + lookaside candidates; the select bits travel with the weights)."""
        candidates = 1 + arch.lookahead + arch.lookaside
        front = hw.mux("lane activation multiplexers", arch.pes * arch.lanes, arch.pe_width, candidates,
                       "busy_lane_cycles")
        back = DESIGNS[Design(arch.backend.value)].parts(arch)  # the back end's datapath, as that design lists it
        return front + back
