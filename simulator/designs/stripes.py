"""Stripes (MICRO'16): activations bit-serial at the layer's profiled precision; values do not matter."""

from __future__ import annotations

import numpy as np

from .. import components as hw
from ..config import ArchConfig
from ..knobs import ENCODING, SERIAL, Design, Encoding, Serial
from ..plan import Operand
from .base import BrickStats, Cycle, DesignModel, twos_complement_bits, unsigned_bits


class Stripes(DesignModel):
    design = Design.STRIPES
    knobs = (SERIAL.but(default=Serial.ACTIVATION, choices=(Serial.ACTIVATION,)),
             ENCODING.but(default=Encoding.FIXED, choices=(Encoding.FIXED,),
                          help="activations at the layer's profiled precision (act_bits)"))

    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        n = bricks.shape[0]
        return BrickStats(np.full(n, min(op.bits, arch.pe_width), np.int32), np.zeros(n, np.int32))

    def value_cost(self, values: np.ndarray, op: Operand, arch: ArchConfig) -> np.ndarray:
        return np.full(values.shape, min(op.bits, arch.pe_width), np.int32)

    def brick_cycles(self, values: list[int], op: Operand, arch: ArchConfig) -> list[Cycle]:
        digits = [(twos_complement_bits if op.signed else unsigned_bits)(v, op.bits) for v in values]
        return [[(lane, d[i]) for lane, d in enumerate(digits) if d[i]] for i in range(op.bits)]

    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Per lane one activation bit ANDed with a pe_width-bit weight; the PE's tree and shift-accumulator."""
        return hw.lane_and_gates(arch, arch.pe_width) + hw.pe_back_end(arch, arch.pe_width)
