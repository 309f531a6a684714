"""Loom (Sharify et al., DAC 2018): both operands serial.

A PE spends ``ceil(act_width / serial_bits) * weight_width`` cycles on a brick pair: activations are
processed ``serial_bits`` bits per cycle at the width detected for the column's activation brick
(msb + 1 of a or ~a, +1 if signed; all-zero costs 1 (+1)), weights bit-serially at the layer's profiled
``weight_bits`` or, with ``dynamic_weights``, at the width detected for the row's weight brick.
"""

from __future__ import annotations

import numpy as np

from workloads.bits import value_widths

from .. import components as hw
from ..config import ArchConfig
from ..encodings import brick_msb_lsb
from ..knobs import ENCODING, SERIAL, SYNC, Design, Encoding, Knob, Serial
from ..plan import Operand
from .base import BothSerialModel, twos_complement_bits, unsigned_bits


def detected_widths(bricks: np.ndarray, signed: bool) -> np.ndarray:
    """Dynamic precision of every brick (rows of ``bricks``): msb + 1 (+1 signed); all-zero: 1 (+1)."""
    hi, _ = brick_msb_lsb(bricks, False)
    return np.where(hi < 0, 1, hi + 1).astype(np.int64) + int(signed)


class Loom(BothSerialModel):
    design = Design.LOOM
    knobs = (SERIAL.but(default=Serial.BOTH, choices=(Serial.BOTH,)),
             ENCODING.but(default=Encoding.DYNAMIC, choices=(Encoding.DYNAMIC,),
                          help="activations at their detected width per brick, weights at weight_bits"),
             Knob("serial_bits", int, 1, "activation bits processed per cycle", choices=(1, 2, 4), unit="bits"),
             Knob("dynamic_weights", bool, False, "weights at the width detected per brick instead of weight_bits"),
             SYNC)
    machine = {"columns": 256}  # the paper's equal peak at 16 bits with DaDianNao (docs/models.md, Presets)

    def pair_data(self, act_bricks, weight_bricks, aop: Operand, wop: Operand, arch: ArchConfig):
        a = -(-detected_widths(act_bricks, aop.signed) // arch.serial_bits)
        if arch.dynamic_weights:
            w = detected_widths(weight_bricks, wop.signed)
        else:
            w = np.full(weight_bricks.shape[0], wop.bits, np.int64)
        return a[:, None], w[:, None], False

    def pair_value_costs(self, acts, weights, aop: Operand, wop: Operand, arch: ArchConfig):
        wa = np.maximum(value_widths(acts, aop.signed, False), 1)
        ca = -(-wa // arch.serial_bits)
        if arch.dynamic_weights:
            cw = value_widths(weights, wop.signed, False)
        else:
            cw = wop.bits  # every weight costs the profiled precision
        return ca, cw

    def pe_cycles(self, acts: list[int], weights: list[int], aop: Operand, wop: Operand,
                  arch: ArchConfig) -> list[int]:
        def width(values, signed):
            top = max((v if v >= 0 else ~v).bit_length() for v in values)
            return (top or 1) + int(signed)

        aw = width(acts, aop.signed)
        ww = width(weights, wop.signed) if arch.dynamic_weights else wop.bits
        a_bits = [(twos_complement_bits if aop.signed else unsigned_bits)(v, aw) for v in acts]
        w_bits = [(twos_complement_bits if wop.signed else unsigned_bits)(v, ww) for v in weights]
        sb = arch.serial_bits
        chunks = -(-aw // sb)
        cycles = []
        for j in range(ww):  # one weight bit per cycle ...
            for i in range(chunks):  # ... times serial_bits activation bits
                cycles.append(sum(sum(ab[i * sb:(i + 1) * sb]) * wb[j] for ab, wb in zip(a_bits, w_bits)))
        return cycles

    packed_storage = True  # activations and weights are stored at their precision

    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Per lane serial_bits AND gates (activation bits x one weight bit), the PE's popcount tree and
        shift-accumulator; precision detectors per column (and per row with dynamic weights)."""
        sb = arch.serial_bits
        parts = (hw.lane_and_gates(arch, sb) + hw.pe_back_end(arch, sb)
                 + hw.precision_detectors(arch, arch.tiles * arch.columns, "act_brick_reads"))
        if arch.dynamic_weights:
            parts += hw.precision_detectors(arch, arch.tiles * arch.rows, "weight_brick_reads")
        return parts
