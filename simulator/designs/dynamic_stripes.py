"""Dynamic Stripes / ShapeShifter (MICRO'18): precision detected at run time per group of columns.

A unit (``group_size`` columns) processes ``max msb + 1 (+1 if signed)`` bits, where msb is taken of a
(or ~a for negative a) over all its lanes; an all-zero unit costs ``1 (+1)``. With ``minor_bit`` the
trailing zero bits common to the unit are skipped too: ``max msb - min lsb + 1 (+1)``.
"""

from __future__ import annotations

import numpy as np

from workloads.bits import value_widths

from .. import components as hw
from ..config import ArchConfig
from ..encodings import brick_msb_lsb
from ..knobs import ENCODING, GROUP_SIZE, MINOR_BIT, RUN_AHEAD, SERIAL, Design, Encoding, Serial
from ..plan import Operand
from ..sync import MODE_PRECISION
from .base import BrickStats, Cycle, DesignModel, twos_complement_bits, unsigned_bits


class DynamicStripes(DesignModel):
    design = Design.DYNAMIC_STRIPES
    knobs = (SERIAL.but(default=Serial.ACTIVATION, choices=(Serial.ACTIVATION,)),
             ENCODING.but(default=Encoding.DYNAMIC, choices=(Encoding.DYNAMIC,),
                          help="activations at the precision detected per group of columns at run time"),
             GROUP_SIZE.but(help="columns that share one detected precision (and one sync unit)"), MINOR_BIT,
             RUN_AHEAD.but(default=1))  # one register, as the preset (docs/models.md)

    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        hi, lo = brick_msb_lsb(bricks, arch.minor_bit)
        return BrickStats(hi, lo, MODE_PRECISION, int(op.signed))

    def value_cost(self, values: np.ndarray, op: Operand, arch: ArchConfig) -> np.ndarray:
        return value_widths(values, op.signed, arch.minor_bit)

    def reference_cycles(self, bricks: list[list[int]], op: Operand, arch: ArchConfig) -> list[Cycle]:
        values = [v for brick in bricks for v in brick]  # one precision for the whole unit
        top = max((v if v >= 0 else ~v).bit_length() for v in values)  # = max msb + 1
        nonzero = [v for v in values if v]
        low = min((v & -v).bit_length() - 1 for v in nonzero) if (arch.minor_bit and nonzero) else 0
        sign = int(op.signed)
        width = 1 + sign if top == 0 else max(1, top - low + sign)
        to_bits = twos_complement_bits if op.signed else unsigned_bits
        digits = [to_bits(v >> low, width) for v in values]
        return [[(lane, d[i] << low) for lane, d in enumerate(digits) if d[i]] for i in range(width)]

    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Stripes' lanes plus a precision detector per column and the run-ahead brick registers."""
        units = arch.tiles * arch.columns
        return (hw.lane_and_gates(arch, arch.pe_width) + hw.pe_back_end(arch, arch.pe_width)
                + hw.precision_detectors(arch, units, "act_brick_reads")
                + hw.run_ahead_registers(arch, units, "act_brick_reads"))
