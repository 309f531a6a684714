"""Memory: on-chip buffer traffic, DRAM traffic and memory cycles of one layer (docs/design.md §8).

Storage precision: an operand is stored in ``pe_width``-bit containers, or at the layer's precision (``act_bits``,
``weight_bits``) on designs that pack it (``packed_storage``, Loom); float32 weights take 32 bits.

DRAM traffic per layer (one inference, batch 1):

* weights: the layer's weights once if they fit in ``weight_buffer_kib``, else once per window set (the loop nest
  runs every filter set for each window set, so a weight buffer that cannot hold them re-reads them);
* input activations: read from DRAM for the network's first layer, and for any layer whose input and output do not
  fit together in ``act_buffer_kib`` (then once per pass: each filter set re-reads them); otherwise they are still
  on chip from the previous layer;
* output activations: written for the last layer and whenever input and output do not fit together.

Memory cycles = DRAM bits / (``dram_gb_per_s`` in bits per cycle at ``clock_mhz``), rounded up. With
``double_buffering`` transfers overlap compute (``total_cycles = max(compute, memory)``), else they add.
``bound`` says which side sets ``total_cycles``.

Designs whose weights stay in the compute array (``weights_resident``: ReRAM crossbars, programmed before the
inference) move no weights at all.

On-chip traffic (for energy): activation bricks read (``act_brick_reads`` x lanes x stored bits), weight bricks read
(likewise) and output activations written.
"""

from __future__ import annotations

import math

from workloads import Layer
from workloads.layer import WeightFormat

from .config import ArchConfig


def stored_bits(arch: ArchConfig, layer: Layer) -> tuple[int, int]:
    """(activation, weight) bits per value in the buffers and in DRAM."""
    if getattr(layer, "weight_format", WeightFormat.INT) == WeightFormat.FP32:
        w_bits = 32
    else:
        w_bits = layer.weight_bits if arch.model.packed_storage else max(arch.pe_width, layer.weight_bits)
    a_bits = layer.act_bits if arch.model.packed_storage else max(arch.pe_width, layer.act_bits)
    return a_bits, w_bits


def layer_memory(arch: ArchConfig, layer: Layer, compute_cycles: int, act_brick_reads: int,
                 weight_brick_reads: int, passes: int, window_sets: int, *, first: bool, last: bool) -> dict:
    """Buffer and DRAM traffic (bits), memory cycles, total cycles and the bound of one layer."""
    a_bits, w_bits = stored_bits(arch, layer)
    in_bits = int(layer.activations.size) * a_bits
    out_bits = math.prod(layer.output_shape) * a_bits
    weight_bits = 0 if arch.model.weights_resident else int(layer.weights.size) * w_bits
    weights_fit = weight_bits <= arch.weight_buffer_kib * 8192
    acts_fit = in_bits + out_bits <= arch.act_buffer_kib * 8192
    dram = weight_bits * (1 if weights_fit else window_sets)
    if first or not acts_fit:
        dram += in_bits * (1 if acts_fit else passes)
    if last or not acts_fit:
        dram += out_bits
    bits_per_cycle = arch.dram_gb_per_s * 8e3 / arch.clock_mhz  # GB/s -> bits per cycle
    memory_cycles = math.ceil(dram / bits_per_cycle)
    if arch.double_buffering:
        total = max(compute_cycles, memory_cycles)
    else:
        total = compute_cycles + memory_cycles
    return {
        "act_buffer_bits": act_brick_reads * arch.lanes * a_bits,
        "weight_buffer_bits": 0 if arch.model.weights_resident else weight_brick_reads * arch.lanes * w_bits,
        "output_buffer_bits": out_bits,
        "dram_bits": dram,
        "memory_cycles": memory_cycles,
        "total_cycles": total,
        "bound": "memory" if memory_cycles > compute_cycles else "compute",
    }
