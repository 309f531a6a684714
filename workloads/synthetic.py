"""Seeded synthetic workloads: the real layer shapes of known networks filled with random integers.

Shapes are per single input sample (one image, or one 128-token sequence for BERT). Values are the
integers the hardware multiplies, drawn from a :class:`ValueModel` within each layer's precision (bits).
Generation is deterministic: layer ``i`` draws its activations from ``default_rng([seed, i, 0])`` and its
weights from ``default_rng([seed, i, 1])``, so a layer's values do not depend on ``max_layers``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .layer import MAX_BITS, Layer, LayerKind
from .workload import Workload


class ValueModel(enum.StrEnum):
    """Distribution of the random integers."""

    UNIFORM = "uniform"  # uniform over the full range of the precision
    LAPLACE = "laplace"  # quantized zero-mean Laplace, std = range limit / 3, clipped (|x| if unsigned)
    GAUSSIAN = "gaussian"  # quantized zero-mean Gaussian, std = range limit / 3, clipped (|x| if unsigned)
    RELU = "relu"  # max(0, Gaussian) quantized: about half zeros (weights use GAUSSIAN under this model)


@dataclass(frozen=True)
class LayerShape:
    """One layer's geometry, no values. Sizes in elements; bits per value.

    conv: input (in_channels, height, width); fc: (in_channels, 1, 1); gemm: in_channels features over
    ``height`` tokens (width 1). ``kernel`` is square (R = S), ``padding`` an int or (top, bottom, left, right).
    """

    name: str
    kind: str  # "conv" | "fc" | "gemm"
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel: int = 1
    stride: int = 1
    padding: int | tuple = 0
    groups: int = 1
    act_bits: int = 16
    weight_bits: int = 16

    @property
    def activation_shape(self) -> tuple[int, ...]:
        """(C, H, W) for conv, (C,) for fc, (T, C) for gemm."""
        if self.kind == LayerKind.CONV:
            return (self.in_channels, self.height, self.width)
        if self.kind == LayerKind.FC:
            return (self.in_channels,)
        return (self.height, self.in_channels)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """(K, C/groups, R, S) for conv, (K, C) for fc and gemm."""
        if self.kind == LayerKind.CONV:
            return (self.out_channels, self.in_channels // self.groups, self.kernel, self.kernel)
        return (self.out_channels, self.in_channels)

    @property
    def output_hw(self) -> tuple[int, int]:
        """Output (height, width) in windows; (1, 1) for fc, (T, 1) for gemm."""
        if self.kind == LayerKind.FC:
            return 1, 1
        if self.kind == LayerKind.GEMM:
            return self.height, 1
        pt, pb, pl, pr = (self.padding,) * 4 if isinstance(self.padding, int) else self.padding
        return ((self.height + pt + pb - self.kernel) // self.stride + 1,
                (self.width + pl + pr - self.kernel) // self.stride + 1)

    @property
    def macs(self) -> int:
        """Multiply-accumulates for one sample."""
        oh, ow = self.output_hw
        return math.prod(self.weight_shape) * oh * ow


# ----------------------------------------------------------------------------- network tables
def _conv(name: str, c: int, h: int, k: int, kernel: int, stride: int = 1, padding: int = 0,
          groups: int = 1) -> LayerShape:
    return LayerShape(name, "conv", c, h, h, k, kernel, stride, padding, groups, 8, 8)


def _fc(name: str, c: int, k: int) -> LayerShape:
    return LayerShape(name, "fc", c, 1, 1, k, act_bits=8, weight_bits=8)


def _out(h: int, kernel: int, stride: int, padding: int) -> int:
    return (h + 2 * padding - kernel) // stride + 1


def _alexnet() -> list[LayerShape]:
    convs = [  # name, C, H, K, kernel, stride, padding
        ("conv1", 3, 227, 96, 11, 4, 0),
        ("conv2", 96, 27, 256, 5, 1, 2),
        ("conv3", 256, 13, 384, 3, 1, 1),
        ("conv4", 384, 13, 384, 3, 1, 1),
        ("conv5", 384, 13, 256, 3, 1, 1),
    ]
    shapes = [_conv(*c) for c in convs] + [_fc("fc6", 9216, 4096), _fc("fc7", 4096, 4096), _fc("fc8", 4096, 1000)]
    act_bits = (8, 7, 5, 6, 6, 5, 5, 4)
    weight_bits = (9, 9, 8, 9, 9, 6, 4, 7)
    return [LayerShape(**{**s.__dict__, "act_bits": a, "weight_bits": w})
            for s, a, w in zip(shapes, act_bits, weight_bits, strict=True)]


def _vgg16() -> list[LayerShape]:
    shapes, c, h = [], 3, 224
    for stage, (k, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, n + 1):
            shapes.append(_conv(f"conv{stage}_{i}", c, h, k, 3, 1, 1))
            c = k
        h //= 2  # 2x2/2 max-pool
    return shapes + [_fc("fc6", c * h * h, 4096), _fc("fc7", 4096, 4096), _fc("fc8", 4096, 1000)]


def _resnet50() -> list[LayerShape]:
    shapes = [_conv("conv1", 3, 224, 64, 7, 2, 3)]
    c, h = 64, _out(_out(224, 7, 2, 3), 3, 2, 1)  # 3x3/2 pad-1 max-pool: 112 -> 56
    for stage, (width, blocks, first_stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
        for b in range(blocks):
            s = first_stride if b == 0 else 1
            p = f"layer{stage}.{b}"
            ho = _out(h, 3, s, 1)
            shapes += [
                _conv(f"{p}.conv1", c, h, width, 1),
                _conv(f"{p}.conv2", width, h, width, 3, s, 1),  # v1.5: stride in the 3x3
                _conv(f"{p}.conv3", width, ho, 4 * width, 1),
            ]
            if b == 0:
                shapes.append(_conv(f"{p}.downsample", c, h, 4 * width, 1, s))
            c, h = 4 * width, ho
    return shapes + [_fc("fc", c, 1000)]


def _mobilenet_v2() -> list[LayerShape]:
    shapes = [_conv("conv1", 3, 224, 32, 3, 2, 1)]
    c, h, block = 32, _out(224, 3, 2, 1), 0
    for t, k, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride, hidden, p = (s if i == 0 else 1), c * t, f"block{block}"
            if t != 1:
                shapes.append(_conv(f"{p}.expand", c, h, hidden, 1))
            shapes.append(_conv(f"{p}.dw", hidden, h, hidden, 3, stride, 1, groups=hidden))
            h = _out(h, 3, stride, 1)
            shapes.append(_conv(f"{p}.project", hidden, h, k, 1))
            c, block = k, block + 1
    return shapes + [_conv("conv_last", c, h, 1280, 1), _fc("fc", 1280, 1000)]


def _resnet20() -> list[LayerShape]:
    shapes, c, h = [_conv("conv1", 3, 32, 16, 3, 1, 1)], 16, 32
    for stage, (k, first_stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        for b in range(3):
            s = first_stride if b == 0 else 1
            ho = _out(h, 3, s, 1)
            shapes += [_conv(f"layer{stage}.{b}.conv1", c, h, k, 3, s, 1),
                       _conv(f"layer{stage}.{b}.conv2", k, ho, k, 3, 1, 1)]
            c, h = k, ho
    return shapes + [_fc("fc", c, 10)]


def _bert_base() -> list[LayerShape]:
    tokens, hidden, ffn = 128, 768, 3072
    shapes = []
    for layer in range(12):
        for part, c, k in [("q", hidden, hidden), ("k", hidden, hidden), ("v", hidden, hidden),
                           ("attn_out", hidden, hidden), ("ffn1", hidden, ffn), ("ffn2", ffn, hidden)]:
            shapes.append(LayerShape(f"l{layer}.{part}", "gemm", c, tokens, 1, k, act_bits=8, weight_bits=8))
    return shapes


_NETWORKS: dict[str, Callable[[], list[LayerShape]]] = {
    "alexnet": _alexnet,
    "vgg16": _vgg16,
    "resnet50": _resnet50,
    "mobilenet_v2": _mobilenet_v2,
    "resnet20": _resnet20,
    "bert_base": _bert_base,
}
_SIGNED_ACTIVATIONS = frozenset({"bert_base"})
_CHUNK = 1 << 22  # elements per chunk when drawing continuous models (bounds float32 temporaries to 16 MiB)


def names() -> list[str]:
    """The built-in synthetic network names."""
    return list(_NETWORKS)


def network_shapes(name: str) -> list[LayerShape]:
    """The layer shapes (with default per-layer precision) of network ``name``; ValueError if unknown."""
    if name not in _NETWORKS:
        raise ValueError(f"unknown synthetic network {name!r}; known networks: {', '.join(_NETWORKS)}")
    return _NETWORKS[name]()


# ----------------------------------------------------------------------------- values
def _value_model(model: str | ValueModel) -> ValueModel:
    try:
        return ValueModel(model)
    except ValueError:
        raise ValueError(
            f"unknown value model {model!r}; valid value models: {', '.join(m.value for m in ValueModel)}"
        ) from None


def _check_zero_fraction(zero_fraction: float) -> float:
    number = isinstance(zero_fraction, (int, float, np.floating, np.integer)) and not isinstance(zero_fraction, bool)
    if not number or not 0.0 <= float(zero_fraction) <= 1.0:  # also rejects NaN
        raise ValueError(f"zero_fraction must be a number in [0, 1], got {zero_fraction!r}")
    return float(zero_fraction)


def _check_bits(what: str, bits: int, signed: bool) -> int:
    lo = 2 if signed else 1
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= MAX_BITS:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"{what} ({bits!r}) must be an integer in {lo}..{MAX_BITS} for {kind} values")
    return int(bits)


def _continuous(rng: np.random.Generator, n: int, model: ValueModel, lo: int, hi: int, signed: bool) -> np.ndarray:
    """n quantized draws of a continuous model, std = hi / 3, clipped to [lo, hi]; int32."""
    sigma = hi / 3.0
    if model == ValueModel.LAPLACE:  # Laplace(b) = b * (E1 - E2), std = b * sqrt(2)
        x = rng.standard_exponential(n, dtype=np.float32)
        x -= rng.standard_exponential(n, dtype=np.float32)
        x *= np.float32(sigma / math.sqrt(2.0))
    else:
        x = rng.standard_normal(n, dtype=np.float32)
        x *= np.float32(sigma)
        if model == ValueModel.RELU:
            np.maximum(x, 0, out=x)
    if not signed:
        np.abs(x, out=x)
    np.rint(x, out=x)
    np.clip(x, lo, hi, out=x)
    return x.astype(np.int32)


def random_values(
    rng: np.random.Generator,
    shape: int | tuple[int, ...],
    bits: int,
    signed: bool,
    model: str | ValueModel,
    zero_fraction: float,
) -> np.ndarray:
    """An int32 array of ``shape`` drawn from ``model`` within ``bits`` (signed or unsigned).

    Afterwards exactly ``round(zero_fraction * size)`` entries, chosen at random, are forced to 0.
    ``zero_fraction`` counts only these forced zeros: the model's own draws may add natural zeros
    (e.g. 1 / 2**bits of the rest under ``uniform``).
    """
    model = _value_model(model)
    bits = _check_bits("bits", bits, bool(signed))
    zero_fraction = _check_zero_fraction(zero_fraction)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    n = math.prod(shape)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if model == ValueModel.UNIFORM:
        # 2**bits equally likely values: the top ``bits`` bits of raw 32-bit words, shifted to [lo, hi]
        raw = rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
        raw >>= np.uint32(32 - bits)
        out = raw.view(np.int32)
        if lo:
            out += np.int32(lo)
    else:
        out = np.empty(n, dtype=np.int32)
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            out[start:stop] = _continuous(rng, stop - start, model, lo, hi, bool(signed))
    k = round(zero_fraction * n)
    if k:
        mask = np.zeros(n, dtype=bool)
        mask[:k] = True
        rng.shuffle(mask)
        out[mask] = 0
    return out.reshape(shape)


# ----------------------------------------------------------------------------- workloads
def build(
    name: str,
    *,
    seed: int = 0,
    value_model: str | ValueModel = "uniform",
    zero_fraction: float | None = None,
    act_bits: int | None = None,
    weight_bits: int | None = None,
    max_layers: int | None = None,
) -> Workload:
    """A synthetic Workload with network ``name``'s layer shapes and seeded random values.

    ``zero_fraction`` is the fraction of each layer's activations forced to 0 (default 0.4 under ``uniform``,
    else 0); weights get no forced zeros. ``act_bits`` / ``weight_bits`` override every layer's precision.
    ``max_layers`` keeps only the first N layers. Under ``relu`` weights are drawn ``gaussian``.
    """
    shapes = network_shapes(name)
    model = _value_model(value_model)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if zero_fraction is None:
        act_zf = 0.4 if model == ValueModel.UNIFORM else 0.0
    else:
        act_zf = _check_zero_fraction(zero_fraction)
    act_signed = name in _SIGNED_ACTIVATIONS
    if act_bits is not None:
        act_bits = _check_bits("act_bits", act_bits, act_signed)
    if weight_bits is not None:
        weight_bits = _check_bits("weight_bits", weight_bits, True)
    if max_layers is not None:
        if isinstance(max_layers, bool) or not isinstance(max_layers, (int, np.integer)) or max_layers < 1:
            raise ValueError(f"max_layers must be a positive integer or None, got {max_layers!r}")
        shapes = shapes[: int(max_layers)]
    weight_model = ValueModel.GAUSSIAN if model == ValueModel.RELU else model

    layers = []
    for i, s in enumerate(shapes):
        ab = s.act_bits if act_bits is None else act_bits
        wb = s.weight_bits if weight_bits is None else weight_bits
        acts = random_values(np.random.default_rng([seed, i, 0]), s.activation_shape, ab, act_signed, model, act_zf)
        wgts = random_values(np.random.default_rng([seed, i, 1]), s.weight_shape, wb, True, weight_model, 0.0)
        kw = {"act_bits": ab, "weight_bits": wb, "act_signed": act_signed, "weight_signed": True, "meta": {"index": i}}
        if s.kind == LayerKind.CONV:
            layers.append(Layer.conv(s.name, acts, wgts, stride=s.stride, padding=s.padding, groups=s.groups, **kw))
        elif s.kind == LayerKind.FC:
            layers.append(Layer.fc(s.name, acts, wgts, **kw))
        else:
            layers.append(Layer.gemm(s.name, acts, wgts, **kw))
    meta = {
        "generator": "synthetic",
        "network": name,
        "seed": seed,
        "value_model": model.value,
        "zero_fraction": act_zf,
        "weight_zero_fraction": 0.0,
        "act_bits": act_bits,
        "weight_bits": weight_bits,
        "max_layers": None if max_layers is None else int(max_layers),
    }
    return Workload(name, layers, meta)
