"""An ISAAC-style ReRAM crossbar accelerator (Shafiee et al., ISCA 2016), with AUTO-PRUNE's compaction.

**Mapping.** A layer is a weight matrix: rows are the unrolled inputs (channel, kernel row, kernel column; all C x R
x S of them, block-diagonal for grouped convolutions), columns the K outputs (an fc / GEMM layer: C x K). Weights
are stored differentially (``workloads.slices``): the magnitudes of the positive and of the negative weights in two
arrays of columns, each magnitude cut into ``cell_bits``-bit slices (one cell each, lowest first). The physical
columns, ordered array, slice, output (``slice_layout: separate``: a crossbar column block holds one significance
of ``xbar_columns`` consecutive outputs) or array, output, slice (``adjacent``: ISAAC's, a weight's slices side by
side), are cut into column blocks of ``xbar_columns``; each block's rows are cut into crossbars of ``lanes`` rows
(a crossbar is a PE of the machine grid, its word lines the PE's lanes). With ``compaction: compact`` (AUTO-PRUNE,
Yang et al., ICS 2021) a block stores only its rows that hold a non-zero cell, packed in order (an input index per
row feeds the right input), and a crossbar converts only its non-zero columns; a block with no non-zero cell
occupies no crossbar.

**Cycles.** Inputs are applied ``input_bits`` at a time (DACs), so a window takes ``ceil(act_bits / input_bits)``
steps; signed inputs are offset to unsigned ones (``a + 2**(act_bits-1)``) and the offset times each column's
weight sum is subtracted digitally once. In a step every occupied crossbar is read once and its
``adcs_per_crossbar`` ADCs convert its stored columns, ``ceil(columns / adcs)`` cycles (the clock is the ADC's
sample rate), each result clipped to ``2**adc_bits - 1``, then shifted by its slice and step significance and
added (signed by its array) in the shift-and-add units. The chip's ``tiles x rows x columns`` crossbars run in
lockstep, a step lasting as long as its slowest crossbar. A layer whose crossbars fit on the chip holds
``floor(chip / occupied)`` copies of its weights with ``replicate`` (windows are shared among them), else one; a
layer larger than the chip runs its crossbars in rounds of the chip's size (programming time not modelled).

**ADC resolution.** A column needs ``adc_bits_for(sum of its cells x (2**input_bits - 1))`` bits
(``workloads.slices``); ``adc_bits_max`` reports the most any column needs. A column that needs more than
``adc_bits`` may clip: such a layer is marked lossy (``lossless`` false) and ``adc_clip_columns`` counts those
columns; the reference engine computes the clipped outputs. With ``flip_columns`` (ISAAC's encoding) a stored
column whose cells sum above half of (its crossbar's stored rows x ``2**cell_bits - 1``) holds their complements
and its read is subtracted from ``(2**cell_bits - 1) x the sum of the input digits``: a column's sum never exceeds
half the maximum, one ADC bit less. With ``adc_resolution: column`` each conversion
resolves only the bits its column needs (a SAR ADC stopping early): ``adc_full_conversions`` counts conversions in
full-resolution equivalents of energy, which the ADC part is priced by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from workloads import Layer, LayerKind
from workloads.slices import slice_count

from .. import components as hw
from ..config import ArchConfig
from ..knobs import (
    ENCODING,
    SERIAL,
    AdcResolution,
    Compaction,
    ConfigError,
    Design,
    Encoding,
    Knob,
    Serial,
    SliceLayout,
)
from ..plan import LayerPlan
from ..technology import cell_energy_pj
from .base import DesignModel

MAX_ADC_BITS = 24


def output_rows(layer: Layer) -> np.ndarray:
    """The layer's weights as (outputs, inputs): one row of unrolled inputs (channel, kernel row, kernel column) per
    output, over all input channels, zero outside the output's group for grouped convolutions; fc / GEMM: (K, C).
    A view of the weights (int32) when the layer is not grouped."""
    w = np.asarray(layer.weights)
    if layer.kind != LayerKind.CONV:
        return w
    k, cg, r, s = w.shape
    g = layer.groups
    if g == 1:
        return w.reshape(k, -1)
    kg = k // g
    out = np.zeros((k, g, cg * r * s), dtype=w.dtype)
    out[np.arange(k), np.arange(k) // kg] = w.reshape(k, -1)
    return out.reshape(k, -1)


def weight_matrix(layer: Layer) -> np.ndarray:
    """The (inputs, outputs) matrix the crossbars hold (``output_rows`` transposed), int64."""
    return output_rows(layer).T.astype(np.int64)


def input_matrix(layer: Layer) -> np.ndarray:
    """The layer's inputs as (windows, rows of ``weight_matrix``): im2col with zero padding (int64)."""
    a = np.asarray(layer.activations, dtype=np.int64)
    if layer.kind == LayerKind.FC:
        return a[None, :]
    if layer.kind == LayerKind.GEMM:
        return a
    pt, pb, pl, pr = layer.padding
    padded = np.pad(a, ((0, 0), (pt, pb), (pl, pr)))
    _, _, r, s = layer.weights.shape
    oh, ow = layer.output_hw
    st = layer.stride
    rows = []
    for y in range(oh):
        for x in range(ow):
            rows.append(padded[:, y * st:y * st + r, x * st:x * st + s].reshape(-1))
    return np.stack(rows)


def windows_of(layer: Layer) -> int:
    oh, ow = layer.output_hw
    return oh * ow


def column_order(n_arrays: int, n_slices: int, k_total: int, adjacent: bool) -> np.ndarray:
    """Physical column of every (array, slice, output): (n_arrays, n_slices, K) int64. ``adjacent``: array, output,
    slice order; else array, slice, output."""
    a, j, k = np.meshgrid(np.arange(n_arrays), np.arange(n_slices), np.arange(k_total), indexing="ij")
    if adjacent:
        return (a * k_total + k) * n_slices + j
    return (a * n_slices + j) * k_total + k


@njit(cache=True)
def map_crossbars(wt, n_arrays, cell_bits, xbar_rows, xbar_columns, column, compact, digit_max, adc_bits, share,
                  flip):
    """Crossbars of a weight matrix given as ``wt`` (outputs, inputs) whose (array, slice, output) sits in physical
    column ``column[a, j, k]``. Returns per crossbar its stored rows and stored columns, then the non-zero cells,
    the most ADC bits a stored column needs, the stored columns needing more than ``adc_bits``, and the sum over
    stored columns of ``share[min(need, adc_bits)]`` (a conversion's energy in full-resolution conversions).
    ``flip``: a column whose cells sum above half of (stored rows x the largest cell) stores their complements."""
    k_total, n_in = wt.shape
    n_slices = column.shape[1]
    n_cols = n_arrays * n_slices * k_total
    n_blocks = (n_cols + xbar_columns - 1) // xbar_columns
    block_of = np.empty(n_cols, np.int64)
    lane_of = np.empty(n_cols, np.int64)
    for p in range(n_cols):
        block_of[p] = p // xbar_columns
        lane_of[p] = p % xbar_columns
    mask = (1 << cell_bits) - 1
    # rows stored per block: all (dense), or those holding a non-zero cell (compact), packed in order
    count = np.zeros(n_blocks, np.int64)
    xbar_of = np.empty((n_blocks, n_in), np.int64)  # crossbar (within its block) of each stored row
    if compact:
        held = np.zeros((n_blocks, n_in), np.bool_)
        for k in range(k_total):
            for i in range(n_in):
                w = wt[k, i]
                if w == 0:
                    continue
                a = 1 if (w < 0 and n_arrays == 2) else 0
                mag = -w if w < 0 else w
                j = 0
                while mag:
                    if mag & mask:
                        held[block_of[column[a, j, k]], i] = True
                    mag >>= cell_bits
                    j += 1
        for b in range(n_blocks):
            for i in range(n_in):
                if held[b, i]:
                    xbar_of[b, i] = count[b] // xbar_rows
                    count[b] += 1
    else:
        for b in range(n_blocks):
            count[b] = n_in
            for i in range(n_in):
                xbar_of[b, i] = i // xbar_rows
    first = np.zeros(n_blocks + 1, np.int64)
    for b in range(n_blocks):
        first[b + 1] = first[b] + (count[b] + xbar_rows - 1) // xbar_rows
    n_xbars = first[n_blocks]
    rows_used = np.zeros(n_xbars, np.int64)
    for b in range(n_blocks):
        for x in range(first[b], first[b + 1]):
            rows_used[x] = min(xbar_rows, count[b] - (x - first[b]) * xbar_rows)
    for b in range(n_blocks):
        for i in range(n_in):
            xbar_of[b, i] += first[b]
    # cell sums of every column of every crossbar
    colsum = np.zeros((n_xbars, xbar_columns), np.int64)
    cells = 0
    for k in range(k_total):
        for i in range(n_in):
            w = wt[k, i]
            if w == 0:
                continue
            a = 1 if (w < 0 and n_arrays == 2) else 0
            mag = -w if w < 0 else w
            j = 0
            while mag:
                v = mag & mask
                if v:
                    p = column[a, j, k]
                    colsum[xbar_of[block_of[p], i], lane_of[p]] += v
                    cells += 1
                mag >>= cell_bits
                j += 1
    # stored columns and the ADC bits they need
    cols_stored = np.zeros(n_xbars, np.int64)
    max_need, clipped, full = 0, 0, 0.0
    for b in range(n_blocks):
        width = min(xbar_columns, n_cols - b * xbar_columns)
        for x in range(first[b], first[b + 1]):
            for c in range(width):
                total = colsum[x, c]
                if compact and total == 0:
                    continue
                cols_stored[x] += 1
                if flip and 2 * total > rows_used[x] * mask:  # stored as complements: the read is their sum
                    total = rows_used[x] * mask - total
                total *= digit_max
                need = 1
                while total >> need:
                    need += 1
                max_need = max(max_need, need)
                if need > adc_bits:
                    clipped += 1
                full += share[min(need, adc_bits)]
    return rows_used, cols_stored, cells, max_need, clipped, full


@dataclass(frozen=True)
class CrossbarMap:
    """A layer on the crossbars: per crossbar its stored rows and columns; the non-zero cells; the most ADC bits a
    stored column needs, the columns needing more than ``adc_bits``, and the conversions of one read in
    full-resolution energy equivalents."""

    rows_used: np.ndarray  # (crossbars,)
    cols_stored: np.ndarray  # (crossbars,)
    nonzero_cells: int
    adc_bits_max: int
    clip_columns: int
    full_conversions: float

    @property
    def crossbars(self) -> int:
        return len(self.rows_used)


def _arrays(layer: Layer) -> int:
    return 2 if layer.weight_signed else 1


def _slices(arch: ArchConfig, layer: Layer) -> int:
    return slice_count(layer.weight_bits, layer.weight_signed, arch.cell_bits)


def input_offset(layer: Layer) -> int:
    """What is added to every input so that the crossbar sees unsigned values: 2**(act_bits-1) if signed."""
    return 1 << (layer.act_bits - 1) if layer.act_signed else 0


def input_steps(arch: ArchConfig, layer: Layer) -> int:
    """Reads per window: the inputs' bits, ``input_bits`` at a time."""
    return -(-layer.act_bits // arch.input_bits)


def energy_shares(arch: ArchConfig) -> np.ndarray:
    """A conversion's ADC energy, by the bits it resolves (index 0..adc_bits), in full-resolution conversions (all 1
    with a fixed resolution)."""
    if arch.adc_resolution == AdcResolution.FIXED:
        return np.ones(arch.adc_bits + 1)
    node = arch.tech_node_nm
    full = cell_energy_pj("adc", "convert", arch.adc_bits, 0.0, node)
    return np.array([cell_energy_pj("adc", "convert", max(b, 1), 0.0, node) / full for b in range(arch.adc_bits + 1)])


def map_layer(arch: ArchConfig, layer: Layer) -> CrossbarMap:
    """The fast mapping (numba): crossbars, their rows and columns, and the ADC bits the columns need."""
    n_arrays = _arrays(layer)
    wt = output_rows(layer)
    column = column_order(n_arrays, _slices(arch, layer), wt.shape[0], arch.slice_layout == SliceLayout.ADJACENT)
    compact = arch.compaction == Compaction.COMPACT
    rows_used, cols_stored, cells, max_need, clipped, full = map_crossbars(
        np.ascontiguousarray(wt), n_arrays, arch.cell_bits, arch.lanes, arch.xbar_columns, column, compact,
        (1 << arch.input_bits) - 1, arch.adc_bits, energy_shares(arch), arch.flip_columns)
    return CrossbarMap(rows_used, cols_stored, int(cells), int(max_need), int(clipped), float(full))


def schedule(arch: ArchConfig, n_crossbars: int, windows: int) -> tuple[int, int]:
    """(copies of the weights, rounds of the chip's crossbars) for a layer of ``n_crossbars``."""
    chip = arch.tiles * arch.rows * arch.columns
    if n_crossbars == 0:
        return 1, 0
    if n_crossbars > chip:
        return 1, -(-n_crossbars // chip)
    copies = min(chip // n_crossbars, windows) if arch.replicate else 1
    return max(copies, 1), 1


class ReRam(DesignModel):
    design = Design.RERAM
    knobs = (SERIAL.but(default=Serial.ACTIVATION, choices=(Serial.ACTIVATION,),
                        help="inputs are applied a few bits at a time through DACs"),
             ENCODING.but(default=Encoding.FIXED, choices=(Encoding.FIXED,),
                          help="inputs at the layer's act_bits, input_bits per read"),
             Knob("xbar_columns", int, 128, "bit lines per crossbar (its rows are the machine's lanes)", 1, 4096),
             Knob("cell_bits", int, 2, "bits per ReRAM cell (weight slice width)", 1, 8, unit="bits"),
             Knob("input_bits", int, 1, "input bits applied per read (DAC resolution)", 1, 8, unit="bits"),
             Knob("adc_bits", int, 8, "ADC resolution; a column that can sum higher is clipped", 1, MAX_ADC_BITS,
                  unit="bits"),
             Knob("adc_resolution", AdcResolution, AdcResolution.FIXED,
                  "fixed: every conversion resolves adc_bits; column: only the bits its column can reach"),
             Knob("adcs_per_crossbar", int, 1, "ADCs sharing a crossbar's columns", 1, 4096),
             Knob("flip_columns", bool, True,
                  "ISAAC's encoding: a column summing above half its maximum stores complemented cells, so no read "
                  "needs the top ADC bit"),
             Knob("slice_layout", SliceLayout, SliceLayout.SEPARATE,
                  "separate: a crossbar holds one slice significance; adjacent: a weight's slices side by side"),
             Knob("compaction", Compaction, Compaction.NONE,
                  "compact: rows / columns all zero within a column block are not stored (AUTO-PRUNE)"),
             Knob("replicate", bool, True, "copies of a small layer's weights fill the chip, sharing its windows"))
    # ISAAC (ISCA 2016, 32 nm): 168 tiles of 12 IMAs of 8 crossbars of 128 x 128 2-bit cells, 1-bit DACs, one ADC
    # per crossbar at 1.2 GS/s, 16-bit fixed point; 64 KB of eDRAM per tile (here SRAM)
    machine = {"tiles": 168, "rows": 12, "columns": 8, "lanes": 128, "pe_width": 16, "clock_mhz": 1200.0,
               "tech_node_nm": 32, "act_buffer_kib": 168 * 64}
    machine_help = {
        "tiles": "tiles on the chip (ISAAC: 168)",
        "rows": "IMAs per tile: crossbars per tile = rows x columns",
        "columns": "crossbars per IMA: crossbars per tile = rows x columns",
        "lanes": "word lines (rows) per crossbar: inputs summed on a bit line",
        "pe_width": "widest input (activation) precision, applied input_bits per read",
        "clock_mhz": "ADC sample rate: one cycle is one conversion per ADC",
    }
    weights_resident = True
    extra_columns: ClassVar[tuple[str, ...]] = (
        "crossbars", "crossbar_reads", "dac_drives", "adc_conversions", "adc_full_conversions", "adc_bits_max",
        "adc_clip_columns", "nonzero_cells", "weight_slices")

    def check(self, knobs) -> None:
        if knobs["adcs_per_crossbar"] > knobs["xbar_columns"]:
            raise ConfigError(f"adcs_per_crossbar ({knobs['adcs_per_crossbar']}) must not exceed xbar_columns "
                              f"({knobs['xbar_columns']})")

    def __init__(self) -> None:
        self._last: tuple[LayerPlan, CrossbarMap] | None = None

    def _map(self, plan: LayerPlan) -> CrossbarMap:
        """The plan's mapping, computed once for the fast engine's two hooks."""
        if self._last is None or self._last[0] is not plan:
            self._last = (plan, map_layer(plan.arch, plan.layer))
        return self._last[1]

    # ----------------------------------------------------------------- fast engine
    def fast_layer(self, plan: LayerPlan) -> tuple[int, int, int, dict]:
        arch, layer = plan.arch, plan.layer
        xm = self._map(plan)
        windows, steps = windows_of(layer), input_steps(arch, layer)
        copies, rounds = schedule(arch, xm.crossbars, windows)
        conv = -(-xm.cols_stored // arch.adcs_per_crossbar)  # ADC cycles of one read, per crossbar
        chip = arch.tiles * arch.rows * arch.columns
        step_cycles = sum(int(conv[r * chip:(r + 1) * chip].max()) for r in range(rounds))
        cycles = -(-windows // copies) * steps * step_cycles
        reads = windows * steps
        extras = {
            "crossbars": xm.crossbars,
            "crossbar_reads": reads * xm.crossbars,
            "dac_drives": reads * int(xm.rows_used.sum()),
            "adc_conversions": reads * int(xm.cols_stored.sum()),
            "adc_full_conversions": reads * xm.full_conversions,
            "adc_bits_max": xm.adc_bits_max,
            "adc_clip_columns": xm.clip_columns,
            "nonzero_cells": xm.nonzero_cells,
            "weight_slices": int(layer.weights.size) * _slices(arch, layer),
        }
        busy_pe = reads * int(conv.sum())
        busy_lane = reads * int((conv * xm.rows_used).sum())
        return cycles, busy_pe, busy_lane, extras

    def ideal_and_terms(self, plan: LayerPlan) -> tuple[float, int]:
        """Ideal: every ADC of the chip busy on a stored column, in lane-cycles; terms: reads of non-zero cells."""
        arch, layer = plan.arch, plan.layer
        xm = self._map(plan)
        reads = windows_of(layer) * input_steps(arch, layer)
        chip = arch.tiles * arch.rows * arch.columns
        ideal_cycles = reads * int(xm.cols_stored.sum()) / (arch.adcs_per_crossbar * chip)
        return ideal_cycles * arch.chip_lanes, reads * xm.nonzero_cells

    def fidelity(self, arch: ArchConfig, layer: Layer, row: dict) -> dict:
        """Lossless unless a column can sum beyond its ADC (the weights themselves are exact)."""
        return {"lossless": row["adc_clip_columns"] == 0, "weight_rel_error": 0.0}

    # ----------------------------------------------------------------- reference engine
    def reference_layer(self, plan: LayerPlan) -> tuple[int, np.ndarray]:
        """Cycle by cycle, on a mapping built here independently of the fast one: in every step of every window
        batch, each crossbar of the round converts its stored columns ``adcs_per_crossbar`` per cycle (bit-line
        sum of cell x input digit over its rows, clipped by the ADC), and the shift-and-add units accumulate them."""
        arch, layer, low = plan.arch, plan.layer, plan.low
        xbars = _reference_crossbars(arch, layer)
        m = weight_matrix(layer)
        inputs = input_matrix(layer)
        offset = input_offset(layer)
        unsigned = inputs + offset
        windows, steps = windows_of(layer), input_steps(arch, layer)
        copies, rounds = schedule(arch, len(xbars), windows)
        chip = arch.tiles * arch.rows * arch.columns
        adcs, ib, cb = arch.adcs_per_crossbar, arch.input_bits, arch.cell_bits
        top, cell_max = (1 << arch.adc_bits) - 1, (1 << cb) - 1
        out = np.zeros((layer.out_channels, windows), dtype=np.int64)
        cycles = 0
        for r in range(rounds):
            in_round = xbars[r * chip:(r + 1) * chip]
            for w0 in range(0, windows, copies):
                for t in range(steps):
                    digits = (unsigned[w0:w0 + copies] >> (t * ib)) & ((1 << ib) - 1)  # the batch's windows
                    length = max(-(-len(x.columns) // adcs) for x in in_round)
                    for cycle in range(length):  # one ADC conversion per ADC per cycle
                        cycles += 1
                        for x in in_round:
                            for col in x.columns[cycle * adcs:(cycle + 1) * adcs]:
                                a, k, j = col
                                cells = x.cells[col]
                                flipped = arch.flip_columns and 2 * sum(cells) > len(x.rows) * cell_max
                                for win in range(digits.shape[0]):
                                    d = [int(digits[win, i]) for i in x.rows]
                                    if flipped:  # the ADC reads the complements: subtract from cell_max x sum(d)
                                        dot = cell_max * sum(d) - min(sum((cell_max - c) * v for c, v in zip(cells, d)),
                                                                      top)
                                    else:
                                        dot = min(sum(c * v for c, v in zip(cells, d)), top)
                                    value = dot << (j * cb + t * ib)
                                    out[k, w0 + win] += -value if a else value
        out -= offset * m.sum(axis=0)[:, None]  # the inputs' offset, removed digitally
        psum = np.zeros((low.groups, int(low.filters.max(initial=0)), windows), dtype=np.int64)
        for g in range(low.groups):
            f = int(low.filters[g])
            psum[g, :f] = out[low.filter_offset[g]:low.filter_offset[g] + f]
        return cycles, psum

    # ----------------------------------------------------------------- hardware
    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Per crossbar: its cells (read once per step), a DAC per row, a sample-and-hold per column, its ADCs and
        as many shift-and-add units (ISAAC's IMA); buffers are the machine's (no weight buffer)."""
        n = arch.tiles * arch.rows * arch.columns
        xr, xc = arch.lanes, arch.xbar_columns
        return [
            hw.Part("crossbars", "reram_crossbar", xr * xc, n, "read", "crossbar_reads", 1),
            hw.Part("DACs", "dac", arch.input_bits, n * xr, "drive", "dac_drives", 1),
            hw.Part("sample-and-hold", "sample_hold", 1, n * xc, "sample", "adc_conversions", 1),
            hw.Part("ADCs", "adc", arch.adc_bits, n * arch.adcs_per_crossbar, "convert", "adc_full_conversions", 1),
            hw.Part("shift-and-add", "shift_add", hw.acc_bits(arch.pe_width), n * arch.adcs_per_crossbar, "add",
                    "adc_conversions", 1),
        ]


@dataclass
class _Crossbar:
    """One crossbar of the reference mapping: the inputs its rows take, its stored columns (array, output,
    slice) and each column's cells over those rows."""

    rows: list[int]
    columns: list[tuple[int, int, int]]
    cells: dict


def _reference_crossbars(arch: ArchConfig, layer: Layer) -> list[_Crossbar]:
    """The mapping of the module docstring in plain Python (the reference engine's own)."""
    m = weight_matrix(layer)
    n_in, k_total = m.shape
    n_arrays, n_slices, cb = _arrays(layer), _slices(arch, layer), arch.cell_bits
    if arch.slice_layout == SliceLayout.ADJACENT:
        order = [(a, k, j) for a in range(n_arrays) for k in range(k_total) for j in range(n_slices)]
    else:
        order = [(a, k, j) for a in range(n_arrays) for j in range(n_slices) for k in range(k_total)]

    def cell(i: int, col: tuple[int, int, int]) -> int:
        a, k, j = col
        w = int(m[i, k])
        mag = max(w, 0) if a == 0 else max(-w, 0)
        if n_arrays == 1:
            mag = w
        return (mag >> (j * cb)) & ((1 << cb) - 1)

    compact = arch.compaction == Compaction.COMPACT
    out = []
    for b0 in range(0, len(order), arch.xbar_columns):
        block = order[b0:b0 + arch.xbar_columns]
        rows = [i for i in range(n_in) if not compact or any(cell(i, col) for col in block)]
        for r0 in range(0, len(rows), arch.lanes):
            held = rows[r0:r0 + arch.lanes]
            cells = {col: [cell(i, col) for i in held] for col in block}
            columns = [col for col in block if not compact or any(cells[col])]
            out.append(_Crossbar(held, columns, cells))
    return out
