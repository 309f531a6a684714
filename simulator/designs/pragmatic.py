"""Pragmatic (MICRO'17): only the effectual terms of the serial operand, with two-stage shifting.

Each lane has a queue of its value's terms (essential bits, DNNsim's Booth-like recoding, or CSD); per
cycle the PE picks the lowest pending term position o over its lanes, and every lane whose next term
lies within the first-stage shifter's reach (``<= o + 2^B - 1``) consumes it. The serial operand is the
activation (the paper) or the weight (``serial: weight``; the Bit-Pruner style engine).
"""

from __future__ import annotations

import numpy as np

from workloads.bits import value_terms

from .. import components as hw
from ..config import ArchConfig
from ..encodings import ENCODING_CODE, brick_pra_costs
from ..knobs import ENCODING, FIRST_STAGE_BITS, GROUP_SIZE, RUN_AHEAD, SERIAL, Design, Encoding, Serial
from ..plan import Operand
from .base import BrickStats, Cycle, DesignModel

TERMS = (Encoding.BOOTH, Encoding.BINARY, Encoding.CSD)
TERM_HELP = "terms of the serial operand: booth (DNNsim's recoding), binary (essential bits) or csd"


def signed_digits(n: int, encoding: Encoding) -> list[tuple[int, int]]:
    """Terms (position, +1/-1) of a magnitude n >= 0, lowest position first (plain Python, for the reference)."""
    if encoding == Encoding.BOOTH:
        return booth_digits(n)
    if encoding == Encoding.CSD:
        out = []
        i = 0
        while n:
            if n & 1:
                d = 2 - (n & 3)  # +1 if n = 1 mod 4, -1 if n = 3 mod 4
                out.append((i, d))
                n -= d
            n >>= 1
            i += 1
        return out
    return [(i, 1) for i in range(n.bit_length()) if (n >> i) & 1]


def booth_digits(n: int) -> list[tuple[int, int]]:
    """DNNsim's Booth-like recoding (docs/design.md §4) with term signs: a term set inside a run of ones is negative,
    the term opening a run (window 111) is positive at the position above the run."""
    bits = [(n << 2) >> (17 - i) & 1 for i in range(18)]  # bits[0] = most significant of the 18-bit string
    out = []
    in_run = False
    for i in range(16):
        window = (bits[i], bits[i + 1], bits[i + 2])
        pos = 15 - i
        if window in ((0, 1, 0), (0, 1, 1)):
            if in_run:
                out.append((pos, -1))
        elif window == (1, 0, 0):
            out.append((pos, -1 if in_run else 1))
            in_run = False
        elif window in ((1, 0, 1), (1, 1, 0)):
            if not in_run:
                out.append((pos, 1))
        elif window == (1, 1, 1) and not in_run:
            out.append((pos + 1, 1))
            in_run = True
    return sorted(out)


class Pragmatic(DesignModel):
    design = Design.PRAGMATIC
    knobs = (SERIAL.but(default=Serial.ACTIVATION, choices=(Serial.ACTIVATION, Serial.WEIGHT)),
             ENCODING.but(default=Encoding.BOOTH, choices=TERMS, help=TERM_HELP), FIRST_STAGE_BITS,
             RUN_AHEAD.but(default=1), GROUP_SIZE)
    cost_is_terms = True

    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        costs = brick_pra_costs(bricks, ENCODING_CODE[arch.encoding], arch.first_stage_bits)
        return BrickStats(costs, np.zeros_like(costs))

    def value_cost(self, values: np.ndarray, op: Operand, arch: ArchConfig) -> np.ndarray:
        return value_terms(values, ENCODING_CODE[arch.encoding])

    def brick_cycles(self, values: list[int], op: Operand, arch: ArchConfig) -> list[Cycle]:
        queues = [[(pos, sign * (1 if v > 0 else -1)) for pos, sign in signed_digits(abs(v), arch.encoding)]
                  for v in values]
        reach = (1 << arch.first_stage_bits) - 1
        cycles: list[Cycle] = []
        while any(queues):
            offset = min(q[0][0] for q in queues if q)
            cycle = []
            for lane, q in enumerate(queues):
                if q and q[0][0] <= offset + reach:
                    pos, sign = q.pop(0)
                    cycle.append((lane, sign << pos))
            cycles.append(cycle)
        return cycles or [[]]

    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Term generators on the serial operand's bricks (per column, or per row when weights are serial), the
        two-stage shifting datapath on the other operand, run-ahead brick registers."""
        weight_serial = arch.serial == Serial.WEIGHT
        units = arch.tiles * (arch.rows if weight_serial else arch.columns)
        per = "weight_brick_reads" if weight_serial else "act_brick_reads"
        return (hw.term_generators(arch, units, per) + hw.two_stage_shifting(arch, "busy_lane_cycles")
                + hw.run_ahead_registers(arch, units, per))
