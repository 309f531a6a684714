"""Laconic (Sharify et al., ISCA 2019): both operands as terms (binary, Booth or CSD).

A lane multiplies every term of its activation with every term of its weight, one term pair per cycle;
a PE spends ``max over lanes of max(1, terms(a) * terms(w))`` cycles on a brick pair. DNNsim keeps the
whole chip in lockstep (``sync: lockstep``); ``sync: tile`` / ``pe`` let tiles or PEs run ahead, as a
design with buffers would.
"""

from __future__ import annotations

import numpy as np

from workloads.bits import value_terms

from .. import components as hw
from ..config import ArchConfig
from ..encodings import ENCODING_CODE
from ..knobs import ENCODING, SERIAL, SYNC, Design, Encoding, Serial
from ..plan import Operand
from .base import BothSerialModel
from .pragmatic import TERMS, signed_digits


class Laconic(BothSerialModel):
    design = Design.LACONIC
    knobs = (SERIAL.but(default=Serial.BOTH, choices=(Serial.BOTH,)),
             ENCODING.but(default=Encoding.BOOTH, choices=TERMS, help="terms of both operands: booth, binary or csd"),
             SYNC)
    machine = {"columns": 256}  # DaDianNao's peak at 16 bits (docs/models.md, Presets)
    cost_is_terms = True  # a MAC alone costs terms(a) * terms(w)
    pair_data_are_terms = True

    def pair_data(self, act_bricks, weight_bricks, aop: Operand, wop: Operand, arch: ArchConfig):
        enc = ENCODING_CODE[arch.encoding]
        return value_terms(act_bricks, enc, np.int16), value_terms(weight_bricks, enc, np.int16), True

    def pe_cycles(self, acts: list[int], weights: list[int], aop: Operand, wop: Operand,
                  arch: ArchConfig) -> list[int]:
        def terms(v):
            sign = 1 if v >= 0 else -1
            return [(p, sign * s) for p, s in signed_digits(abs(v), arch.encoding)]

        lanes = [[sa * sw * (1 << (pa + pw)) for pa, sa in terms(a) for pw, sw in terms(w)]
                 for a, w in zip(acts, weights)]
        length = max(1, max(len(products) for products in lanes))
        return [sum(products[i] for products in lanes if i < len(products)) for i in range(length)]

    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Term generators on both operands; per lane an exponent adder and a one-hot decoder over the 2 x pe_width
        product positions; per PE a histogram of counters over those positions, its reduction, the accumulator."""
        w, lanes, pes = arch.pe_width, arch.lanes, arch.pes
        exp_bits = hw.log2_ceil(2 * w)
        count_bits = hw.log2_ceil(lanes) + 1
        return (hw.term_generators(arch, arch.tiles * arch.columns, "act_brick_reads")
                + hw.term_generators(arch, arch.tiles * arch.rows, "weight_brick_reads")
                + [hw.Part("lane exponent adders", "adder", exp_bits, pes * lanes, "add", "busy_lane_cycles", 1),
                   hw.Part("lane decoders", "and_gate", 2 * w, pes * lanes, "toggle", "busy_lane_cycles", 1),
                   hw.Part("histogram counters", "adder", count_bits, pes * 2 * w, "add", "busy_lane_cycles", 1)]
                + hw.adder_tree("histogram reduction", pes, 2 * w, count_bits + 2 * w)
                + hw.accumulators(pes, hw.acc_bits(w)))
