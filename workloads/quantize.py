"""Fixed-point quantizers for imported models (numpy only; the PyTorch importer applies them).

Two kinds of tensor format (:class:`TensorFormat`):

* **dynamic fixed point** (``kind="dfp"``, Stripes / Pragmatic, Ristretto): ``bits`` total bits (including the
  sign bit when signed) with ``frac_bits`` fraction bits, i.e. the power-of-two scale ``2**-frac_bits``. For a
  tensor whose largest magnitude is ``M`` the default split is the most fractional one that does not saturate:
  ``frac_bits = floor(log2(qmax / M))`` (``qmax = 2**(bits-1) - 1`` signed, ``2**bits - 1`` unsigned), so
  ``M * 2**frac_bits <= qmax``. More fraction bits (``frac_bits + s``) saturate the top ``s`` MSBs.
* **linear** (``kind="linear"``): a real scale per tensor or per output channel, symmetric (zero point 0),
  ``scale = M / qmax`` (int8 per-channel weights use ``qmax = 127``, range [-127, 127]).

Quantization: ``q = clip(round_half_even(x / scale), lo, hi)``; the real value is ``q * scale``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCHEMES = ("dfp8", "dfp16", "int8_per_channel")


def qrange(bits: int, signed: bool, *, symmetric: bool = False) -> tuple[int, int]:
    """The integer range of a ``bits``-bit value: two's complement when signed ([-127, 127] if symmetric)."""
    if bits < (2 if signed else 1):
        raise ValueError(f"{'signed' if signed else 'unsigned'} values need at least {2 if signed else 1} bits")
    if signed:
        hi = (1 << (bits - 1)) - 1
        return (-hi if symmetric else -hi - 1), hi
    return 0, (1 << bits) - 1


def dfp_frac_bits(max_abs: float, bits: int, signed: bool) -> int:
    """The most fraction bits such that ``max_abs * 2**frac <= qmax`` (no saturation); ``bits - 1`` for zeros."""
    qmax = qrange(bits, signed)[1]
    m = float(max_abs)
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"max magnitude must be finite and >= 0, got {max_abs!r}")
    if m == 0.0:
        return bits - 1
    frac = math.floor(math.log2(qmax / m))
    while math.ldexp(m, frac) > qmax:  # guard log2 rounding
        frac -= 1
    while math.ldexp(m, frac + 1) <= qmax:
        frac += 1
    return frac


@dataclass(frozen=True)
class TensorFormat:
    """How one tensor is quantized: ``bits``, ``signed``, and a scale (power of two for dfp; per-tensor or
    per-channel (axis 0) for linear)."""

    kind: str  # "dfp" | "linear"
    bits: int
    signed: bool
    frac_bits: int | None = None  # dfp: scale = 2**-frac_bits
    scales: tuple[float, ...] | None = None  # linear: one scale, or one per output channel
    symmetric: bool = False  # linear signed: [-qmax, qmax]

    def __post_init__(self):
        qrange(self.bits, self.signed)
        if self.kind == "dfp":
            if self.frac_bits is None:
                raise ValueError("a dfp format needs frac_bits")
        elif self.kind == "linear":
            if not self.scales or not all(math.isfinite(s) and s > 0 for s in self.scales):
                raise ValueError(f"a linear format needs positive finite scales, got {self.scales!r}")
        else:
            raise ValueError(f"unknown format kind {self.kind!r}")

    @property
    def range(self) -> tuple[int, int]:
        return qrange(self.bits, self.signed, symmetric=self.symmetric)

    @property
    def per_channel(self) -> bool:
        return self.kind == "linear" and len(self.scales) > 1

    def scale_array(self, ndim: int = 1) -> np.ndarray:
        """The scale as float64, shaped to broadcast along axis 0 of an ``ndim``-dimensional tensor."""
        if self.kind == "dfp":
            return np.array(math.ldexp(1.0, -self.frac_bits))
        s = np.asarray(self.scales, dtype=np.float64)
        return s.reshape((-1,) + (1,) * (ndim - 1)) if s.size > 1 else s.reshape(())

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values -> int64 integers (round half to even, saturate)."""
        x = np.asarray(x, dtype=np.float64)
        lo, hi = self.range
        return np.clip(np.rint(x / self.scale_array(x.ndim)), lo, hi).astype(np.int64)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q)
        return q.astype(np.float64) * self.scale_array(q.ndim)

    def to_meta(self) -> dict:
        """JSON-serialisable description (``scale`` is a float or a list of per-channel floats)."""
        d: dict = {"kind": self.kind, "bits": self.bits, "signed": self.signed}
        if self.kind == "dfp":
            d["frac_bits"] = self.frac_bits
            d["scale"] = math.ldexp(1.0, -self.frac_bits)
        else:
            d["scale"] = float(self.scales[0]) if len(self.scales) == 1 else [float(s) for s in self.scales]
            d["symmetric"] = self.symmetric
        return d

    @classmethod
    def from_meta(cls, d: dict) -> TensorFormat:
        if d["kind"] == "dfp":
            return cls("dfp", int(d["bits"]), bool(d["signed"]), frac_bits=int(d["frac_bits"]))
        s = d["scale"]
        scales = tuple(float(v) for v in (s if isinstance(s, list) else [s]))
        return cls("linear", int(d["bits"]), bool(d["signed"]), scales=scales, symmetric=bool(d.get("symmetric")))


def dfp_format(max_abs: float, bits: int, signed: bool, *, saturate_msbs: int = 0) -> TensorFormat:
    """Dynamic fixed point for a tensor of largest magnitude ``max_abs``; ``saturate_msbs`` extra fraction bits."""
    return TensorFormat("dfp", bits, signed, frac_bits=dfp_frac_bits(max_abs, bits, signed) + saturate_msbs)


def linear_format(max_abs, bits: int, signed: bool, *, symmetric: bool = True) -> TensorFormat:
    """Symmetric linear format, ``scale = max_abs / qmax`` (per channel if ``max_abs`` is an array; all-zero
    channels get scale 1)."""
    m = np.atleast_1d(np.asarray(max_abs, dtype=np.float64))
    qmax = qrange(bits, signed, symmetric=symmetric)[1]
    scales = np.where(m > 0, m / qmax, 1.0)
    return TensorFormat("linear", bits, signed, scales=tuple(float(s) for s in scales), symmetric=symmetric)


@dataclass(frozen=True)
class LayerQuant:
    """The formats of one conv / linear layer's input activations and weights. The bias is quantized at the
    accumulator scale ``act_scale * weight_scale[k]`` (a wide integer added to the accumulator)."""

    act: TensorFormat | None
    weight: TensorFormat | None

    def to_meta(self) -> dict:
        return {
            "act": None if self.act is None else self.act.to_meta(),
            "weight": None if self.weight is None else self.weight.to_meta(),
        }

    @classmethod
    def from_meta(cls, meta: dict) -> LayerQuant:
        """The formats recorded by :meth:`to_meta` (e.g. in an imported layer's ``meta``)."""
        act, weight = meta.get("act"), meta.get("weight")
        return cls(None if act is None else TensorFormat.from_meta(act),
                   None if weight is None else TensorFormat.from_meta(weight))


def choose_layer_quant(scheme: str, act_max: float, act_signed: bool, weights: np.ndarray) -> LayerQuant:
    """The formats of ``scheme`` for a layer whose calibration inputs reach ``act_max`` in magnitude (signed
    if any was negative) and whose (BN-folded) weights are ``weights`` (output channels on axis 0).

    ``dfp8`` / ``dfp16``: per-layer dynamic fixed point for both, each split chosen from its max magnitude.
    ``int8_per_channel``: weights symmetric int8 per output channel ([-127, 127], scale max|w_k| / 127);
    activations 8-bit per layer, linear scale max / 255 (unsigned) or max / 127 (signed).
    """
    w = np.asarray(weights, dtype=np.float64)
    if scheme in ("dfp8", "dfp16"):
        bits = int(scheme[3:])
        return LayerQuant(dfp_format(act_max, bits, act_signed), dfp_format(float(np.abs(w).max()), bits, True))
    if scheme == "int8_per_channel":
        per_k = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        return LayerQuant(linear_format(act_max, 8, act_signed), linear_format(per_k, 8, True))
    raise ValueError(f"unknown quantization scheme {scheme!r} (expected one of {SCHEMES})")


def quantize_bias(bias: np.ndarray, quant: LayerQuant) -> np.ndarray:
    """The bias as int64 at the accumulator scale act_scale * weight_scale[k]."""
    acc = accumulator_scale(quant, len(bias))
    return np.rint(np.asarray(bias, dtype=np.float64) / acc).astype(np.int64)


def accumulator_scale(quant: LayerQuant, out_channels: int) -> np.ndarray:
    """Real value of one accumulator unit, per output channel (float64, shape (K,))."""
    sa = quant.act.scale_array(1)
    sw = quant.weight.scale_array(1)
    return np.broadcast_to(sa * sw, (out_channels,)).astype(np.float64)


def requantize_dfp(q: np.ndarray, old_frac: int, new: TensorFormat) -> np.ndarray:
    """Integers at ``2**-old_frac`` re-expressed in the dfp format ``new``: drop LSBs (round half to even) or
    append zero LSBs, then saturate to ``new``'s range. Exact in float64 for |q| < 2**52."""
    if new.kind != "dfp":
        raise ValueError("requantize_dfp needs a dfp target format")
    x = np.ldexp(np.asarray(q, dtype=np.float64), new.frac_bits - old_frac)
    lo, hi = new.range
    return np.clip(np.rint(x), lo, hi).astype(np.int64)


def profile_quants(profile, stats: dict | None = None) -> dict[str, LayerQuant]:
    """A precision profile's formats as ``{layer: LayerQuant}`` (for ``FakeQuant`` / ``import_pytorch(profile=)``).

    ``profile``: a table with rows ``layer, act_bits, weight_bits, act_frac_bits, weight_frac_bits, act_signed``
    (a DataFrame from :func:`workloads.profiling.profile_precisions`, or the committed CSV). ``stats`` is unused
    (kept for callers that pass it)."""
    out = {}
    for row in profile.itertuples(index=False):
        out[row.layer] = LayerQuant(
            TensorFormat("dfp", int(row.act_bits), bool(row.act_signed), frac_bits=int(row.act_frac_bits)),
            TensorFormat("dfp", int(row.weight_bits), True, frac_bits=int(row.weight_frac_bits)),
        )
    return out
