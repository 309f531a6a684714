"""DaDianNao (MICRO'14): the bit-parallel baseline; every step costs one cycle."""

from __future__ import annotations

import numpy as np

from .. import components as hw
from ..config import ArchConfig
from ..knobs import ENCODING, SERIAL, Design, Encoding, Serial
from ..plan import Operand
from .base import BrickStats, Cycle, DesignModel


class DaDianNao(DesignModel):
    design = Design.DADIANNAO
    knobs = (SERIAL.but(choices=(Serial.NONE,)), ENCODING.but(choices=(Encoding.NONE,)))
    machine = {"columns": 1}  # one PE column per tile, as the real chip

    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        n = bricks.shape[0]
        return BrickStats(np.ones(n, np.int32), np.zeros(n, np.int32))

    def value_cost(self, values: np.ndarray, op: Operand, arch: ArchConfig) -> np.ndarray:
        return np.ones(values.shape, np.int32)

    def brick_cycles(self, values: list[int], op: Operand, arch: ArchConfig) -> list[Cycle]:
        return [[(i, v) for i, v in enumerate(values) if v]]

    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        return hw.lane_multipliers(arch) + hw.pe_back_end(arch, 2 * arch.pe_width)
