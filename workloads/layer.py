"""One layer of one input sample: the integers the hardware multiplies (docs/design.md §2)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class WorkloadError(ValueError):
    """A layer or workload that does not describe a valid computation."""


class LayerKind(enum.StrEnum):
    CONV = "conv"  # activations (C, H, W), weights (K, C/groups, R, S)
    FC = "fc"  # activations (C,), weights (K, C)
    GEMM = "gemm"  # activations (T, C) tokens, weights (K, C); a 1x1 conv over tokens


class WeightFormat(enum.StrEnum):
    INT = "int"  # integer weights (zero points removed): the default
    FP32 = "fp32"  # IEEE float32 weights (finite); activations stay integers. Only BitX models them.


MAX_BITS = 16


def _value_range(bits: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _as_int_array(name: str, what: str, array: Any) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise WorkloadError(f"layer {name!r}: {what} must be integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise WorkloadError(f"layer {name!r}: {what} contain NaN or infinite values")
        rounded = np.rint(arr)
        bad = np.flatnonzero(rounded != arr)
        if bad.size:
            raise WorkloadError(
                f"layer {name!r}: {what} must hold integers, value {arr.flat[bad[0]]!r} at flat index {bad[0]} is not"
            )
        arr = rounded
    if arr.size and (arr.max() > np.iinfo(np.int32).max or arr.min() < np.iinfo(np.int32).min):
        raise WorkloadError(f"layer {name!r}: {what} exceed the 32-bit integer range")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _as_fp32_array(name: str, array: Any) -> np.ndarray:
    """Float32 weights: any real array whose values float32 holds exactly (no silent rounding), finite."""
    arr = np.asarray(array)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise WorkloadError(f"layer {name!r}: fp32 weights must be real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr))
        raise WorkloadError(
            f"layer {name!r}: fp32 weights must be finite, value {arr.flat[bad[0]]!r} at flat index {bad[0]} is not"
        )
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype != np.float32:
        inexact = np.flatnonzero(~np.isfinite(out) | (out.astype(np.float64) != arr.astype(np.float64)))
        if inexact.size:
            raise WorkloadError(
                f"layer {name!r}: fp32 weight {arr.flat[inexact[0]]!r} at flat index {inexact[0]} is not exactly "
                f"representable in float32 (convert with .astype(np.float32) first if rounding is intended)"
            )
    return out


def _int_field(name: str, what: str, value: Any) -> int:
    """``value`` as a plain Python int: ints and numpy integer scalars only (no bools, floats or strings)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise WorkloadError(f"layer {name!r}: {what} ({value!r}) must be an integer, got {type(value).__name__}")
    return int(value)


def _bool_field(name: str, what: str, value: Any) -> bool:
    """``value`` as a plain Python bool: bools and numpy bools only (0 / 1 / "yes" are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise WorkloadError(f"layer {name!r}: {what} ({value!r}) must be a bool, got {type(value).__name__}")
    return bool(value)


def _check_bits(name: str, what: str, arr: np.ndarray, bits: int, signed: bool) -> None:
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
        raise WorkloadError(f"layer {name!r}: {what}_bits ({bits!r}) must be an integer in 1..{MAX_BITS}")
    if signed and bits < 2:
        raise WorkloadError(f"layer {name!r}: signed {what} need at least 2 bits, got {what}_bits={bits}")
    if arr.size == 0:
        return
    lo, hi = _value_range(int(bits), signed)
    vmin, vmax = int(arr.min()), int(arr.max())
    if vmin < lo or vmax > hi:
        bad = vmin if vmin < lo else vmax
        kind = "signed" if signed else "unsigned"
        raise WorkloadError(
            f"layer {name!r}: {what} value {bad} is outside the declared {bits}-bit {kind} range [{lo}, {hi}]"
        )


def _padding4(name: str, padding: Any) -> tuple[int, int, int, int]:
    """An int (all four sides) or a sequence (top, bottom, left, right) of ints, as four plain ints."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, (bool, np.bool_)):
        pads = (int(padding),) * 4
    elif isinstance(padding, (tuple, list, np.ndarray)) and np.ndim(padding) == 1 and len(padding) == 4:
        for p in padding:
            if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)):
                raise WorkloadError(f"layer {name!r}: padding ({_plain(padding)!r}) must hold integers, "
                                    f"got {p!r} ({type(p).__name__})")
        pads = tuple(int(p) for p in padding)
    else:
        raise WorkloadError(f"layer {name!r}: padding ({_plain(padding)!r}) must be an int or "
                            f"(top, bottom, left, right) ints")
    if min(pads) < 0:
        raise WorkloadError(f"layer {name!r}: padding ({_plain(padding)!r}) must not be negative")
    return pads  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    """Arrays as lists in messages."""
    return value.tolist() if isinstance(value, np.ndarray) else value


@dataclass(frozen=True, eq=False)
class Layer:
    """One conv / depthwise / fc / GEMM layer of one input sample.

    ``activations`` and ``weights`` are int32 arrays of the integers the hardware multiplies
    (zero points removed), so that ``accumulator = sum(a * w)`` exactly. Build layers with
    :meth:`conv`, :meth:`fc` or :meth:`gemm`, which validate their inputs.

    ``weight_format="fp32"`` makes a float32-weight layer: ``weights`` is a float32 array (finite), the
    activations stay integers, ``weight_bits`` is not used for the values (only ``weight_signed`` is
    checked), and :func:`workloads.layer_output` returns the exact sums rounded once to float64.
    """

    name: str
    kind: LayerKind
    activations: np.ndarray
    weights: np.ndarray
    stride: int = 1
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    act_bits: int = 16
    weight_bits: int = 16
    act_signed: bool = False
    weight_signed: bool = True
    meta: dict = field(default_factory=dict)
    weight_format: WeightFormat = WeightFormat.INT

    # ----------------------------------------------------------------- constructors
    @classmethod
    def conv(
        cls,
        name: str,
        activations: Any,
        weights: Any,
        *,
        stride: int = 1,
        padding: int | tuple[int, int, int, int] = 0,
        groups: int = 1,
        act_bits: int = 16,
        weight_bits: int = 16,
        act_signed: bool | None = None,
        weight_signed: bool = True,
        meta: dict | None = None,
        weight_format: str = "int",
    ) -> Layer:
        """A convolution: activations (C, H, W), weights (K, C/groups, R, S); groups = C is depthwise."""
        return cls._build(
            name, LayerKind.CONV, activations, weights, stride, padding, groups,
            act_bits, weight_bits, act_signed, weight_signed, meta, weight_format,
        )

    @classmethod
    def fc(
        cls,
        name: str,
        activations: Any,
        weights: Any,
        *,
        act_bits: int = 16,
        weight_bits: int = 16,
        act_signed: bool | None = None,
        weight_signed: bool = True,
        meta: dict | None = None,
        weight_format: str = "int",
    ) -> Layer:
        """A fully connected layer: activations (C,), weights (K, C)."""
        return cls._build(
            name, LayerKind.FC, activations, weights, 1, 0, 1, act_bits, weight_bits, act_signed, weight_signed, meta,
            weight_format,
        )

    @classmethod
    def gemm(
        cls,
        name: str,
        activations: Any,
        weights: Any,
        *,
        act_bits: int = 16,
        weight_bits: int = 16,
        act_signed: bool | None = None,
        weight_signed: bool = True,
        meta: dict | None = None,
        weight_format: str = "int",
    ) -> Layer:
        """A GEMM over T tokens: activations (T, C), weights (K, C); output (T, K)."""
        return cls._build(
            name, LayerKind.GEMM, activations, weights, 1, 0, 1, act_bits, weight_bits, act_signed, weight_signed, meta,
            weight_format,
        )

    @classmethod
    def _build(
        cls, name, kind, activations, weights, stride, padding, groups,
        act_bits, weight_bits, act_signed, weight_signed, meta, weight_format="int",
    ) -> Layer:
        if not isinstance(name, str) or not name:
            raise WorkloadError(f"layer name must be a non-empty string, got {name!r}")
        try:
            kind = LayerKind(kind)
        except ValueError:
            raise WorkloadError(
                f"layer {name!r}: unknown kind {kind!r} (expected one of {[k.value for k in LayerKind]})"
            ) from None
        try:
            weight_format = WeightFormat(weight_format)
        except ValueError:
            raise WorkloadError(
                f"layer {name!r}: unknown weight_format {weight_format!r} "
                f"(expected one of {[f.value for f in WeightFormat]})"
            ) from None
        acts = _as_int_array(name, "activations", activations)
        if weight_format == WeightFormat.FP32:
            wgts = _as_fp32_array(name, weights)
        else:
            wgts = _as_int_array(name, "weights", weights)
        if act_signed is None:
            act_signed = bool(acts.size and acts.min() < 0)
        if meta is not None and not isinstance(meta, dict):
            raise WorkloadError(f"layer {name!r}: meta must be a dict, got {type(meta).__name__}")
        for what, bits in (("act_bits", act_bits), ("weight_bits", weight_bits)):
            if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
                raise WorkloadError(f"layer {name!r}: {what} ({bits!r}) must be an integer in 1..{MAX_BITS}, "
                                    f"got {type(bits).__name__}")
        layer = cls(
            name=name, kind=kind, activations=acts, weights=wgts, stride=_int_field(name, "stride", stride),
            padding=_padding4(name, padding), groups=_int_field(name, "groups", groups), act_bits=int(act_bits),
            weight_bits=int(weight_bits), act_signed=_bool_field(name, "act_signed", act_signed),
            weight_signed=_bool_field(name, "weight_signed", weight_signed), meta=dict(meta or {}),
            weight_format=weight_format,
        )
        layer.validate()
        return layer

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise WorkloadError naming the layer, the field and the value if the layer is inconsistent."""
        n = self.name
        a, w = self.activations, self.weights
        if a.size == 0 or w.size == 0:
            raise WorkloadError(f"layer {n!r}: empty activations {a.shape} or weights {w.shape}")
        if self.kind == LayerKind.CONV:
            if a.ndim != 3:
                raise WorkloadError(f"layer {n!r}: conv activations must be (C, H, W), got shape {a.shape}")
            if w.ndim != 4:
                raise WorkloadError(f"layer {n!r}: conv weights must be (K, C/groups, R, S), got shape {w.shape}")
            c, h, wd = a.shape
            k, cg, r, s = w.shape
            g = self.groups
            if g < 1 or c % g or k % g:
                raise WorkloadError(f"layer {n!r}: groups ({g}) must divide channels ({c}) and filters ({k})")
            if cg * g != c:
                raise WorkloadError(
                    f"layer {n!r}: weights have {cg} channels per group but activations have {c} channels "
                    f"in {g} group(s) (expected {c // g})"
                )
            if self.stride < 1:
                raise WorkloadError(f"layer {n!r}: stride ({self.stride}) must be >= 1")
            pt, pb, pl, pr = self.padding
            if h + pt + pb < r or wd + pl + pr < s:
                raise WorkloadError(
                    f"layer {n!r}: kernel {r}x{s} is larger than the padded input {h + pt + pb}x{wd + pl + pr}"
                )
        else:
            want_a = 1 if self.kind == LayerKind.FC else 2
            if a.ndim != want_a:
                shape = "(C,)" if want_a == 1 else "(T, C)"
                raise WorkloadError(f"layer {n!r}: {self.kind} activations must be {shape}, got shape {a.shape}")
            if w.ndim != 2:
                raise WorkloadError(f"layer {n!r}: {self.kind} weights must be (K, C), got shape {w.shape}")
            if w.shape[1] != a.shape[-1]:
                raise WorkloadError(
                    f"layer {n!r}: weights have {w.shape[1]} input channels but activations have {a.shape[-1]}"
                )
            if self.stride != 1 or self.groups != 1 or any(self.padding):
                raise WorkloadError(f"layer {n!r}: {self.kind} layers take no stride, padding or groups")
        _check_bits(n, "act", a, self.act_bits, self.act_signed)
        if self.weight_format == WeightFormat.FP32:
            if w.dtype != np.float32 or not np.all(np.isfinite(w)):
                raise WorkloadError(f"layer {n!r}: fp32 weights must be a finite float32 array, got dtype {w.dtype}")
            _check_bits(n, "weight", np.zeros(0, np.int32), self.weight_bits, self.weight_signed)
            if not self.weight_signed and np.any(w < 0):
                raise WorkloadError(f"layer {n!r}: fp32 weight {float(w.min())!r} is negative but weight_signed=False")
        else:
            _check_bits(n, "weight", w, self.weight_bits, self.weight_signed)

    # ----------------------------------------------------------------- derived shape facts
    @property
    def in_channels(self) -> int:
        return int(self.activations.shape[0] if self.kind == LayerKind.CONV else self.activations.shape[-1])

    @property
    def out_channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def is_depthwise(self) -> bool:
        """A grouped conv with one channel and one filter per group (channel multiplier 1)."""
        return self.kind == LayerKind.CONV and self.groups > 1 and self.groups == self.in_channels == self.out_channels

    @property
    def output_hw(self) -> tuple[int, int]:
        """Output (height, width) in windows; (1, 1) for fc, (T, 1) for GEMM."""
        if self.kind == LayerKind.FC:
            return 1, 1
        if self.kind == LayerKind.GEMM:
            return int(self.activations.shape[0]), 1
        _, h, w = self.activations.shape
        _, _, r, s = self.weights.shape
        pt, pb, pl, pr = self.padding
        return (h + pt + pb - r) // self.stride + 1, (w + pl + pr - s) // self.stride + 1

    @property
    def output_shape(self) -> tuple[int, ...]:
        """(K, OH, OW) for conv, (K,) for fc, (T, K) for GEMM."""
        if self.kind == LayerKind.FC:
            return (self.out_channels,)
        if self.kind == LayerKind.GEMM:
            return (int(self.activations.shape[0]), self.out_channels)
        return (self.out_channels, *self.output_hw)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer (one sample)."""
        oh, ow = self.output_hw
        return int(self.weights.size) * oh * ow

    def with_values(self, *, activations: Any = None, weights: Any = None, **fields: Any) -> Layer:
        """A validated copy with new tensors and/or fields (e.g. ``act_bits``)."""
        kw = {
            "stride": self.stride, "padding": self.padding, "groups": self.groups, "act_bits": self.act_bits,
            "weight_bits": self.weight_bits, "act_signed": self.act_signed, "weight_signed": self.weight_signed,
            "meta": self.meta, "weight_format": self.weight_format,
        }
        name = fields.pop("name", self.name)
        kw.update(fields)
        return Layer._build(
            name, self.kind,
            self.activations if activations is None else activations,
            self.weights if weights is None else weights,
            kw["stride"], kw["padding"], kw["groups"], kw["act_bits"], kw["weight_bits"],
            kw["act_signed"], kw["weight_signed"], kw["meta"], kw["weight_format"],
        )
