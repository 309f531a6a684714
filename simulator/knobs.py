"""Knobs: what a design can be configured with. Typed, ranged, documented; validated one value at a time.

Every design declares its knobs next to its cost rule (``simulator/designs/<design>.py``: a ``DesignSpec``
subclass, through ``DesignModel``), built from the catalogue below with the design's own default, choices and
help (``Knob.but``). Every design also has the machine knobs (``MACHINE``: geometry, clock, mapping), with
defaults it may override. Defining a design class registers it in ``DESIGNS``, where the configuration
(``simulator.config``) finds it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


class ConfigError(ValueError):
    """An architecture configuration that is malformed or inconsistent."""


class Design(enum.StrEnum):
    DADIANNAO = "dadiannao"
    STRIPES = "stripes"
    DYNAMIC_STRIPES = "dynamic_stripes"
    PRAGMATIC = "pragmatic"
    LOOM = "loom"
    LACONIC = "laconic"
    TACTICAL = "tactical"
    BITLET = "bitlet"
    BITX = "bitx"
    SWIS = "swis"
    WEIGHT_SERIAL = "weight_serial"
    BITFUSION = "bitfusion"
    CAMBRICON_X = "cambricon_x"
    RERAM = "reram"


class Serial(enum.StrEnum):
    NONE = "none"  # bit-parallel
    ACTIVATION = "activation"  # a column's activation brick sets the cost
    WEIGHT = "weight"  # a row's weight brick sets the cost
    BOTH = "both"  # both operands serial: the cost is per PE


class Encoding(enum.StrEnum):
    NONE = "none"  # bit-parallel operand
    FIXED = "fixed"  # profiled per-layer precision
    DYNAMIC = "dynamic"  # per-group detected precision
    BINARY = "binary"  # essential bits of the magnitude
    BOOTH = "booth"  # DNNsim's Booth-like recoding (docs/design.md §4)
    CSD = "csd"  # canonical signed digit
    INTERLEAVED = "interleaved"  # Bitlet / BitX significance columns
    SHARED_SHIFT = "shared_shift"  # SWIS shared shift positions


class BufferMemory(enum.StrEnum):
    SRAM = "sram"  # 6T SRAM (CACTI low-standby-power cells)
    EDRAM = "edram"  # logic-process DRAM (CACTI lp-dram), as DaDianNao's on-chip memories


class Sync(enum.StrEnum):
    LOCKSTEP = "lockstep"  # every PE of the chip waits for the slowest (DNNsim)
    TILE = "tile"  # each tile advances on its own slowest PE
    PE = "pe"  # every PE advances on its own (ideal buffering)


class Backend(enum.StrEnum):
    DADIANNAO = "dadiannao"  # TCL
    PRAGMATIC = "pragmatic"  # TCLe
    DYNAMIC_STRIPES = "dynamic_stripes"  # TCLp


class SearchShape(enum.StrEnum):
    T = "T"
    L = "L"


class Promotion(enum.StrEnum):
    LEAST_FLEXIBLE = "least_flexible"  # the paper's rule: the zero lane with the fewest candidates first
    MOST_CANDIDATES = "most_candidates"  # DNNsim HEAD's rule


class EmptySlots(enum.StrEnum):
    PROCESS = "process"  # every slot without a weight processes its lane's own activation (the multiplexer's default)
    DNNSIM = "dnnsim"  # DNNsim: a slot emptied by promoting its weight to an earlier step is not processed


class AdcResolution(enum.StrEnum):
    FIXED = "fixed"  # every conversion resolves adc_bits bits
    COLUMN = "column"  # a conversion resolves the bits its column can reach (at most adc_bits): less energy


class SliceLayout(enum.StrEnum):
    SEPARATE = "separate"  # a crossbar's columns hold one slice significance of consecutive outputs
    ADJACENT = "adjacent"  # a weight's slices sit in adjacent columns (ISAAC)


class Compaction(enum.StrEnum):
    NONE = "none"  # dense mapping: every row and column of the unrolled matrix is stored
    COMPACT = "compact"  # rows / columns all zero within a crossbar's column block are not stored (AUTO-PRUNE)


class DepthwiseMapping(enum.StrEnum):
    DNNSIM = "dnnsim"  # one group of min(lanes, rows) channels at a time, on tile 0
    SPREAD = "spread"  # the tiles take consecutive groups at once, in lockstep


@dataclass(frozen=True)
class Knob:
    """One configuration knob: its type (int, float, bool or a StrEnum), default, allowed range or choices, unit
    and meaning."""

    name: str
    type: type
    default: Any
    help: str
    lo: float | None = None  # inclusive (ints), exclusive (floats)
    hi: float | None = None  # inclusive
    choices: tuple | None = None  # the allowed values (an enum's subset, or ints)
    unit: str = ""

    def but(self, **changes: Any) -> Knob:
        """A copy for one design: another ``default``, ``choices`` or ``help``."""
        return dataclasses.replace(self, **changes)

    def check(self, value: Any) -> Any:
        """The value converted to the knob's type, or ConfigError naming the knob, the value and what is allowed."""
        name = self.name
        if isinstance(self.type, type) and issubclass(self.type, enum.Enum):
            try:
                value = self.type(value)
            except (ValueError, TypeError):
                raise ConfigError(f"{name} ({value!r}) must be one of: {self._choice_text()}") from None
        elif self.type is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{name} ({value!r}) must be true or false")
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} ({value!r}) must be an integer")
            if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
                raise ConfigError(f"{name} ({value}) must be {self._range_text()}")
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} ({value!r}) must be a finite number")
            if (self.lo is not None and value <= self.lo) or (self.hi is not None and value > self.hi):
                raise ConfigError(f"{name} ({value}) must be {self._range_text()}")
            value = float(value)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{name} ({value}) must be one of: {self._choice_text()}")
        return value

    def _choice_text(self) -> str:
        options = self.choices if self.choices is not None else tuple(self.type)
        return ", ".join(str(o) for o in options)

    def _range_text(self) -> str:
        if self.type is float:
            return f"> {self.lo:g}" if self.hi is None else f"in ({self.lo:g}, {self.hi:g}]"
        if self.hi is None:
            return f">= {self.lo}"
        return f"in {self.lo}..{self.hi}"

    def type_text(self) -> str:
        """What values the knob takes, for listings: ``int 1..4096``, ``booth | binary | csd``, ``bool``."""
        if self.choices is not None or (isinstance(self.type, type) and issubclass(self.type, enum.Enum)):
            return " | ".join(str(o) for o in (self.choices if self.choices is not None else tuple(self.type)))
        if self.type is bool:
            return "bool"
        if self.type is float:
            return f"number {self._range_text()}"
        return "int" if self.lo is None else f"int {self._range_text()}"


def plain(value: Any) -> Any:
    """A knob value as plain JSON / YAML data (enums become their strings)."""
    return value.value if isinstance(value, enum.Enum) else value


# ----------------------------------------------------------------------------- the catalogue
# Technology and memory knobs (simulator.technology, simulator.memory): every design has them too, and a fair
# comparison keeps them equal between a design and its baseline (``bitserial compare --set-all``).
TECHNOLOGY: tuple[Knob, ...] = (
    Knob("tech_node_nm", int, 45, "technology node (a node of simulator/tables/nodes.csv; nominal supply)", 7, 180,
         unit="nm"),
    Knob("act_buffer_kib", int, 4096, "on-chip activation buffer, all tiles", 1, 1 << 22, unit="KiB"),
    Knob("weight_buffer_kib", int, 32768, "on-chip weight buffer, all tiles", 1, 1 << 22, unit="KiB"),
    Knob("buffer_memory", BufferMemory, BufferMemory.SRAM,
         "cells of the on-chip buffers: sram or edram (CACTI area, leakage (eDRAM: with refresh) and access energy)"),
    Knob("dram_gb_per_s", float, 256.0, "off-chip bandwidth (HBM2 stack: 256)", 0, unit="GB/s"),
    Knob("double_buffering", bool, True, "DRAM transfers overlap compute: total = max(compute, memory), else sum"),
)

# Machine knobs: every design has them (a design may override their defaults).
MACHINE: tuple[Knob, ...] = (
    Knob("tiles", int, 16, "tiles on the chip; each takes its own filter set in a pass", 1, 4096),
    Knob("rows", int, 16, "PE rows per tile: filters processed at once per tile", 1, 4096),
    Knob("columns", int, 16, "PE columns per tile: windows processed at once", 1, 4096),
    Knob("lanes", int, 16, "multiply lanes per PE = input channels per brick", 1, 4096),
    Knob("pe_width", int, 16, "bit-parallel operand width of a PE; serial precisions must fit", 1, 16, unit="bits"),
    Knob("clock_mhz", float, 980.0, "clock frequency (converts cycles to time)", 0, unit="MHz"),
    Knob("first_layer_space_to_depth", bool, True, "rewrite a strided 3-channel first conv space-to-depth (DNNsim)"),
    Knob("depthwise_mapping", DepthwiseMapping, DepthwiseMapping.SPREAD,
         "depthwise convs: spread (tiles take groups of min(lanes, rows) channels at once) or dnnsim (one group at "
         "a time, on tile 0)"),
    *TECHNOLOGY,
)

# Design knobs, in their most common form; designs restrict and re-document them.
SERIAL = Knob("serial", Serial, Serial.NONE, "operand processed term by term (none: bit-parallel)")
ENCODING = Knob("encoding", Encoding, Encoding.NONE, "encoding of the serial operand")
GROUP_SIZE = Knob("group_size", int, 1, "columns (weight-serial: rows) that share one precision / sync unit", 1,
                  4096)
RUN_AHEAD = Knob("run_ahead", int, 0, "run-ahead registers R: units may drift up to R steps apart (0 = lockstep)",
                 0, 64)
FIRST_STAGE_BITS = Knob("first_stage_bits", int, 2, "per-lane first-stage shifter reach B (2-stage shifting)", 0,
                        4, unit="bits")
MINOR_BIT = Knob("minor_bit", bool, False, "also trim trailing zero bits (width = max msb - min lsb + 1)")
SYNC = Knob("sync", Sync, Sync.LOCKSTEP, "both operands serial: lockstep (whole chip), tile or pe synchronization")

# What the engines read for every design, and the value that means "this design has no such feature".
ENGINE_NEUTRAL: dict[str, Any] = {"run_ahead": 0, "group_size": 1, "sync": Sync.LOCKSTEP}


# ----------------------------------------------------------------------------- designs
class DesignSpec:
    """What configures a design: its knobs and the rules between them (the cost model's other half is
    ``simulator.designs.base.DesignModel``). Every subclass that sets ``design`` is registered in ``DESIGNS``."""

    design: ClassVar[Design]
    knobs: ClassVar[tuple[Knob, ...]] = ()  # this design's knobs beyond the machine's (serial, encoding first)
    machine: ClassVar[dict[str, Any]] = {}  # machine-knob defaults this design changes
    machine_help: ClassVar[dict[str, str]] = {}  # what a machine knob means on this design, where it differs
    group_axis: ClassVar[str | None] = None  # what group_size groups: None = the serial operand's units; "lanes"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "design" in cls.__dict__:
            DESIGNS[cls.design] = cls()

    def serial(self, knobs: Mapping[str, Any]) -> Serial:
        """The operand processed term by term, given the knob values."""
        return knobs["serial"]

    def check(self, knobs: Mapping[str, Any]) -> None:
        """Rules across knobs (ConfigError naming the knobs and values). Default: ``group_size`` divides the units
        it groups (columns, rows for weight-serial designs, or lanes)."""
        if "group_size" not in knobs:
            return
        axis = self.group_axis or ("rows" if self.serial(knobs) == Serial.WEIGHT else "columns")
        if knobs[axis] % knobs["group_size"]:
            raise ConfigError(f"{axis} ({knobs[axis]}) must be a multiple of group_size ({knobs['group_size']})")


DESIGNS: dict[Design, DesignSpec] = {}  # every design class defined so far (simulator.designs defines them all)
