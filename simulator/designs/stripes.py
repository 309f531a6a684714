"""Stripes (MICRO'16): activations bit-serial at the layer's profiled precision; values do not matter."""

from __future__ import annotations

import numpy as np

from ..config import ArchConfig, Design
from .base import BrickStats, Cycle, DesignModel, Operand, twos_complement_bits, unsigned_bits


class Stripes(DesignModel):
    design = Design.STRIPES

    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        n = bricks.shape[0]
        return BrickStats(np.full(n, min(op.bits, arch.pe_width), np.int32), np.zeros(n, np.int32))

    def value_cost(self, values: np.ndarray, op: Operand, arch: ArchConfig) -> np.ndarray:
        return np.full(values.shape, min(op.bits, arch.pe_width), np.int32)

    def brick_cycles(self, values: list[int], op: Operand, arch: ArchConfig) -> list[Cycle]:
        digits = [(twos_complement_bits if op.signed else unsigned_bits)(v, op.bits) for v in values]
        return [[(lane, d[i]) for lane, d in enumerate(digits) if d[i]] for i in range(op.bits)]
