"""The weight-serial lane-synchronous engine (the "typical bit-serial accelerator" Bit-Pruner targets).

Pragmatic's two-stage shifting with the weights as the serial operand: the lanes of a row advance together
through the row's weight brick, one shifter offset per cycle (``first_stage_bits``), rows synchronized by
``run_ahead`` registers. With ``skip_zero_weights`` an all-zero weight brick costs no cycle (a step where
every row's brick is zero is skipped; in FC layers it is not issued).
"""

from __future__ import annotations

import numpy as np

from ..config import ArchConfig
from ..encodings import zero_bricks
from ..knobs import ENCODING, FIRST_STAGE_BITS, GROUP_SIZE, RUN_AHEAD, SERIAL, Design, Encoding, Knob, Serial
from ..plan import Operand
from .base import BrickStats, Cycle
from .pragmatic import TERM_HELP, TERMS, Pragmatic


class WeightSerial(Pragmatic):
    design = Design.WEIGHT_SERIAL
    knobs = (SERIAL.but(default=Serial.WEIGHT, choices=(Serial.WEIGHT,)),
             ENCODING.but(default=Encoding.BINARY, choices=TERMS, help=TERM_HELP), FIRST_STAGE_BITS.but(default=0),
             RUN_AHEAD, GROUP_SIZE.but(help="rows that share one sync unit"),
             Knob("skip_zero_weights", bool, True, "an all-zero weight brick costs no cycle"))

    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        stats = super().brick_stats(bricks, op, arch)
        if arch.skip_zero_weights:
            stats.hi[zero_bricks(bricks)] = 0
        return stats

    def brick_cycles(self, values: list[int], op: Operand, arch: ArchConfig) -> list[Cycle]:
        if arch.skip_zero_weights and not any(values):
            return []
        return super().brick_cycles(values, op, arch)
