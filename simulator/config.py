"""Architecture configuration: frozen, typed, validated; loaded from YAML presets in ``arch_configs/``."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


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
    BOOTH = "booth"  # DNNsim's Booth-like recoding (DESIGN §4)
    CSD = "csd"  # canonical signed digit
    INTERLEAVED = "interleaved"  # Bitlet / BitX significance columns
    SHARED_SHIFT = "shared_shift"  # SWIS shared shift positions


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


class DepthwiseMapping(enum.StrEnum):
    DNNSIM = "dnnsim"  # one group of min(lanes, rows) channels at a time, on tile 0
    SPREAD = "spread"  # the tiles take consecutive groups at once, in lockstep


# Which serial operands and encodings each design accepts (the first is the preset default).
DESIGN_RULES: dict[Design, tuple[tuple[Serial, ...], tuple[Encoding, ...]]] = {
    Design.DADIANNAO: ((Serial.NONE,), (Encoding.NONE,)),
    Design.STRIPES: ((Serial.ACTIVATION,), (Encoding.FIXED,)),
    Design.DYNAMIC_STRIPES: ((Serial.ACTIVATION,), (Encoding.DYNAMIC,)),
    Design.PRAGMATIC: ((Serial.ACTIVATION, Serial.WEIGHT), (Encoding.BOOTH, Encoding.BINARY, Encoding.CSD)),
    Design.LOOM: ((Serial.BOTH,), (Encoding.DYNAMIC,)),
    Design.LACONIC: ((Serial.BOTH,), (Encoding.BOOTH, Encoding.BINARY, Encoding.CSD)),
    # Tactical: serial is implied by the back end; encoding is the Pragmatic back end's
    Design.TACTICAL: ((Serial.NONE, Serial.ACTIVATION), (Encoding.BOOTH, Encoding.BINARY, Encoding.CSD)),
    Design.BITLET: ((Serial.WEIGHT,), (Encoding.INTERLEAVED,)),
    Design.BITX: ((Serial.WEIGHT,), (Encoding.INTERLEAVED,)),
    Design.SWIS: ((Serial.WEIGHT,), (Encoding.SHARED_SHIFT,)),
    Design.WEIGHT_SERIAL: ((Serial.WEIGHT,), (Encoding.BOOTH, Encoding.BINARY, Encoding.CSD)),
    Design.BITFUSION: ((Serial.BOTH,), (Encoding.FIXED,)),
}

# What `group_size` groups, per design (default: the serial operand's units, columns or rows).
GROUP_AXIS: dict[Design, str] = {Design.SWIS: "lanes", Design.BITLET: "lanes", Design.BITX: "lanes"}

KNOB_HELP: dict[str, str] = {
    "design": "cost model: " + ", ".join(d.value for d in Design),
    "tiles": "tiles on the chip; each takes its own filter set in a pass",
    "rows": "PE rows per tile (filters processed at once per tile)",
    "columns": "PE columns per tile (windows processed at once)",
    "lanes": "multiply lanes per PE = input channels per brick",
    "pe_width": "bit-parallel operand width of a PE, in bits (serial precisions must fit)",
    "serial": "serial operand: none, activation or weight",
    "encoding": "serial operand encoding: none, fixed, dynamic, binary, booth, csd",
    "first_stage_bits": "Pragmatic: per-lane first-stage shifter width B, in bits",
    "group_size": "columns (or rows, weight-serial) that share one precision / synchronization unit",
    "minor_bit": "Dynamic Stripes: also trim trailing zero bits (width = max msb - min lsb + 1)",
    "run_ahead": "run-ahead registers R: units may drift up to R steps apart (0 = lockstep)",
    "first_layer_space_to_depth": "rewrite a 3-channel strided first conv space-to-depth (DNNsim)",
    "depthwise_mapping": "depthwise conv mapping: dnnsim (tile 0 only) or spread (tiles share groups)",
    "clock_mhz": "clock frequency in MHz (converts cycles to seconds)",
    "sync": "both-serial designs: lockstep (chip), tile or pe synchronization",
    "serial_bits": "Loom: activation bits processed per cycle (1, 2 or 4)",
    "dynamic_weights": "Loom: per-group detected weight width instead of the layer's weight_bits",
    "backend": "Bit-Tactical back end: dadiannao (TCL), pragmatic (TCLe), dynamic_stripes (TCLp)",
    "lookahead": "Bit-Tactical: lookahead h (steps a weight may be promoted from)",
    "lookaside": "Bit-Tactical: lookaside d (lanes a weight may move across)",
    "search_shape": "Bit-Tactical: search shape T or L",
    "promotion": "Bit-Tactical: least_flexible (paper) or most_candidates (DNNsim HEAD) lane first",
    "kept_columns": "BitX: significance columns kept below the group's msb (k)",
    "shared_terms": "SWIS: shared shift positions per group (N)",
    "skip_zero_weights": "weight-serial engine: all-zero weight bricks cost no cycle",
    "fusion_rows": "Bit Fusion: rows of fusion units in the systolic array",
    "fusion_columns": "Bit Fusion: columns of fusion units in the systolic array",
}


def _int_field(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} ({value!r}) must be an integer")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ConfigError(f"{name} ({value}) must be {rng}")
    return value


def _enum_field(name: str, enum_type: type[enum.StrEnum], value: Any) -> enum.StrEnum:
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(e.value for e in enum_type)
        raise ConfigError(f"{name} ({value!r}) must be one of: {choices}") from None


@dataclass(frozen=True)
class ArchConfig:
    """One accelerator instance: geometry (PEs, lanes), serial operand, encoding, synchronization."""

    name: str
    design: Design
    tiles: int = 16
    rows: int = 16
    columns: int = 16
    lanes: int = 16
    pe_width: int = 16
    serial: Serial = Serial.NONE
    encoding: Encoding = Encoding.NONE
    first_stage_bits: int = 2
    group_size: int = 1
    minor_bit: bool = False
    run_ahead: int = 0
    first_layer_space_to_depth: bool = True
    depthwise_mapping: DepthwiseMapping = DepthwiseMapping.DNNSIM
    clock_mhz: float = 1000.0
    sync: Sync = Sync.LOCKSTEP
    serial_bits: int = 1
    dynamic_weights: bool = False
    backend: Backend = Backend.PRAGMATIC
    lookahead: int = 2
    lookaside: int = 5
    search_shape: SearchShape = SearchShape.T
    promotion: Promotion = Promotion.LEAST_FLEXIBLE
    kept_columns: int = 16
    shared_terms: int = 3
    skip_zero_weights: bool = False
    fusion_rows: int = 16
    fusion_columns: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name ({self.name!r}) must be a non-empty string")
        set_ = object.__setattr__
        set_(self, "design", _enum_field("design", Design, self.design))
        set_(self, "serial", _enum_field("serial", Serial, self.serial))
        set_(self, "encoding", _enum_field("encoding", Encoding, self.encoding))
        set_(self, "depthwise_mapping", _enum_field("depthwise_mapping", DepthwiseMapping, self.depthwise_mapping))
        set_(self, "sync", _enum_field("sync", Sync, self.sync))
        set_(self, "backend", _enum_field("backend", Backend, self.backend))
        set_(self, "search_shape", _enum_field("search_shape", SearchShape, self.search_shape))
        set_(self, "promotion", _enum_field("promotion", Promotion, self.promotion))
        if self.design == Design.TACTICAL:  # the back end implies the serial operand
            set_(self, "serial", Serial.NONE if self.backend == Backend.DADIANNAO else Serial.ACTIVATION)
        for knob in ("tiles", "rows", "columns", "lanes"):
            _int_field(knob, getattr(self, knob), 1, 4096)
        _int_field("pe_width", self.pe_width, 1, 16)
        _int_field("first_stage_bits", self.first_stage_bits, 0, 4)
        _int_field("group_size", self.group_size, 1)
        _int_field("run_ahead", self.run_ahead, 0, 64)
        if self.serial_bits not in (1, 2, 4) or isinstance(self.serial_bits, bool):
            raise ConfigError(f"serial_bits ({self.serial_bits!r}) must be 1, 2 or 4")
        _int_field("lookahead", self.lookahead, 0, 16)
        _int_field("lookaside", self.lookaside, 0, 16)
        _int_field("kept_columns", self.kept_columns, 1, 32)
        _int_field("shared_terms", self.shared_terms, 1, 16)
        _int_field("fusion_rows", self.fusion_rows, 1, 4096)
        _int_field("fusion_columns", self.fusion_columns, 1, 4096)
        for knob in ("minor_bit", "first_layer_space_to_depth", "dynamic_weights", "skip_zero_weights"):
            if not isinstance(getattr(self, knob), bool):
                raise ConfigError(f"{knob} ({getattr(self, knob)!r}) must be true or false")
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float)) or self.clock_mhz <= 0:
            raise ConfigError(f"clock_mhz ({self.clock_mhz!r}) must be a positive number")
        serials, encodings = DESIGN_RULES[self.design]
        if self.serial not in serials:
            raise ConfigError(
                f"serial ({self.serial}) is not supported by {self.design}; choose {', '.join(serials)}"
            )
        if self.encoding not in encodings:
            raise ConfigError(
                f"encoding ({self.encoding}) is not supported by {self.design}; choose {', '.join(encodings)}"
            )
        if self.serial == Serial.BOTH:
            for knob, default in (("run_ahead", 0), ("group_size", 1)):
                if getattr(self, knob) != default:
                    raise ConfigError(f"{knob} ({getattr(self, knob)}) must be {default} for {self.design}: both "
                                      f"operands are serial, synchronization is set by 'sync'")
        elif self.sync != Sync.LOCKSTEP:
            raise ConfigError(f"sync ({self.sync}) applies to designs with both operands serial; "
                              f"{self.design} synchronizes with run_ahead")
        unit_name = GROUP_AXIS.get(self.design, "rows" if self.serial == Serial.WEIGHT else "columns")
        units = getattr(self, unit_name)
        if units % self.group_size:
            raise ConfigError(f"{unit_name} ({units}) must be a multiple of group_size ({self.group_size})")

    @property
    def unit_group(self) -> int:
        """Columns (or rows) per synchronization unit: group_size, unless group_size groups lanes."""
        return 1 if GROUP_AXIS.get(self.design) == "lanes" else self.group_size

    @property
    def pes(self) -> int:
        return self.tiles * self.rows * self.columns

    @property
    def chip_lanes(self) -> int:
        """Multiply lanes on the chip (MACs per cycle of the bit-parallel baseline)."""
        return self.pes * self.lanes

    def replace(self, **overrides: Any) -> ArchConfig:
        """A validated copy with some knobs changed (unknown knob names raise ConfigError)."""
        unknown = sorted(set(overrides) - set(KNOBS) - {"name"})
        if unknown:
            raise ConfigError(f"unknown knob(s) {', '.join(unknown)}; known knobs: {', '.join(KNOBS)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (v.value if isinstance(v, enum.Enum) else v) for f in dataclasses.fields(self)
                for v in [getattr(self, f.name)]}

    def config_hash(self) -> str:
        """12 hex digits identifying every knob except the name."""
        d = self.to_dict()
        d.pop("name")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


KNOBS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ArchConfig) if f.name != "name")


def preset_dirs() -> list[Path]:
    """Where presets are looked up: $BITSERIAL_ARCH_DIR, the source tree, then the installed data dir."""
    dirs = []
    if os.environ.get("BITSERIAL_ARCH_DIR"):
        dirs.append(Path(os.environ["BITSERIAL_ARCH_DIR"]))
    dirs.append(Path(__file__).resolve().parent.parent / "arch_configs")
    dirs.append(Path(sys.prefix) / "share" / "bitserial-sim" / "arch_configs")
    return dirs


def preset_names() -> list[str]:
    names: set[str] = set()
    for d in preset_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def parse_knob_value(knob: str, text: str) -> Any:
    """Convert a command-line ``knob=value`` string to the knob's type (YAML scalar rules)."""
    if knob not in KNOBS:
        raise ConfigError(f"unknown knob {knob!r}; known knobs: {', '.join(KNOBS)}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def arch_from_dict(data: Any, source: str = "<dict>") -> ArchConfig:
    """Build an ArchConfig from a mapping, with errors naming the source and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: an architecture must be a mapping of knob: value")
    unknown = sorted(set(data) - set(KNOBS) - {"name", "description"})
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(map(str, unknown))}; known: {', '.join(KNOBS)}")
    if "design" not in data:
        raise ConfigError(f"{source}: field 'design' is required")
    fields = {k: v for k, v in data.items() if k != "description"}
    fields.setdefault("name", Path(source).stem)
    try:
        return ArchConfig(**fields)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_arch(name_or_path: str | os.PathLike | ArchConfig, **overrides: Any) -> ArchConfig:
    """A preset by name (``"pragmatic"``) or a YAML file path, with knob overrides applied."""
    if isinstance(name_or_path, ArchConfig):
        arch = name_or_path
    else:
        text = str(name_or_path)
        path = Path(text)
        if not (path.suffix in (".yaml", ".yml") or path.exists()):
            for d in preset_dirs():
                if (d / f"{text}.yaml").is_file():
                    path = d / f"{text}.yaml"
                    break
            else:
                raise ConfigError(f"unknown architecture {text!r}; presets: {', '.join(preset_names())}")
        if not path.is_file():
            raise ConfigError(f"{path}: no such architecture file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise ConfigError(f"{path}: invalid YAML{where}") from None
        arch = arch_from_dict(data, str(path))
    if overrides:
        try:
            arch = arch.replace(**overrides)
        except ConfigError as exc:
            raise ConfigError(f"{arch.name}: {exc}") from None
    return arch
