"""What a design is: its knobs, and what it supplies to the two engines.

A design module (one per design in this package) defines a ``DesignModel`` subclass with:

- ``design`` and ``knobs``: the knobs it has beyond the machine's (``simulator.knobs``), each with this design's
  default, choices and meaning; ``machine``: machine-knob defaults it changes; ``check``: rules across knobs;
- its cost rule, for the fast engine: per-brick statistics (``brick_stats``) or per-pair data of both operands
  (``BothSerialModel.pair_data``), reduced by the engines' shared kernels, or a whole-layer hook
  (``fast_layer``); what one value costs alone (``value_cost``: the ideal work);
- its per-cycle rule, for the reference engine: ``brick_cycles`` / ``reference_cycles`` (or ``pe_cycles``, or the
  whole-layer ``reference_layer``), which the reference engine runs cycle by cycle while it accumulates the
  real partial sums.

A design never imports an engine: both engines take the shared layer plan (``simulator.plan``) and call these
hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import components as hw
from ..config import ArchConfig
from ..knobs import DesignSpec
from ..plan import LayerPlan, Operand
from ..sync import MODE_MAX

# One cycle of one unit in the reference engine: the (lane, coefficient) pairs it consumes; the datapath
# adds coefficient * other_operand[lane] to the partial sum of every PE sharing the unit.
Cycle = list[tuple[int, int]]


@dataclass(frozen=True)
class BrickStats:
    """Per-brick statistics; a unit's cost = ``unit_cost(max hi, min lo, mode, extra)`` over its bricks."""

    hi: np.ndarray
    lo: np.ndarray
    mode: int = MODE_MAX
    extra: int = 0


def weight_error_fields(err2: float, norm2: float) -> dict:
    """``lossless`` and ``weight_rel_error`` (||w' - w|| / ||w||) from ||w' - w||^2 and ||w||^2."""
    return {"lossless": err2 == 0.0,
            "weight_rel_error": float(np.sqrt(err2 / norm2)) if norm2 else (0.0 if err2 == 0 else float("inf"))}


class DesignModel(DesignSpec):
    """One design: its knobs (``DesignSpec``: ``design``, ``knobs``, ``machine``, ``group_axis``, ``check``) and
    its cost model. Subclasses live one per module in this package.

    The engines use the brick path (``brick_stats`` for the fast engine, ``reference_cycles`` for the
    reference engine) unless the design overrides the whole-layer hooks ``fast_layer`` / ``reference_layer``
    (front ends such as Bit-Tactical's scheduler, or designs with their own array such as Bit Fusion).
    """

    supports_fp32_weights: ClassVar[bool] = False  # float32-weight layers (BitX) need an explicit model
    cost_is_terms: ClassVar[bool] = False  # value_cost == the value's terms under arch.encoding (Pragmatic)
    packed_storage: ClassVar[bool] = False  # operands stored at their precision (Loom), not in pe_width containers
    weights_resident: ClassVar[bool] = False  # weights stay in the compute array (ReRAM cells): no weight traffic
    # counters of this design's own, after the common results columns; ``fast_layer`` returns them (a dict, its 4th
    # item) and parts may be driven by them
    extra_columns: ClassVar[tuple[str, ...]] = ()

    # ----------------------------------------------------------------- hardware (energy and area)
    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """The compute hardware of the chip and the counter that drives each part (``simulator.components``);
        buffers and DRAM are the same for every design and added by ``simulator.energy``."""
        raise NotImplementedError(f"{self.design} lists no hardware parts")

    # ----------------------------------------------------------------- whole-layer hooks (optional)
    def fast_layer(self, plan: LayerPlan) -> tuple | None:
        """(cycles, busy PE-cycles, busy lane-cycles) of a planned layer, and for designs with ``extra_columns`` a
        4th item, the dict of those counters; or None to use the brick path."""
        return None

    def reference_layer(self, plan: LayerPlan) -> tuple[int, np.ndarray] | None:
        """(cycles, partial sums (G, Kg, windows)) from a cycle-by-cycle run, or None to use the brick path."""
        return None

    def ideal_and_terms(self, plan: LayerPlan) -> tuple[float, int] | None:
        """(ideal work in lane-cycles, effectual terms) of a layer, or None for the generic rule."""
        return None

    def effective_weights(self, arch: ArchConfig, layer) -> np.ndarray:
        """The weights the design actually multiplies (lossy designs differ from ``layer.weights``)."""
        return layer.weights

    def fidelity(self, arch: ArchConfig, layer, row: dict) -> dict | None:
        """``lossless`` and ``weight_rel_error`` of a simulated layer (its results ``row``) when the design knows them
        otherwise than from its effective weights (e.g. from its ADCs); None: compare the effective weights."""
        return None

    def surely_lossless(self, arch: ArchConfig, layer) -> bool:
        """True when the design multiplies ``layer``'s own weights, known without computing ``effective_weights``
        (False: compute them to tell)."""
        return type(self).effective_weights is DesignModel.effective_weights

    # ----------------------------------------------------------------- brick path

    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        """Statistics of every brick (rows of ``bricks``, shape (n, lanes), int32)."""
        raise NotImplementedError

    def value_cost(self, values: np.ndarray, op: Operand, arch: ArchConfig) -> np.ndarray:
        """What one value costs alone (cycles), for the ideal work; same shape as ``values``."""
        raise NotImplementedError

    def reference_cycles(self, bricks: list[list[int]], op: Operand, arch: ArchConfig) -> list[Cycle]:
        """Literal per-cycle schedule of one unit whose member PEs hold ``bricks`` (lanes numbered across the
        members in order); at least one cycle. By default members run their own rule side by side."""
        return run_in_parallel([self.brick_cycles(b, op, arch) for b in bricks], len(bricks[0]))

    def brick_cycles(self, values: list[int], op: Operand, arch: ArchConfig) -> list[Cycle]:
        """Per-cycle schedule of one PE on one brick."""
        raise NotImplementedError


def run_in_parallel(schedules: list[list[Cycle]], lanes: int) -> list[Cycle]:
    """Members in lockstep: cycle i holds every member's i-th cycle; the unit lasts as long as the longest."""
    length = max(len(s) for s in schedules)
    return [[(m * lanes + lane, coeff) for m, s in enumerate(schedules) if i < len(s) for lane, coeff in s[i]]
            for i in range(length)]


def twos_complement_bits(v: int, width: int) -> list[int]:
    """Coefficients of the width-bit two's complement digits of v (top digit negative)."""
    u = v & ((1 << width) - 1)
    return [(-(1 << i) if i == width - 1 else (1 << i)) if (u >> i) & 1 else 0 for i in range(width)]


def unsigned_bits(v: int, width: int) -> list[int]:
    return [(1 << i) if (v >> i) & 1 else 0 for i in range(width)]


class BothSerialModel(DesignModel):
    """A design whose cost is per PE, from both operands (``serial: both``)."""

    # pair data are the lanes' term counts under arch.encoding and a MAC alone costs their product (Laconic): the
    # fast kernels' sum of a_l * w_l over the MACs is then the layer's terms and its ideal work
    pair_data_are_terms: ClassVar[bool] = False

    def pair_data(self, act_bricks: np.ndarray, weight_bricks: np.ndarray, aop: Operand, wop: Operand,
                  arch: ArchConfig) -> tuple[np.ndarray, np.ndarray, bool]:
        """Per-brick data for the fast kernel: (a (n_a, A), w (n_w, A), lanewise). Separable (A = 1): a PE costs
        a * w; lane-wise (A = lanes): a PE costs max over lanes of max(1, a_l * w_l). Data are non-negative
        counts whose products fit int16 (the kernels' type; int16 arrays are used as they are)."""
        raise NotImplementedError

    def pair_value_costs(self, acts: np.ndarray, weights: np.ndarray, aop: Operand, wop: Operand,
                         arch: ArchConfig) -> tuple[np.ndarray, np.ndarray]:
        """Per-value costs whose product over a MAC is what that MAC costs alone (the ideal work); the weight
        cost may be a scalar when every weight costs the same."""
        raise NotImplementedError

    def pe_cycles(self, acts: list[int], weights: list[int], aop: Operand, wop: Operand,
                  arch: ArchConfig) -> list[int]:
        """Literal schedule of one PE on one brick pair: the partial-sum increment of each cycle (>= 1 cycle)."""
        raise NotImplementedError
