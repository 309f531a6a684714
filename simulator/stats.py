"""Workload statistics, per layer: value statistics of the operands and the ideal speedup of every preset.

Value statistics (activations ``act_*`` and weights ``weight_*``):

* ``zero_frac``: fraction of zero values.
* ``bits_binary``: mean number of one bits of |v| (the terms a binary bit-serial design like Pragmatic processes).
* ``bits_booth``: mean number of non-zero terms of |v| under DNNsim's Booth-like recoding (``Encoding.BOOTH``).
* ``group_precision``: mean over groups of ``GROUP`` consecutive channels (at each output position / token) of
  the Dynamic Stripes precision: ``max msb + 1`` over the group's values (msb of v, or of ~v for negative v),
  plus one sign bit for signed operands; an all-zero group counts ``1`` (+1 if signed).

``ideal speedup`` of a design on a layer = DaDianNao ``ideal_cycles`` / the design's ``ideal_cycles`` (its own
work over the chip's lanes, no stalls), from :func:`simulator.simulate` with each preset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from workloads import Layer, LayerKind, Workload
from workloads.bits import ENC_BINARY, ENC_BOOTH, TABLE_SIZE, value_terms, value_widths

from .config import load_arch, preset_names
from .engine import simulate
from .knobs import ConfigError

BASELINE = "dadiannao"
GROUP = 16
MAX_TERMS = 16  # essential bits of a 16-bit magnitude
_ENCODINGS = {"binary": ENC_BINARY, "booth": ENC_BOOTH}


# ----------------------------------------------------------------------------- value statistics
def essential_bits(values: np.ndarray, encoding: str = "binary") -> np.ndarray:
    """Non-zero terms of every |value| (``encoding`` "binary" = one bits, or "booth"), same shape, int32."""
    if encoding not in _ENCODINGS:
        raise ValueError(f"essential_bits: unknown encoding {encoding!r} (expected binary or booth)")
    mags = np.abs(np.asarray(values, dtype=np.int64))
    if mags.size and mags.max() >= TABLE_SIZE:
        raise ValueError(f"essential_bits: magnitude {int(mags.max())} exceeds 16 bits")
    return value_terms(mags, _ENCODINGS[encoding]).astype(np.int32)


def channel_groups(layer: Layer, which: str = "activations", group: int = GROUP) -> np.ndarray:
    """The operand's values cut into groups of ``group`` consecutive input channels: (n_groups, group),
    zero-padded; activations at each spatial position / token, weights per filter (and tap)."""
    arr = np.asarray(getattr(layer, which))
    if which == "activations":
        if layer.kind == LayerKind.CONV:
            arr = arr.reshape(arr.shape[0], -1).T  # (H*W, C)
        elif layer.kind == LayerKind.FC:
            arr = arr.reshape(1, -1)
    else:
        arr = arr.reshape(arr.shape[0], arr.shape[1], -1).transpose(0, 2, 1).reshape(-1, arr.shape[1])  # (K*R*S, C)
    rows, c = arr.shape
    pad = (-c) % group
    if pad:
        arr = np.pad(arr, ((0, 0), (0, pad)))
    return arr.reshape(rows * ((c + pad) // group), group)


def group_precision(groups: np.ndarray, signed: bool) -> np.ndarray:
    """Dynamic Stripes precision of every group (row): max msb + 1 (+1 if signed), all-zero -> 1 (+1)."""
    widths = value_widths(np.ascontiguousarray(groups, dtype=np.int64), bool(signed), False)
    return np.maximum(widths.max(axis=1), 1 + int(signed)).astype(np.int64)


def layer_stats(layer: Layer, group: int = GROUP) -> dict:
    """One row of :func:`workload_stats`."""
    row: dict = {"layer": layer.name, "kind": str(layer.kind), "macs": layer.macs,
                 "act_bits": layer.act_bits, "weight_bits": layer.weight_bits}
    for prefix, which, signed in (("act", "activations", layer.act_signed), ("weight", "weights", layer.weight_signed)):
        values = np.asarray(getattr(layer, which))
        row[f"{prefix}_zero_frac"] = float(np.mean(values == 0))
        if not np.issubdtype(values.dtype, np.integer):  # fp32 weights: no integer bit statistics
            row.update({f"{prefix}_bits_binary": np.nan, f"{prefix}_bits_booth": np.nan,
                        f"{prefix}_group_precision": np.nan})
            continue
        row[f"{prefix}_bits_binary"] = float(essential_bits(values, "binary").mean())
        row[f"{prefix}_bits_booth"] = float(essential_bits(values, "booth").mean())
        row[f"{prefix}_group_precision"] = float(group_precision(channel_groups(layer, which, group), signed).mean())
    return row


def workload_stats(workload: Workload, group: int = GROUP) -> pd.DataFrame:
    """Per-layer value statistics (one row per layer; see the module docstring for the columns)."""
    return pd.DataFrame([layer_stats(layer, group) for layer in workload])


def bits_histogram(workload: Workload, which: str = "activations", encoding: str = "binary") -> np.ndarray:
    """(layers, 17) counts of values with 0..16 essential bits, per layer."""
    out = np.zeros((len(workload), MAX_TERMS + 1), np.int64)
    for i, layer in enumerate(workload):
        values = np.asarray(getattr(layer, which))
        if np.issubdtype(values.dtype, np.integer):
            out[i] = np.bincount(essential_bits(values, encoding).ravel(), minlength=MAX_TERMS + 1)
    return out


# ----------------------------------------------------------------------------- ideal speedups
def ideal_speedups(workload: Workload, presets: Sequence[str] | None = None,
                   progress: Callable[[str], Callable[[int, int, str], None]] | None = None
                   ) -> tuple[pd.DataFrame, dict[str, str]]:
    """(per-layer table of ``ideal_speedup:<preset>`` columns plus a TOTAL in ``attrs``, skipped presets -> reason).

    A preset that cannot run the workload (e.g. a precision above its PE width) is skipped with its reason.
    """
    names = list(presets) if presets is not None else preset_names()
    if BASELINE not in names:
        names.insert(0, BASELINE)
    ideal: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            res = simulate(load_arch(name), workload, progress=progress(name) if progress else None)
        except ConfigError as exc:
            if name == BASELINE:
                raise
            skipped[name] = str(exc)
            continue
        ideal[name] = res.layers["ideal_cycles"].to_numpy(dtype=np.float64)
    base = ideal[BASELINE]
    table = pd.DataFrame({"layer": [layer.name for layer in workload]})
    totals = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, cycles in ideal.items():
            table[f"ideal_speedup:{name}"] = base / cycles
            totals[name] = float(base.sum() / cycles.sum()) if cycles.sum() else float("inf")
    table.attrs["total"] = totals
    return table, skipped


def stats_table(workload: Workload, presets: Sequence[str] | None = None, progress=None
                ) -> tuple[pd.DataFrame, dict[str, float], dict[str, str]]:
    """Value statistics joined with the ideal speedups; also the TOTAL speedups and skips."""
    values = workload_stats(workload)
    speed, skipped = ideal_speedups(workload, presets, progress)
    table = values.merge(speed, on="layer", how="left", sort=False)
    return table, speed.attrs["total"], skipped
