"""A layer as the machine runs it: the plan both engines and every design share (docs/design.md §3).

``plan_layer(arch, layer)`` checks that the design can run the layer (number format, operand widths, size),
lowers it to the machine's sub-convolutions (space-to-depth, groups, depthwise, GEMM, FC), counts the passes,
and names the serial operand with its precision. ``LayerPlan.output`` turns the partial sums the reference
engine accumulates per sub-convolution back into the layer's output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from workloads import Layer, LayerKind
from workloads.bricks import Lowered, lower, lowered_elements

from .config import ArchConfig
from .knobs import ConfigError, DepthwiseMapping, Serial

BYTES_PER_LOWERED_VALUE = 16  # the lowered tensors (int32), their bricks and per-brick statistics, with room


class LayerTooLargeError(ValueError):
    """A layer whose simulation would need more memory than the machine has."""


@dataclass(frozen=True)
class Operand:
    """An operand's number format on one layer."""

    signed: bool
    bits: int


@dataclass(frozen=True)
class LayerPlan:
    """One layer on one architecture: the lowered sub-convolutions, the passes, the operands."""

    arch: ArchConfig
    layer: Layer
    low: Lowered
    passes: int  # passes per window set: the sub-conv's filter sets spread over the tiles
    serial: Serial
    act: Operand
    weight: Operand

    @property
    def op(self) -> Operand:
        """The serial operand's format (the activations' when both or neither are serial)."""
        return self.weight if self.serial == Serial.WEIGHT else self.act

    @property
    def channel_bricks(self) -> int:
        """Channel bricks per sub-convolution (steps per kernel position)."""
        return -(-int(self.low.acts.shape[1]) // self.arch.lanes)

    @property
    def steps(self) -> int:
        """Steps per (window set, pass): kernel rows x kernel columns x channel bricks."""
        kr, ks = self.low.kernel
        return kr * ks * self.channel_bricks

    @property
    def window_sets(self) -> int:
        return -(-self.low.windows // self.arch.columns)

    @property
    def batches(self) -> int:
        """Sub-convolutions run one after the other (depthwise ``spread``: ``tiles`` of them at a time)."""
        spread = self.low.spread_tiles
        return -(-self.low.groups // spread)

    def taps(self) -> list[tuple[int, int, int]]:
        """Every step of a (window set, pass) in order: (kernel row, kernel column, channel brick)."""
        kr, ks = self.low.kernel
        return [(r, s, cb) for r in range(kr) for s in range(ks) for cb in range(self.channel_bricks)]

    def held(self, batch: int, p: int, tile: int) -> tuple[int, int, int]:
        """(sub-conv, first filter, end filter) that ``tile`` holds in pass p of a batch (end <= first: idle)."""
        low, arch = self.low, self.arch
        g, fset = (batch, p * arch.tiles + tile) if low.spread_tiles == 1 else (batch * low.spread_tiles + tile, p)
        if g >= low.groups:
            return g, 0, 0
        return g, fset * arch.rows, min((fset + 1) * arch.rows, int(low.filters[g]))

    def output(self, psum: np.ndarray) -> np.ndarray:
        """Partial sums (G, Kg, windows) of the sub-convolutions -> the layer's output (its shape, psum's type)."""
        low, layer = self.low, self.layer
        out = np.zeros((layer.out_channels, low.windows), dtype=psum.dtype)
        for g in range(low.groups):
            f = int(low.filters[g])
            out[low.filter_offset[g]:low.filter_offset[g] + f] = psum[g, :f]
        if layer.kind == LayerKind.CONV:
            return out.reshape(layer.output_shape)
        if layer.kind == LayerKind.FC:
            return out[:, 0]
        return out.T


def physical_memory_bytes() -> int | None:
    """This machine's memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} bytes"


def check_layer(arch: ArchConfig, layer: Layer) -> None:
    """Raise ConfigError if ``arch``'s design cannot run ``layer`` (weight format, operand widths over pe_width)."""
    if not isinstance(layer, Layer):
        raise TypeError(f"a layer must be a workloads.Layer, not {type(layer).__name__}")
    model = arch.model
    if layer.weight_format != "int" and not model.supports_fp32_weights:
        raise ConfigError(f"layer {layer.name!r} has {layer.weight_format} weights, which {arch.name} "
                          f"({arch.design}) does not model; use an integer (quantized) layer")
    serial = arch.serial
    # bit-parallel PEs take both operands whole; a serial design's parallel operand is not bounded by pe_width
    both = ("act_bits", "weight_bits")
    checked = {Serial.NONE: both, Serial.ACTIVATION: ("act_bits",), Serial.WEIGHT: ("weight_bits",),
               Serial.BOTH: both}[serial]
    for what in checked:
        if getattr(layer, what) > arch.pe_width:
            raise ConfigError(f"layer {layer.name!r}: {what} ({getattr(layer, what)}) exceeds the PE width of "
                              f"{arch.name} (pe_width={arch.pe_width})")


def plan_layer(arch: ArchConfig, layer: Layer) -> LayerPlan:
    """Check that ``arch``'s design can run ``layer`` and map it onto the machine."""
    check_layer(arch, layer)
    need = lowered_elements(layer, lanes=arch.lanes, rows=arch.rows,
                            space_to_depth_enabled=arch.first_layer_space_to_depth) * BYTES_PER_LOWERED_VALUE
    have = physical_memory_bytes()
    if have is not None and need > have:
        raise LayerTooLargeError(f"layer {layer.name!r} would need about {_gib(need)} to simulate (its lowered "
                                 f"tensors), more than this machine's {_gib(have)} of memory")
    low = lower(layer, lanes=arch.lanes, rows=arch.rows, tiles=arch.tiles,
                space_to_depth_enabled=arch.first_layer_space_to_depth,
                spread=arch.depthwise_mapping == DepthwiseMapping.SPREAD)
    filter_sets = -(-int(low.weights.shape[1]) // arch.rows)
    passes = 1 if low.spread_tiles > 1 else -(-filter_sets // arch.tiles)
    return LayerPlan(arch, layer, low, passes, arch.serial, Operand(layer.act_signed, layer.act_bits),
                     Operand(layer.weight_signed, layer.weight_bits))
