"""Architecture configuration: a design plus the knobs it declares; frozen, typed, validated; loaded from YAML.

``load_arch("pragmatic")`` reads a preset from ``arch_configs/``; ``load_arch("my.yaml")`` a file of the same
form (``design:`` plus any knobs of that design; the design's defaults fill the rest, so ``design: pragmatic``
alone is a valid file). Knobs are declared by the designs (``simulator/designs/<design>.py``): a knob the design
does not have is refused, and the config hash covers exactly the design's knobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .knobs import (
    DESIGNS,
    ENGINE_NEUTRAL,
    MACHINE,
    Backend,
    ConfigError,
    DepthwiseMapping,
    Design,
    DesignSpec,
    Encoding,
    Knob,
    Promotion,
    SearchShape,
    Serial,
    Sync,
    plain,
)
from .technology import tabulated_nodes

__all__ = ["KNOBS", "ArchConfig", "Backend", "ConfigError", "DepthwiseMapping", "Design", "Encoding", "Knob",
           "Promotion", "SearchShape", "Serial", "Sync", "design_knobs", "load_arch", "preset_names"]


def _model(design: Design) -> DesignSpec:
    try:
        return DESIGNS[design]
    except KeyError:
        raise ConfigError(f"design {design} has no model (simulator.designs defines them)") from None


def design_knobs(design: Design | str) -> dict[str, Knob]:
    """Every knob of ``design`` (machine knobs first, then the design's own), with the design's defaults."""
    design = _design(design)
    model = _model(design)
    knobs = {k.name: k.but(default=model.machine.get(k.name, k.default), help=model.machine_help.get(k.name, k.help))
             for k in MACHINE}
    knobs.update((k.name, k) for k in model.knobs)
    return knobs


def _design(value: Any) -> Design:
    try:
        return Design(value)
    except ValueError:
        raise ConfigError(f"design ({value!r}) must be one of: {', '.join(d.value for d in Design)}") from None


class _AllKnobs(Mapping):
    """Every knob name of every design (the first declaration of each), read when asked (designs register as their
    modules are imported)."""

    def _table(self) -> dict[str, Knob]:
        out: dict[str, Knob] = {k.name: k for k in MACHINE}
        for model in DESIGNS.values():
            for k in model.knobs:
                out.setdefault(k.name, k)
        return out

    def __getitem__(self, name: str) -> Knob:
        return self._table()[name]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


KNOBS: Mapping[str, Knob] = _AllKnobs()

@dataclass(frozen=True, eq=False)
class ArchConfig:
    """One accelerator instance: a design and the values of its knobs (defaults filled, every value checked).

    Knob values read as attributes (``arch.first_stage_bits``); reading a knob the design does not have raises
    AttributeError. ``serial``, ``run_ahead``, ``group_size`` and ``sync`` read for every design (the engines
    need them): a design without the knob gets its neutral value (no registers, one unit per group,
    lockstep).
    """

    name: str
    design: Design
    knobs: Mapping[str, Any]

    def __init__(self, name: str, design: Design | str, knobs: Mapping[str, Any] | None = None, **more: Any):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name ({name!r}) must be a non-empty string")
        design = _design(design)
        given = {**(knobs or {}), **more}
        declared = design_knobs(design)
        unknown = [k for k in given if k not in declared]
        if unknown:
            raise ConfigError(_unknown_knob_message(design, unknown, declared))
        values = {k: knob.check(given[k]) if k in given else knob.default for k, knob in declared.items()}
        model = _model(design)
        model.check(values)
        if values["tech_node_nm"] not in tabulated_nodes():
            raise ConfigError(f"tech_node_nm ({values['tech_node_nm']}) must be a tabulated node: "
                              f"{', '.join(map(str, tabulated_nodes()))} (nodes are not interpolated)")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "design", design)
        object.__setattr__(self, "knobs", _Frozen(values))

    def __getattr__(self, name: str) -> Any:
        knobs = self.__dict__.get("knobs")
        if knobs is not None:
            if name in knobs:
                return knobs[name]
            if name in ENGINE_NEUTRAL:
                return ENGINE_NEUTRAL[name]
            if name in KNOBS:
                raise AttributeError(f"{self.design} has no knob {name!r}")
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ArchConfig) and (self.name, self.design) == (other.name, other.design)
                and dict(self.knobs) == dict(other.knobs))

    def __hash__(self) -> int:
        return hash((self.name, self.design, tuple(sorted((k, plain(v)) for k, v in self.knobs.items()))))

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={plain(v)!r}" for k, v in self.knobs.items())
        return f"ArchConfig({self.name!r}, {self.design.value!r}, {knobs})"

    def __reduce__(self):
        return ArchConfig, (self.name, self.design, dict(self.knobs))

    # ----------------------------------------------------------------- derived facts the engines use
    @property
    def model(self):
        """The design's model (a ``simulator.designs.DesignModel``: its knobs and cost rules)."""
        return _model(self.design)

    @property
    def serial(self) -> Serial:
        """The operand processed term by term (Bit-Tactical: implied by its back end)."""
        return self.model.serial(self.knobs)

    @property
    def unit_group(self) -> int:
        """Columns (or rows) per synchronization unit: ``group_size``, unless the design groups lanes with it."""
        return 1 if self.model.group_axis == "lanes" else self.group_size

    @property
    def pes(self) -> int:
        return self.tiles * self.rows * self.columns

    @property
    def chip_lanes(self) -> int:
        """Multiply lanes on the chip (MACs per cycle of the bit-parallel baseline)."""
        return self.pes * self.lanes

    # ----------------------------------------------------------------- copies, dicts, hash
    def replace(self, **overrides: Any) -> ArchConfig:
        """A validated copy with some knobs changed (a knob the design lacks raises ConfigError)."""
        name = overrides.pop("name", self.name)
        if "design" in overrides and _design(overrides["design"]) != self.design:
            raise ConfigError(f"design cannot change in replace ({self.design} -> {overrides['design']}); "
                              f"load the other design's preset instead")
        overrides.pop("design", None)
        return ArchConfig(name, self.design, {**self.knobs, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """name, design and every knob, as plain data (what a YAML file of this config would hold)."""
        return {"name": self.name, "design": self.design.value, **{k: plain(v) for k, v in self.knobs.items()}}

    def config_hash(self) -> str:
        """12 hex digits identifying the design and its knobs (not the name)."""
        d = self.to_dict()
        d.pop("name")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


class _Frozen(dict):
    """A read-only dict (the knob values of a frozen config)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("an ArchConfig's knobs are read-only; use ArchConfig.replace")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse  # type: ignore[assignment]

    def __reduce__(self):
        return dict, (dict(self),)


def _unknown_knob_message(design: Design, unknown: list[str], declared: dict[str, Knob]) -> str:
    parts = []
    for k in unknown:
        owners = [d.value for d, m in DESIGNS.items() if any(kn.name == k for kn in m.knobs)]
        if owners:
            parts.append(f"{design} has no knob {k!r} (a knob of {', '.join(owners)})")
        else:
            parts.append(f"unknown knob {k!r}")
    return "; ".join(parts) + f"; {design}'s knobs: {', '.join(declared)}"


# ----------------------------------------------------------------------------- presets and YAML files
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


def preset_path(name: str) -> Path | None:
    """The YAML file of preset ``name`` where load_arch finds it, or None."""
    for d in preset_dirs():
        if (d / f"{name}.yaml").is_file():
            return d / f"{name}.yaml"
    return None


def parse_knob_value(knob: str, text: str) -> Any:
    """Convert a command-line ``knob=value`` string to a value (YAML scalar rules; checked by the design)."""
    if knob not in KNOBS and knob != "name":
        raise ConfigError(f"unknown knob {knob!r}; knobs: {', '.join(KNOBS)}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last silently)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: Path) -> Any:
    """A YAML file's data; ConfigError naming the file and line for bad syntax or a duplicate key."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or ""
        detail = f": {problem}" if problem.startswith("duplicate key") else ""
        raise ConfigError(f"{path}: invalid YAML{where}{detail}") from None


def arch_from_dict(data: Any, source: str = "<dict>") -> ArchConfig:
    """Build an ArchConfig from a mapping (``design``, optional ``name`` / ``description``, knobs), with errors
    naming the source and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: an architecture must be a mapping of knob: value")
    if "design" not in data:
        raise ConfigError(f"{source}: field 'design' is required")
    knobs = {k: v for k, v in data.items() if k not in ("name", "description", "design")}
    bad_keys = [k for k in knobs if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{source}: field names must be strings, got {bad_keys[0]!r}")
    name = data.get("name", Path(source).stem)
    try:
        return ArchConfig(name, data["design"], knobs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_arch(name_or_path: str | os.PathLike | ArchConfig, **overrides: Any) -> ArchConfig:
    """A preset by name (``"pragmatic"``) or a YAML file path, with knob overrides applied."""
    if isinstance(name_or_path, ArchConfig):
        arch = name_or_path
    elif not isinstance(name_or_path, (str, os.PathLike)):
        raise ConfigError(f"an architecture is a preset name, a YAML path or an ArchConfig, not "
                          f"{type(name_or_path).__name__} {name_or_path!r}")
    else:
        text = str(name_or_path)
        path = Path(text)
        if not (path.suffix in (".yaml", ".yml") or path.exists()):
            found = preset_path(text)
            if found is None:
                raise ConfigError(f"unknown architecture {text!r}; presets: {', '.join(preset_names())}")
            path = found
        if not path.is_file():
            raise ConfigError(f"{path}: no such architecture file")
        arch = arch_from_dict(read_yaml(path), str(path))
    if overrides:
        try:
            arch = arch.replace(**overrides)
        except ConfigError as exc:
            raise ConfigError(f"{arch.name}: {exc}") from None
    return arch
