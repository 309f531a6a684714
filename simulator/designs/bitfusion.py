"""Bit Fusion (Sharma et al., ISCA 2018): a systolic array of fusion units built from 2-bit BitBricks.

A fusion unit holds 16 BitBricks (2-bit x 2-bit multipliers with a sign mode per operand) that fuse
spatially into ``perf_factor = floor(8 / max(pa, 2)) * floor(8 / max(pw, 2))`` fused PEs, each doing one
MAC per cycle at activation / weight precisions pa, pw <= 8. Operands wider than 8 bits are split into
8-bit chunks processed temporally, one (activation chunk, weight chunk) pair per cycle.

The array has ``fusion_rows`` (N) rows and ``fusion_columns`` (M) columns. A row holds N * perf_factor
consecutive input channels (perf_factor per fusion unit), a column one output channel; partial sums
accumulate down the columns. Per output position and kernel tap, the array steps over the input-channel
tiles; output-channel tiles are outermost. Compute cycles of one dense convolution (the authors' closed
form, ``Accelerator.get_compute_cycles`` of github.com/hsharma35/bitfusion, no im2col, one sample):

    ceil(OC / M) * OH * OW * KH * KW * ceil(IC / (N * perf_factor)) * temporal_passes

Layers run as the project's lowered sub-convolutions (``simulator.mapping``) one after the other.
The engine's PE and lane counters are expressed in its own units (``tiles * rows * columns`` PEs of
``lanes`` lanes): busy fusion-unit cycles and busy BitBrick cycles are rescaled (rounded up) from the
array's ``fusion_rows * fusion_columns`` units of 16 BitBricks; exact when the preset sets
``tiles * rows * columns = fusion_rows * fusion_columns`` and ``lanes = 16``.
"""

from __future__ import annotations

import numpy as np

from .. import components as hw
from ..knobs import ENCODING, SERIAL, Design, Encoding, Knob, Serial
from ..plan import LayerPlan
from .base import DesignModel

PMAX = 8  # widest operand a fusion unit fuses spatially (the authors' high_prec)
PMIN = 2  # BitBrick operand width (the authors' low_prec)
BITBRICKS = (PMAX // PMIN) ** 2  # BitBricks per fusion unit: 16


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _spatial_bits(bits: int) -> int:
    """The operand width one fused PE sees per cycle: bits raised to BitBrick width, capped at PMAX."""
    return min(max(int(bits), PMIN), PMAX)


def perf_factor(act_bits: int, weight_bits: int) -> int:
    """MACs one fusion unit performs per cycle (operands wider than 8 bits count as 8 plus temporal passes)."""
    return (PMAX // _spatial_bits(act_bits)) * (PMAX // _spatial_bits(weight_bits))


def temporal_passes(act_bits: int, weight_bits: int) -> int:
    """Cycles one fused MAC takes: one per pair of 8-bit operand chunks (1 for operands up to 8 bits)."""
    return _ceil_div(max(int(act_bits), 1), PMAX) * _ceil_div(max(int(weight_bits), 1), PMAX)


def fused_width(bits: int) -> int:
    """Bits an operand occupies in the fused datapath: 2, 4 or 8 spatially, 8 per temporal chunk above 8."""
    if bits > PMAX:
        return PMAX * _ceil_div(int(bits), PMAX)
    return PMAX // (PMAX // _spatial_bits(bits))


def bitfusion_cycles(ic: int, oc: int, out_h: int, out_w: int, kh: int, kw: int, act_bits: int, weight_bits: int,
                     rows: int, columns: int, batch: int = 1) -> int:
    """Compute cycles of one dense conv (an FC layer is 1x1 with one output position) on a rows x columns array."""
    pf = perf_factor(act_bits, weight_bits)
    return (batch * _ceil_div(oc, columns) * out_h * out_w * kh * kw * _ceil_div(ic, rows * pf)
            * temporal_passes(act_bits, weight_bits))


def bitbrick_digits(values: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """The 2-bit BitBrick digits of ``values`` (lowest first, new last axis) in a ``width``-bit word; the top digit
    is signed (-2..1) for signed operands, so that ``values == sum(digit_i * 4**i)``."""
    n = width // PMIN
    v = np.asarray(values, dtype=np.int64)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"operand values span [{int(v.min())}, {int(v.max())}], outside the {width}-bit {kind} "
                         f"range [{lo}, {hi}] of the fused datapath")
    digits = (v[..., None] >> (PMIN * np.arange(n))) & 3
    if signed:
        top = digits[..., -1]
        digits[..., -1] = np.where(top >= 2, top - 4, top)
    return digits


class BitFusion(DesignModel):
    design = Design.BITFUSION
    knobs = (SERIAL.but(default=Serial.BOTH, choices=(Serial.BOTH,)),
             ENCODING.but(default=Encoding.FIXED, choices=(Encoding.FIXED,),
                          help="both operands at the layer's precisions, fused from 2-bit BitBricks"),
             Knob("fusion_rows", int, 16, "rows of fusion units in the systolic array (N)", 1, 4096),
             Knob("fusion_columns", int, 32, "columns of fusion units in the systolic array (M)", 1, 4096))
    # the 45 nm array of the paper's Stripes comparison at Stripes' clock (authors' bf_s_conf.ini; bf_e_conf.ini, the
    # Eyeriss comparison, is the same array at 500 MHz); tiles x rows x columns = the fusion units and lanes =
    # BitBricks per unit, so that utilization is per fusion unit and per BitBrick
    machine = {"tiles": 1, "rows": 16, "columns": 32, "lanes": 16, "clock_mhz": 980.0}

    # ----------------------------------------------------------------- fast engine: the closed form
    def fast_layer(self, plan: LayerPlan) -> tuple[int, int, int]:
        arch, layer, low = plan.arch, plan.layer, plan.low
        n_rows, n_cols = arch.fusion_rows, arch.fusion_columns
        pf = perf_factor(layer.act_bits, layer.weight_bits)
        t = temporal_passes(layer.act_bits, layer.weight_bits)
        kh, kw = low.kernel
        cycles = busy_fu = busy_bb = 0
        for c, k in zip(low.channels.tolist(), low.filters.tolist()):
            cycles += bitfusion_cycles(c, k, low.out_h, low.out_w, kh, kw, layer.act_bits, layer.weight_bits,
                                       n_rows, n_cols)
            # fusion units holding a real filter and a real channel; BitBricks of the fused PEs doing real MACs
            busy_fu += k * _ceil_div(c, pf)
            busy_bb += (c if low.diagonal else k * c) * (BITBRICKS // pf)
        per_slot = low.windows * kh * kw * t
        busy_fu, busy_bb = busy_fu * per_slot, busy_bb * per_slot
        n_fu = n_rows * n_cols
        busy_pe = _ceil_div(busy_fu * arch.pes, n_fu)
        busy_lane = _ceil_div(busy_bb * arch.chip_lanes, n_fu * BITBRICKS)
        return cycles, busy_pe, busy_lane

    def ideal_and_terms(self, plan: LayerPlan) -> tuple[float, int]:
        """Ideal: the layer's MACs at the array's peak rate, in the engine's lane-cycles; terms: BitBrick products."""
        arch, layer = plan.arch, plan.layer
        pf = perf_factor(layer.act_bits, layer.weight_bits)
        t = temporal_passes(layer.act_bits, layer.weight_bits)
        n_fu = arch.fusion_rows * arch.fusion_columns
        ideal = layer.macs * t / (pf * n_fu) * arch.chip_lanes
        return ideal, layer.macs * t * (BITBRICKS // pf)

    # ----------------------------------------------------------------- reference engine: cycle by cycle
    def reference_layer(self, plan: LayerPlan) -> tuple[int, np.ndarray]:
        """The array steps through output-channel tiles, output positions, kernel taps, input-channel tiles and
        temporal passes, one cycle each; every fusion unit multiplies BitBrick digit pairs of its perf_factor
        (channel, filter) pairs, shifts them into place, and the column sums the fusion units' results."""
        arch, layer, low = plan.arch, plan.layer, plan.low
        n_rows, n_cols = arch.fusion_rows, arch.fusion_columns
        pf = perf_factor(layer.act_bits, layer.weight_bits)
        wa, ww = fused_width(layer.act_bits), fused_width(layer.weight_bits)
        chunk_a, chunk_w = min(wa, PMAX) // PMIN, min(ww, PMAX) // PMIN  # digits per temporal chunk
        n_chunk_a, n_chunk_w = wa // PMIN // chunk_a, ww // PMIN // chunk_w
        n_sub, kg, cg, kh, kw = low.weights.shape
        row_span = n_rows * pf  # input channels one input-channel tile covers
        c_pad = _ceil_div(cg, row_span) * row_span
        k_pad = _ceil_div(kg, n_cols) * n_cols
        # operand digits, zero-padded to whole tiles (zero digits = idle BitBricks)
        a_dig = bitbrick_digits(low.acts, wa, layer.act_signed)  # (G, Cg, Hp, Wp, da)
        a_dig = np.pad(a_dig, ((0, 0), (0, c_pad - cg), (0, 0), (0, 0), (0, 0)))
        w_dig = bitbrick_digits(low.weights, ww, layer.weight_signed)  # (G, Kg, Cg, R, S, dw)
        w_dig = np.pad(w_dig, ((0, 0), (0, k_pad - kg), (0, c_pad - cg), (0, 0), (0, 0), (0, 0)))
        psum = np.zeros((n_sub, k_pad, low.windows), dtype=np.int64)
        # shift of the product of activation digit i and weight digit j of one temporal chunk pair
        i_idx, j_idx = np.arange(chunk_a)[:, None], np.arange(chunk_w)[None, :]
        shifts = {(ca, cw): PMIN * (ca * chunk_a + i_idx + cw * chunk_w + j_idx)
                  for ca in range(n_chunk_a) for cw in range(n_chunk_w)}
        cycles = 0
        for g in range(n_sub):
            channels, filters = int(low.channels[g]), int(low.filters[g])
            for f0 in range(0, filters, n_cols):  # output-channel tile: one filter per column
                for win in range(low.windows):
                    y0, x0 = (win // low.out_w) * low.stride, (win % low.out_w) * low.stride
                    for r in range(kh):
                        for s in range(kw):
                            for c0 in range(0, channels, row_span):  # input-channel tile: pf channels per unit
                                a_tile = a_dig[g, c0:c0 + row_span, y0 + r, x0 + s].reshape(n_rows, pf, -1)
                                w_tile = w_dig[g, f0:f0 + n_cols, c0:c0 + row_span, r, s].reshape(
                                    n_cols, n_rows, pf, -1)
                                for (ca, cw), shift in shifts.items():  # temporal passes, one cycle each
                                    a_d = a_tile[:, :, ca * chunk_a:(ca + 1) * chunk_a]
                                    w_d = w_tile[:, :, :, cw * chunk_w:(cw + 1) * chunk_w]
                                    # BitBricks: (column, row, fused PE, act digit, weight digit)
                                    bricks = a_d[None, :, :, :, None] * w_d[:, :, :, None, :]
                                    unit = np.left_shift(bricks, shift).sum(axis=(2, 3, 4))  # fusion unit sums
                                    psum[g, f0:f0 + n_cols, win] += unit.sum(axis=1)  # down each column
                                    cycles += 1
        return cycles, psum[:, :kg]

    # ----------------------------------------------------------------- hardware
    def parts(self, arch) -> list[hw.Part]:
        """Per BitBrick a 2-bit x 2-bit signed multiplier (3-bit operands with the sign); per fusion unit a
        shift-add tree over its BitBricks (up to pe_width-bit shifts) and the accumulator."""
        w, lanes, pes = arch.pe_width, arch.lanes, arch.pes
        return ([hw.Part("BitBricks", "multiplier", PMIN + 1, pes * lanes, "multiply", "busy_lane_cycles", 1)]
                + hw.shifter("BitBrick shifters", pes * lanes, 2 * (PMIN + 1), 2 * w, "busy_lane_cycles")
                + hw.pe_back_end(arch, 2 * w))
