"""The contract every pruning method follows: ``Workload -> PruneResult`` (a new workload and a per-layer report).

A method is a function ``pruning.<method>(workload, *, <params>, layers=None, seed=0) -> PruneResult`` registered
in ``METHODS`` with its typed parameters; ``pruning.prune(workload, "name", **params)`` dispatches. Every method:

- keeps the layer names, shapes and activations, and changes weights only (integers within the layer's declared
  ``weight_bits``: every layer stays valid), in the layers named by ``layers`` (default: all);
- keeps the workload's ``meta`` (so ``workloads.evaluate`` still finds the model of a built-in workload) and
  appends a ``{"method": ..., params}`` step to ``meta["pruning"]``;
- is deterministic (``seed`` drives every random choice of the methods that make any);
- reports one row per layer: ``layer, pruned, weights, nonzero, density, bit_sparsity, mean_terms, rel_error``
  plus its own columns.

``bit_sparsity`` counts bits in sign-magnitude: ``1 - sum(popcount |w|) / (N * magnitude bits)``, magnitude bits
= ``weight_bits - 1`` for signed weights (the sign bit is not a term), ``weight_bits`` for unsigned ones.
``mean_terms`` = mean popcount of |w| per weight; ``rel_error`` = ||w' - w|| / ||w|| (0 for an all-zero layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workloads import Layer, Workload

REPORT_COLUMNS = ["layer", "pruned", "weights", "nonzero", "density", "bit_sparsity", "mean_terms", "rel_error"]


class PruningError(ValueError):
    """A pruning request that cannot be carried out (bad parameter, layer or number format); one line."""


# ----------------------------------------------------------------------------- parameters and methods
_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a method: type (int, float, str, bool), default (``REQUIRED`` if none), range, meaning."""

    name: str
    type: type
    help: str
    default: Any = _REQUIRED
    lo: float | None = None  # inclusive
    hi: float | None = None  # inclusive
    choices: tuple | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def check(self, value: Any, method: str) -> Any:
        """The value in the parameter's type, or PruningError naming the method, the parameter and the value."""
        where = f"{method}: {self.name} ({value!r})"
        if self.type is bool:
            if not isinstance(value, bool):
                raise PruningError(f"{where} must be true or false")
        elif self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer) if self.type is int else
                                                         (int, float, np.integer, np.floating)):
                raise PruningError(f"{where} must be {'an integer' if self.type is int else 'a number'}")
            if self.type is float and not math.isfinite(value):
                raise PruningError(f"{where} must be finite")
            value = self.type(value)
            if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
                span = f">= {self.lo:g}" if self.hi is None else f"in [{self.lo:g}, {self.hi:g}]"
                raise PruningError(f"{where} must be {span}")
        elif self.type is str and not isinstance(value, str):
            raise PruningError(f"{where} must be a string")
        if self.choices is not None and value not in self.choices:
            raise PruningError(f"{where} must be one of: {', '.join(map(str, self.choices))}")
        return value


@dataclass(frozen=True)
class Method:
    """A registered pruning method: its function, parameters and a one-line summary."""

    name: str
    function: Callable[..., PruneResult]
    params: tuple[Param, ...]
    summary: str
    needs_torch: bool = False
    options: tuple[str, ...] = ("layers", "seed")  # call options that are not parameters
    wraps: bool = False  # also takes the parameters of the method it wraps (checked by that method)

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` checked and completed with defaults; PruningError for unknown or missing ones."""
        known = {p.name: p for p in self.params}
        unknown = [k for k in params if k not in known and k not in self.options]
        if unknown and not self.wraps:
            raise PruningError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}; parameters: "
                               f"{', '.join([*known, *self.options])}")
        out = {}
        for name, p in known.items():
            if name in params:
                out[name] = p.check(params[name], self.name)
            elif p.required:
                raise PruningError(f"{self.name}: parameter {name} is required ({p.help})")
            else:
                out[name] = p.default
        return out


# the parameter of every method that groups weights as the simulator bricks them
SPACE_TO_DEPTH = Param("first_layer_space_to_depth", bool,
                       "group a strided 3-channel first conv as the simulator does (its knob of the same name)", True)

METHODS: dict[str, Method] = {}


def register(name: str, *params: Param, summary: str, needs_torch: bool = False,
             options: tuple[str, ...] = ("layers", "seed"), wraps: bool = False):
    """Decorator: register a method function under ``name`` with its parameters and call options."""

    def wrap(fn: Callable[..., PruneResult]) -> Callable[..., PruneResult]:
        METHODS[name] = Method(name, fn, params, summary, needs_torch, options, wraps)
        return fn

    return wrap


def prune(workload: Workload, name: str, /, **params: Any) -> PruneResult:
    """Run pruning method ``name`` (a key of ``METHODS``) on ``workload`` with ``params`` (and call options)."""
    if name not in METHODS:
        raise PruningError(f"unknown pruning method {name!r}; methods: {', '.join(METHODS)}")
    m = METHODS[name]
    m.bind({k: v for k, v in params.items() if k not in m.options})  # one-line errors before the call
    return m.function(workload, **params)


# ----------------------------------------------------------------------------- the result and its report
@dataclass(frozen=True)
class PruneResult:
    """A pruned workload and its per-layer report (one row per layer of the workload)."""

    workload: Workload
    report: pd.DataFrame
    method: str
    params: dict = field(default_factory=dict)

    def totals(self) -> dict[str, float]:
        """Whole-workload figures: weights, nonzero, density, bit_sparsity, mean_terms, rel_error."""
        r = self.report
        weights = float(r["weights"].sum())
        mag_bits = (r["weights"] * r["magnitude_bits"]).sum()
        ones = ((1 - r["bit_sparsity"]) * r["weights"] * r["magnitude_bits"]).sum()
        err = float(np.sqrt((r["sq_error"]).sum() / r["sq_norm"].sum())) if r["sq_norm"].sum() else 0.0
        return {"weights": weights, "nonzero": float(r["nonzero"].sum()),
                "density": float(r["nonzero"].sum() / weights), "bit_sparsity": float(1 - ones / mag_bits),
                "mean_terms": float(ones / weights), "rel_error": err}


def magnitude_bits(layer: Layer) -> int:
    """Bits of a weight's magnitude in sign-magnitude: weight_bits - 1 if signed, else weight_bits."""
    return layer.weight_bits - 1 if layer.weight_signed else layer.weight_bits


def magnitude_cap(layer: Layer) -> int:
    """The largest magnitude a method may produce: 2^(magnitude bits) - 1 (symmetric for signed weights)."""
    return (1 << magnitude_bits(layer)) - 1


def popcounts(values: np.ndarray) -> np.ndarray:
    """popcount(|v|) of every integer value (same shape, uint8)."""
    return np.bitwise_count(np.abs(np.asarray(values, dtype=np.int64)))


def layer_row(layer: Layer, new: np.ndarray, pruned: bool) -> dict[str, Any]:
    """The report's columns for one layer whose weights became ``new``."""
    n = new.size
    ones = int(popcounts(new).sum(dtype=np.int64))
    old = layer.weights.astype(np.float64)
    sq_error = float(((new.astype(np.float64) - old) ** 2).sum())
    sq_norm = float((old**2).sum())
    mag = magnitude_bits(layer)
    return {"layer": layer.name, "pruned": pruned, "weights": n, "nonzero": int(np.count_nonzero(new)),
            "density": np.count_nonzero(new) / n, "bit_sparsity": 1 - ones / (n * mag), "mean_terms": ones / n,
            "rel_error": math.sqrt(sq_error / sq_norm) if sq_norm else 0.0, "magnitude_bits": mag,
            "sq_error": sq_error, "sq_norm": sq_norm}


def selected(workload: Workload, layers: Iterable[str] | None, method: str) -> list[Layer]:
    """The layers a method works on: all, or those named (PruningError for a name the workload lacks); each must
    hold integer weights."""
    if layers is None:
        chosen = list(workload.layers)
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        missing = [n for n in names if n not in {layer.name for layer in workload}]
        if missing:
            raise PruningError(f"{method}: workload {workload.name!r} has no layer {missing[0]!r}")
        chosen = [layer for layer in workload if layer.name in set(names)]
    for layer in chosen:
        if layer.weight_format != "int":
            raise PruningError(f"{method}: layer {layer.name!r} has {layer.weight_format} weights; {method} works "
                               f"on integer (quantized) weights")
    return chosen


def assemble(workload: Workload, method: str, params: dict[str, Any], new_weights: dict[str, np.ndarray],
             extra: dict[str, dict[str, Any]] | None = None,
             new_meta: dict[str, dict[str, Any]] | None = None) -> PruneResult:
    """The pruned workload (``new_weights``: layer name -> weights, the others unchanged) and its report;
    ``extra``: method columns per layer name; ``new_meta``: layer name -> a new ``meta`` (retrained biases)."""
    layers, rows = [], []
    for layer in workload:
        new = new_weights.get(layer.name)
        if new is None:
            layers.append(layer)
            if layer.weight_format == "int":
                rows.append(layer_row(layer, layer.weights, False))
            else:
                rows.append({"layer": layer.name, "pruned": False, "weights": layer.weights.size})
            continue
        new = np.asarray(new)
        if new.shape != layer.weights.shape:
            raise PruningError(f"{method}: layer {layer.name!r}: new weights {new.shape} do not match "
                               f"{layer.weights.shape}")
        meta = (new_meta or {}).get(layer.name, layer.meta)
        layers.append(layer.with_values(weights=new.astype(np.int32), meta=meta))
        rows.append(layer_row(layer, new, True))
    report = pd.DataFrame(rows)
    if extra:
        for col in sorted({c for cols in extra.values() for c in cols}):
            report[col] = [extra.get(name, {}).get(col, np.nan) for name in report["layer"]]
    meta = dict(workload.meta)
    meta["pruning"] = [*meta.get("pruning", []), {"method": method, **_plain(params)}]
    name = f"{workload.name}+{method}"
    return PruneResult(Workload(name, layers, meta), report, method, dict(params))


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON data (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def real_magnitudes(layer: Layer, weights: np.ndarray | None = None) -> np.ndarray:
    """|w| x the weight scale the importer recorded (per tensor or per output channel), so that magnitudes compare
    across channels and layers; |w| where no scale is recorded. ``weights``: other weights shaped like the
    layer's (default its own)."""
    meta = layer.meta
    scale = None
    if isinstance(meta.get("weight"), dict) and "scale" in meta["weight"]:
        scale = meta["weight"]["scale"]
    elif "weight_scale" in meta:
        scale = meta["weight_scale"]
    mags = np.abs((layer.weights if weights is None else weights).astype(np.float64))
    if scale is None:
        return mags
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    if s.size == 1:
        return mags * float(s[0])
    if s.size != layer.out_channels:
        return mags
    return mags * s.reshape((-1,) + (1,) * (mags.ndim - 1))


def check_layers_param(layers: Sequence[str] | str | None) -> None:
    if layers is not None and not isinstance(layers, (str, list, tuple)):
        raise PruningError(f"layers ({layers!r}) must be a layer name or a list of names")
