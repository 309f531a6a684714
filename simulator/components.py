"""What a chip is built of: parts (cells of the technology tables) and the activity counter that drives each.

Every design lists its compute parts next to its cost rule (``DesignModel.parts``); the buffers and the DRAM
interface are the same for every design (``memory_parts``). A ``Part`` is ``count`` cells of one table component
(``simulator/tables``), each ``bits`` wide, used ``uses`` times per unit of ``per``, a counter column of the results
table (``busy_lane_cycles``, ``busy_pe_cycles``, ``act_brick_reads``, ``weight_brick_reads``, ``psum_writes``,
``act_buffer_bits``, ``weight_buffer_bits``, ``output_buffer_bits``, ``dram_bits``, or one of the design's own
``extra_columns``). Energy and area are then
sums over the parts (``simulator.energy``).

Builders below give the usual blocks: adder trees, barrel shifters, multiplexers, accumulators, precision
detectors, run-ahead registers. Widths follow the datapath: a tree of n inputs of b bits has n - 1 adders, those of
its level k as wide as their operands (b + k - 1 bits: n / 2 adders of b bits, n / 4 of b + 1, ...); a barrel
shifter over p positions has ceil(log2 p) stages of 2-input multiplexers; the accumulator is ``ACC_EXTRA`` bits
wider than a full product (2 x pe_width) to hold a layer's sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ACC_EXTRA = 8  # accumulator headroom above a 2 x pe_width-bit product (bits)

COUNTERS = ("busy_lane_cycles", "busy_pe_cycles", "act_brick_reads", "weight_brick_reads", "psum_writes",
            "act_buffer_bits", "weight_buffer_bits", "output_buffer_bits", "dram_bits")


@dataclass(frozen=True)
class Part:
    """``count`` cells of table component ``component`` (``bits`` wide; memories: ``capacity_kib`` each); each
    unit of the counter ``per`` performs ``uses`` ``action``s on them. ``group``: compute, buffers or off-chip."""

    name: str
    component: str
    bits: int
    count: float
    action: str
    per: str
    uses: float
    capacity_kib: float = 0.0
    group: str = "compute"

    def __post_init__(self) -> None:
        if not self.per.isidentifier():
            raise ValueError(f"part {self.name!r}: per ({self.per!r}) must name a counter column")
        if self.bits < 1 or self.count < 0 or self.uses < 0:
            raise ValueError(f"part {self.name!r}: bits ({self.bits}) must be >= 1, count ({self.count}) and uses "
                             f"({self.uses}) >= 0")


def lane_multipliers(arch) -> list[Part]:
    """A pe_width x pe_width multiplier per lane, used on each busy lane-cycle (bit-parallel lanes)."""
    return [Part("lane multipliers", "multiplier", arch.pe_width, arch.pes * arch.lanes, "multiply",
                 "busy_lane_cycles", 1)]


def lane_and_gates(arch, bits: int) -> list[Part]:
    """``bits`` AND gates per lane (serial bits times the other operand), used on each busy lane-cycle."""
    return [Part("lane AND gates", "and_gate", bits, arch.pes * arch.lanes, "toggle", "busy_lane_cycles", 1)]


def log2_ceil(n: int) -> int:
    return max(1, math.ceil(math.log2(n))) if n > 1 else 0


def tree_levels(inputs: int, in_bits: int) -> list[tuple[int, int]]:
    """(adders, bits) of every level of a binary tree reducing ``inputs`` values of ``in_bits`` bits: level k adds
    pairs of (in_bits + k - 1)-bit values (an odd one out passes to the next level), so a tree has inputs - 1 adders
    in all and its root's sum has in_bits + ceil(log2 inputs) bits."""
    levels, values, bits = [], inputs, in_bits
    while values > 1:
        levels.append((values // 2, bits))
        values, bits = values - values // 2, bits + 1
    return levels


def adder_tree(name: str, trees: int, inputs: int, in_bits: int, per: str = "busy_pe_cycles") -> list[Part]:
    """``trees`` trees reducing ``inputs`` values of ``in_bits`` bits, one part per level (``tree_levels``: each
    level's adders as wide as its operands); every unit of ``per`` runs one tree once."""
    return [Part(name, "adder", bits, trees * adders, "add", per, adders) for adders, bits in
            tree_levels(inputs, in_bits)]


def shifter(name: str, count: int, bits: int, positions: int, per: str, uses: float = 1) -> list[Part]:
    """Barrel shifters of ``bits`` bits over ``positions`` positions (``ceil(log2 positions)`` stages of muxes)."""
    stages = log2_ceil(positions)
    if stages == 0:
        return []
    return [Part(name, "mux2", bits * stages, count, "select", per, uses)]


def mux(name: str, count: int, bits: int, inputs: int, per: str, uses: float = 1) -> list[Part]:
    """``inputs``-to-1 multiplexers of ``bits`` bits (a tree of ``inputs`` - 1 two-input muxes per bit)."""
    if inputs < 2:
        return []
    return [Part(name, "mux2", bits * (inputs - 1), count, "select", per, uses)]


def accumulators(count: int, bits: int, per: str = "busy_pe_cycles") -> list[Part]:
    """Accumulate-and-hold: an adder and a register of ``bits`` bits, each used once per unit of ``per``."""
    return [Part("accumulator adders", "adder", bits, count, "add", per, 1),
            Part("accumulator registers", "register", bits, count, "write", per, 1)]


def acc_bits(pe_width: int) -> int:
    return 2 * pe_width + ACC_EXTRA


def pe_back_end(arch, tree_in_bits: int) -> list[Part]:
    """Every PE's adder tree over its lanes and its accumulator, used on each busy PE-cycle."""
    return (adder_tree("adder trees", arch.pes, arch.lanes, tree_in_bits)
            + accumulators(arch.pes, acc_bits(arch.pe_width)))


def precision_detectors(arch, units: int, per: str) -> list[Part]:
    """Leading-one detection over a brick (an OR across lanes per bit, then a priority encoder): ``units`` of them,
    one use per brick read (Dynamic Stripes, Loom)."""
    w = arch.pe_width
    return [Part("precision detectors", "and_gate", arch.lanes * w + 2 * w, units, "toggle", per, 1)]


def run_ahead_registers(arch, units: int, per: str) -> list[Part]:
    """``run_ahead`` brick registers per unit; every brick read passes through one."""
    if not arch.run_ahead:
        return []
    return [Part("run-ahead registers", "register", arch.lanes * arch.pe_width, units * arch.run_ahead, "write",
                 per, 1)]


def term_generators(arch, units: int, per: str) -> list[Part]:
    """Oneffset / term generators (a priority encoder and the pending-bits register per lane): ``units`` sets of
    ``lanes``, used per brick read (Pragmatic, Laconic, the weight-serial engines)."""
    w, lanes = arch.pe_width, arch.lanes
    return [Part("term generators", "and_gate", 2 * w, units * lanes, "toggle", per, lanes),
            Part("term generator registers", "register", w, units * lanes, "write", per, lanes)]


def two_stage_shifting(arch, lane_per: str, tree_per: str = "busy_pe_cycles") -> list[Part]:
    """Pragmatic's datapath on the other operand: per lane a first-stage shifter of 2^B positions (and a sign XOR
    when terms can be negative),
    the PE's adder tree of the shifted values and a second-stage shifter over the full width, then the accumulator."""
    w, lanes, pes = arch.pe_width, arch.lanes, arch.pes
    reach = 1 << arch.first_stage_bits
    lane_bits = w + reach - 1
    signs = [] if arch.encoding == "binary" else [Part("lane sign XORs", "xor_gate", w, pes * lanes, "toggle",
                                                       lane_per, 1)]  # negative terms (Booth, CSD)
    return (shifter("first-stage shifters", pes * lanes, w, reach, lane_per) + signs
            + adder_tree("adder trees", pes, lanes, lane_bits, tree_per)
            + shifter("second-stage shifters", pes, lane_bits + log2_ceil(lanes), 2 * w, tree_per)
            + accumulators(pes, acc_bits(w), tree_per))


def memory_parts(arch) -> list[Part]:
    """On-chip activation and weight buffers (``buffer_memory`` cells, one bank per tile, 64-bit words; no weight
    buffer when the weights are resident in the compute array) and the DRAM interface."""
    banks, cells = arch.tiles, str(arch.buffer_memory)
    act_kib, wgt_kib = arch.act_buffer_kib / banks, arch.weight_buffer_kib / banks
    weights = [] if arch.model.weights_resident else [  # resident weights (ReRAM cells) need no weight buffer
        Part("weight buffer reads", cells, 64, banks, "read", "weight_buffer_bits", 1 / 64, wgt_kib, "buffers")]
    return [
        Part("activation buffer reads", cells, 64, banks, "read", "act_buffer_bits", 1 / 64, act_kib, "buffers"),
        Part("activation buffer writes", cells, 64, 0, "write", "output_buffer_bits", 1 / 64, act_kib, "buffers"),
        *weights,
        Part("DRAM transfers", "dram", 64, 0, "access", "dram_bits", 1 / 64, 0.0, "off-chip"),
    ]
