"""Stripes-style per-layer precision profiling (Judd et al., "Stripes", MICRO 2016; "Proteus", ICS 2016).

Exact rule. Each conv / linear layer's input activations and (BN-folded) weights are profiled separately, as
dynamic fixed point: a width ``w`` and a split. For width ``w`` the base split is the one that just covers the
largest magnitude seen on the profiling images (:func:`workloads.quantize.dfp_frac_bits`: no saturation; fewer
bits drop LSBs, rounding to nearest even). Up to ``msb_candidates`` further splits move the window down by
``s = 1..msb_candidates`` bits (one more fraction bit each), saturating the top ``s`` MSBs. A (width, split) is
*acceptable* if the model, with only that tensor quantized and every other tensor in float (fp32), agrees with the
fp32 model's top-1 on at least ``target_agreement`` of the images (or, with ``max_rel_error``, if the mean relative
L2 error of the logits is at most that bound). For each tensor the smallest acceptable width is found by binary
search over 1 (2 if signed) .. ``max_bits`` (widths are assumed monotone; ``max_bits`` is taken if none passes),
trying the splits s = 0, 1, ... in that order at each width.

Joint check: all profiled formats together. If the joint model misses the target, widths grow one tensor at a time,
one LSB each (same integer range, one more fraction bit), most sensitive tensor first (sensitivity = its own
agreement at the chosen width, lowest first; ties broken by the larger relative logit error), re-checking after each
step and cycling through the tensors until the joint model passes or every width is ``max_bits``. No randomness is
involved: results depend only on the model and the images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .importers.pytorch import FakeQuant, _forward, _prepare, calibrate, fold_batchnorm, quant_modules
from .layer import MAX_BITS
from .quantize import LayerQuant, TensorFormat, dfp_frac_bits, profile_quants, requantize_dfp
from .workload import Workload

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "apply_profile", "profile_precisions", "profile_quants"]

COLUMNS = ["layer", "act_bits", "weight_bits", "act_frac_bits", "weight_frac_bits", "act_signed"]


def _metric_ok(logits: np.ndarray, ref: np.ndarray, target_agreement: float, max_rel_error: float | None):
    """(meets the target, metric value, sensitivity key: smaller = more sensitive)."""
    err = float(np.mean(np.linalg.norm(logits - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-30)))
    agree = float(np.mean(logits.argmax(1) == ref.argmax(1)))
    if max_rel_error is not None:
        return err <= max_rel_error, err, (-err,)
    return agree >= target_agreement, agree, (agree, -err)


def profile_precisions(
    model: nn.Module,
    images: np.ndarray,
    *,
    preprocess: Callable[[np.ndarray], torch.Tensor],
    target_agreement: float = 0.99,
    max_rel_error: float | None = None,
    max_bits: int = MAX_BITS,
    msb_candidates: int = 1,
    layers: list[str] | None = None,
    batch_size: int = 500,
) -> pd.DataFrame:
    """Per layer, the smallest activation and weight widths (dynamic fixed point, module docstring) that keep the
    target. Returns a DataFrame with columns ``layer, act_bits, weight_bits, act_frac_bits, weight_frac_bits,
    act_signed``; ``attrs`` holds ``joint_metric``, ``joint_ok``, ``backoff_steps`` and the target. ``layers``
    restricts the search to some layers (the others are not quantized and not listed)."""
    gm = fold_batchnorm(model)
    x = _prepare(images, preprocess)
    stats = calibrate(gm, x, batch_size)
    ref = _forward(gm, x, batch_size).numpy()
    mods = quant_modules(gm)
    names = list(mods) if layers is None else list(layers)
    unknown = [n for n in names if n not in mods]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; the model's conv / linear layers are {list(mods)}")
    wmax = {n: float(mods[n].weight.detach().abs().max()) for n in names}

    def evaluate(quants: dict[str, LayerQuant]) -> tuple[bool, float, tuple]:
        logits = FakeQuant(gm, quants)(x, batch_size).numpy()
        return _metric_ok(logits, ref, target_agreement, max_rel_error)

    sensitivity: dict[tuple[str, str], tuple] = {}

    def search(name: str, what: str) -> TensorFormat:
        signed = stats[name][1] if what == "act" else True
        m = stats[name][0] if what == "act" else wmax[name]
        cache: dict[int, TensorFormat | None] = {}
        keys: dict[int, tuple] = {}

        def acceptable(width: int) -> TensorFormat | None:
            if width not in cache:
                cache[width] = None
                for s in range(msb_candidates + 1):
                    fmt = TensorFormat("dfp", width, signed, frac_bits=dfp_frac_bits(m, width, signed) + s)
                    lq = LayerQuant(fmt, None) if what == "act" else LayerQuant(None, fmt)
                    ok, value, key = evaluate({name: lq})
                    log.debug("%s %s %d bits (saturate %d): %.4f", name, what, width, s, value)
                    if ok:
                        cache[width], keys[width] = fmt, key
                        break
            return cache[width]

        lo, hi = (2 if signed else 1), max_bits
        while lo < hi:
            mid = (lo + hi) // 2
            if acceptable(mid) is not None:
                hi = mid
            else:
                lo = mid + 1
        found = acceptable(lo) if lo < max_bits else cache.get(lo)
        if found is None:
            found = TensorFormat("dfp", max_bits, signed, frac_bits=dfp_frac_bits(m, max_bits, signed))
        sensitivity[(name, what)] = keys.get(found.bits, (-np.inf,))
        return found

    chosen = {n: LayerQuant(search(n, "act"), search(n, "weight")) for n in names}
    for n, q in chosen.items():
        log.info("profile %s: act %d bits, weights %d bits", n, q.act.bits, q.weight.bits)
    ok, value, _ = evaluate(chosen)
    fmts = {(n, w): getattr(q, w) for n, q in chosen.items() for w in ("act", "weight")}
    order = sorted(fmts, key=lambda t: sensitivity[t])
    steps = 0
    while not ok and any(f.bits < max_bits for f in fmts.values()):
        for t in order:
            if fmts[t].bits >= max_bits:
                continue
            fmts[t] = _grow(fmts[t], max_bits)
            steps += 1
            chosen = {n: LayerQuant(fmts[(n, "act")], fmts[(n, "weight")]) for n in names}
            ok, value, _ = evaluate(chosen)
            log.info("profile back-off step %d (%s %s -> %d bits): joint metric %.4f", steps, *t, fmts[t].bits, value)
            if ok:
                break
    rows = [
        [n, q.act.bits, q.weight.bits, q.act.frac_bits, q.weight.frac_bits, q.act.signed] for n, q in chosen.items()
    ]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs.update(
        joint_metric=value, joint_ok=bool(ok), backoff_steps=steps, target_agreement=target_agreement,
        max_rel_error=max_rel_error, images=int(len(x)),
    )
    return df


def _grow(fmt: TensorFormat, max_bits: int) -> TensorFormat:
    if fmt.bits >= max_bits:
        return fmt
    return TensorFormat("dfp", fmt.bits + 1, fmt.signed, frac_bits=fmt.frac_bits + 1)


def apply_profile(workload: Workload, profile: pd.DataFrame) -> Workload:
    """The workload with each profiled layer's ``act_bits`` / ``weight_bits`` set and its stored integers
    requantized to the profiled dynamic fixed point formats (:func:`workloads.quantize.requantize_dfp`: LSBs dropped
    with round-half-even, MSBs saturated); the bias and scales in ``meta`` are updated to match. The layers must come
    from a dfp import (meta ``act`` / ``weight`` with ``frac_bits``). This requantizes each layer's own inputs: it
    does not re-propagate the reduced precision through the network (``import_pytorch(..., profile=)`` does)."""
    rows = {row.layer: row for row in profile.itertuples(index=False)}
    layers = []
    for layer in workload.layers:
        row = rows.get(layer.meta.get("module", layer.name))
        if row is None:
            layers.append(layer)
            continue
        old_a, old_w = (TensorFormat.from_meta(layer.meta[k]) for k in ("act", "weight"))
        if old_a.kind != "dfp" or old_w.kind != "dfp":
            raise ValueError(f"layer {layer.name!r}: apply_profile needs dynamic fixed point layers, got "
                             f"{old_a.kind} / {old_w.kind}")
        new_a = TensorFormat("dfp", int(row.act_bits), old_a.signed, frac_bits=int(row.act_frac_bits))
        new_w = TensorFormat("dfp", int(row.weight_bits), True, frac_bits=int(row.weight_frac_bits))
        acts = requantize_dfp(layer.activations, old_a.frac_bits, new_a)
        wgts = requantize_dfp(layer.weights, old_w.frac_bits, new_w)
        meta = dict(layer.meta, act=new_a.to_meta(), weight=new_w.to_meta(), scheme="profile")
        acc_frac = new_a.frac_bits + new_w.frac_bits
        if meta.get("bias") is not None:
            shift = acc_frac - (old_a.frac_bits + old_w.frac_bits)
            meta["bias"] = [int(v) for v in np.rint(np.ldexp(np.asarray(meta["bias"], dtype=np.float64), shift))]
        meta["accumulator_scale"] = [float(np.ldexp(1.0, -acc_frac))] * layer.out_channels
        layers.append(layer.with_values(
            activations=acts, weights=wgts, act_bits=new_a.bits, weight_bits=new_w.bits, act_signed=new_a.signed,
            meta=meta,
        ))
    return Workload(workload.name, layers, dict(workload.meta, profile=profile.to_dict(orient="list")))
