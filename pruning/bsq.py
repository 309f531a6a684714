"""BSQ: per-layer weight precisions from bit-level group sparsity, learned while retraining (needs torch).

Yang, Duan, Chen, Li, "BSQ: Exploring bit-level sparsity for mixed-precision neural network quantization",
ICLR 2021. Every bit of a quantized weight is a trainable variable: a layer's integer weights (at the scale ``s``
its format records, magnitude planes ``b = 0 .. P-1``, ``P`` = the format's bits - 1) are written
``q = sum_b 2^b (p_b - n_b)`` with ``p_b, n_b`` continuous in [0, 2] (``p`` holds a positive weight's bits,
``n`` a negative one's). The network computes with ``s x round(q)`` (rounded on the grid of the lowest kept plane
and saturated to the kept planes' range, straight-through gradient), and the loss gains the memory-reweighted group
lasso over bit planes, one group per bit plane per layer:

    strength x sum_l (N_l x B_l / N) x sum_{b kept} sqrt(sum_i (p_{b,i}^2 + n_{b,i}^2) + 1e-8)

(``N_l`` the layer's weights, ``B_l`` its kept planes, ``N`` the weights of all BSQ layers: a layer's share of the
weight memory, so that big layers are pushed harder; the authors' code weighs the same way). After every SGD step
the variables are clipped to [0, 2]. Every ``requant_every`` epochs, and at the end, the layers are re-quantized:
the bottom planes whose every variable rounds to 0 are dropped (the weights then round on the coarser grid),
``round(q)`` is written back as exact binary planes (a carried 2 becomes a one in the plane above) and the end
planes that are all zero in them are dropped (MSBs first, as the authors): a dropped MSB plane lowers the
precision, a dropped LSB plane doubles the layer's weight scale; never below ``min_bits`` including the sign. The
final precision of a layer is its kept planes + 1 (the sign): its ``weight_bits``, so the designs that run weights
at ``weight_bits`` (Loom, Bit Fusion) see it.

Training. The bit planes train inside ``pruning.finetune.finetune`` (SGD, momentum 0.9, cosine decay over the
``epochs``; the penalty is its ``penalty`` term, the re-quantization its ``on_epoch`` hook), preconditioned so
that ``lr`` means what it means for the float weights: plane b's gradient is divided by ``2 K (s 2^b)^2`` (``K``
kept planes; ``dw / dp_b = s 2^b``), so one step moves a weight as a plain SGD step on the weight would. Without
it a bit variable's gradient ``s 2^b dL/dw`` is tiny and 2^b-skewed (ResNet-20: about 4e-5 on plane 0 to 3e-3 on
plane 6), so no rate moves the low planes in a few epochs without the top ones diverging; the preconditioner
does not change the objective or its stationary points. Then ``final_epochs`` fine-tune the planes at the reached
precisions (no penalty; the authors fine-tune the reached scheme too) and a last exact re-quantization drops the
end planes they left empty.

The result. Each layer's integers at the new scale (``round(q) / 2^lsb_dropped``, exact) and ``weight_bits``;
the layer's recorded weight format (``meta["weight"]``: bits, dfp ``frac_bits`` - lsb_dropped or linear scales
x 2^lsb_dropped), its ``accumulator_scale`` and its bias (re-quantized at the new accumulator scale), so that
``workloads.evaluate`` computes the network the layer describes (``drop_planes`` does the same for a layer by
hand). The report's common columns compare at the original scale (``rel_error`` of the real weights,
``bit_sparsity`` over the original magnitude bits); its own columns: ``bits_before``, ``bits_after``,
``lsb_dropped``, ``msb_dropped`` and ``plane_density`` (ones / (weights x kept planes) of the final weights).

Departures from the paper (besides the preconditioner and the LSB rule above, see docs): a few epochs on the
retraining data of the other methods (the CIFAR-10 test copy's train half) from the workload's own integer weights
and formats, instead of 350 epochs on the training set; the optimizer's momentum is not reset at a re-quantization
(the authors rebuild their optimizer); biases stay float (the importer's bias format) and activations keep theirs
(the paper quantizes both to fixed precisions).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from workloads import Layer, Workload

from .base import METHODS, Param, PruneResult, PruningError, assemble, check_layers_param, register, selected
from .bitpruner import TRAIN_OPTIONS, TRAIN_PARAMS, _config, _retraining

log = logging.getLogger(__name__)

EPS = 1e-8  # inside each group's square root (as the authors' code): a finite gradient at an all-zero plane

_TRAIN = {p.name: p for p in TRAIN_PARAMS}
BSQ_PARAMS = (
    Param("strength", float, "group-lasso weight (the paper's alpha): larger gives lower precisions", 0.1, lo=0.0),
    replace(_TRAIN["epochs"], help="BSQ training epochs (group lasso in the loop)", default=2, lo=1),
    Param("requant_every", int, "epochs between re-quantizations that drop all-zero MSB / LSB planes", 1, lo=1),
    Param("min_bits", int, "lowest precision a layer may reach, sign included", 2, lo=2, hi=16),
    _TRAIN["lr"],
    replace(_TRAIN["batch_size"], help="training batch size (small: more steps for the penalty per epoch)",
            default=32),
    replace(_TRAIN["final_epochs"], help="fine-tuning epochs at the reached precisions (no penalty)"),
    _TRAIN["split_seed"],
    _TRAIN["threads"],
)


# ----------------------------------------------------------------------------- bit planes (numpy)
def to_planes(ints: np.ndarray, planes: int) -> tuple[np.ndarray, np.ndarray]:
    """Sign-magnitude bit planes of integer weights: (p, n), each (planes, *shape) in {0, 1}; plane b holds bit b
    of |w| (in ``p`` for w > 0, in ``n`` for w < 0). PruningError if a magnitude needs more planes."""
    w = np.asarray(ints, dtype=np.int64)
    mag = np.abs(w)
    if mag.size and int(mag.max()) >= 1 << planes:
        raise PruningError(f"bsq: magnitude {int(mag.max())} needs more than {planes} bit planes")
    bits = (mag[None] >> np.arange(planes).reshape((-1,) + (1,) * w.ndim)) & 1
    return (bits * (w > 0)).astype(np.int8), (bits * (w < 0)).astype(np.int8)


def from_planes(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The integers sum_b 2^b (p_b - n_b) of (binary or integer-valued) planes."""
    d = np.asarray(p, dtype=np.int64) - np.asarray(n, dtype=np.int64)
    return (d << np.arange(d.shape[0]).reshape((-1,) + (1,) * (d.ndim - 1))).sum(axis=0)


def plane_counts(ints: np.ndarray, planes: int) -> np.ndarray:
    """Ones in every magnitude plane of integer weights (int64, (planes,))."""
    mag = np.abs(np.asarray(ints, dtype=np.int64)).reshape(-1)
    return np.array([int(((mag >> b) & 1).sum()) for b in range(planes)], dtype=np.int64)


def end_planes(counts: np.ndarray, lo: int, hi: int, min_planes: int, *, top: bool = True,
               bottom: bool = True) -> tuple[int, int]:
    """The kept planes [lo', hi'] within [lo, hi] once the all-zero top planes (``top``), then the all-zero bottom
    planes (``bottom``) are dropped (``counts``: ones per plane), keeping at least ``min_planes`` (the authors'
    order: MSBs first)."""
    while top and hi - lo + 1 > min_planes and counts[hi] == 0:
        hi -= 1
    while bottom and hi - lo + 1 > min_planes and counts[lo] == 0:
        lo += 1
    return lo, hi


def memory_weight(weights: int, planes: int, total: int) -> float:
    """A layer's group-lasso weight: its share of the weight memory, weights x bits / all weights."""
    return weights * planes / total


# ----------------------------------------------------------------------------- layer formats
def _rescaled_format(fmt: dict, lsb: int, bits: int) -> dict:
    """A recorded weight format (``meta["weight"]``) with ``bits`` and its scale x 2^lsb."""
    from workloads.quantize import TensorFormat

    tf = TensorFormat.from_meta(fmt)
    if tf.kind == "dfp":
        tf = replace(tf, bits=bits, frac_bits=tf.frac_bits - lsb)
    else:
        tf = replace(tf, bits=bits, scales=tuple(math.ldexp(s, lsb) for s in tf.scales))
    return tf.to_meta()


def with_precision(layer: Layer, weights: np.ndarray, *, lsb_dropped: int, bits: int,
                   bias: Sequence[int] | None = None) -> Layer:
    """``layer`` with ``weights`` (integers at the new scale), ``weight_bits`` = ``bits`` and its recorded weight
    format, accumulator scale and bias re-expressed at a weight scale x 2^lsb_dropped. ``bias``: the new integer
    bias (default: the layer's, divided by 2^lsb_dropped and rounded half to even: exact when divisible)."""
    from workloads.quantize import LayerQuant, accumulator_scale

    meta = dict(layer.meta)
    if not isinstance(meta.get("weight"), dict) or not isinstance(meta.get("act"), dict):
        raise PruningError(f"bsq: layer {layer.name!r} records no weight / activation format (meta['weight'], "
                           f"meta['act']); its scale cannot change")
    meta["weight"] = _rescaled_format(meta["weight"], lsb_dropped, bits)
    k = layer.out_channels
    meta["accumulator_scale"] = [float(v) for v in accumulator_scale(LayerQuant.from_meta(meta), k)]
    if bias is not None:
        meta["bias"] = [int(v) for v in bias]
    elif meta.get("bias") is not None:
        meta["bias"] = [int(v) for v in np.rint(np.ldexp(np.asarray(meta["bias"], np.float64), -lsb_dropped))]
    return layer.with_values(weights=np.asarray(weights).astype(np.int32), weight_bits=bits, meta=meta)


def drop_planes(layer: Layer, *, lsb: int = 0, msb: int = 0) -> Layer:
    """``layer`` with its ``lsb`` lowest and ``msb`` highest magnitude planes dropped: weights / 2^lsb,
    ``weight_bits`` - lsb - msb, the recorded weight scale x 2^lsb (bias re-expressed). The dropped planes must be
    all zero (PruningError otherwise), so the layer computes the same real values."""
    if not layer.weight_signed:
        raise PruningError(f"bsq: layer {layer.name!r} has unsigned weights; bsq works on signed weights")
    w = layer.weights.astype(np.int64)
    bits = layer.weight_bits - lsb - msb
    if lsb < 0 or msb < 0 or bits < 2:
        raise PruningError(f"bsq: dropping {lsb} LSB and {msb} MSB planes leaves layer {layer.name!r} "
                           f"{bits} bits (a signed layer needs >= 2)")
    mag = np.abs(w)
    if (mag & ((1 << lsb) - 1)).any() or (mag >> (bits - 1 + lsb)).any():
        raise PruningError(f"bsq: layer {layer.name!r}: the planes to drop are not all zero")
    return with_precision(layer, w >> lsb, lsb_dropped=lsb, bits=bits)


# ----------------------------------------------------------------------------- the trainable bit planes
def _torch_parts():
    import torch
    from torch import nn

    class BitPlanes(nn.Module):
        """One layer's weights as bit planes (see the module docstring): the parametrization of its ``weight``.

        ``p``, ``n``: (P, *shape) float parameters in [0, 2]; planes outside [lo, hi] are dropped (held at zero,
        masked out of the forward pass and the penalty). ``forward`` ignores the float weight it is given."""

        def __init__(self, ints: np.ndarray, planes: int, scale):
            super().__init__()
            p, n = to_planes(ints, planes)
            self.p = nn.Parameter(torch.from_numpy(p.astype(np.float32)))
            self.n = nn.Parameter(torch.from_numpy(n.astype(np.float32)))
            shape = (-1,) + (1,) * (p.ndim - 1)
            self.register_buffer("powers", torch.from_numpy(np.ldexp(1.0, np.arange(planes)).astype(np.float32))
                                 .reshape(shape))
            self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
            # SGD in weight units: plane b's gradient / (2 K (s 2^b)^2), K kept planes (see ``preconditioner``)
            self.register_buffer("precond", 1 / (self.powers * self.scale.unsqueeze(0)) ** 2)
            self.planes, self.lo, self.hi = planes, 0, planes - 1
            for t in (self.p, self.n):
                t.register_hook(lambda g: g * self.precond / (2 * self.kept))

        @property
        def kept(self) -> int:
            return self.hi - self.lo + 1

        def mask(self):
            keep = torch.zeros(self.planes)
            keep[self.lo:self.hi + 1] = 1
            return keep

        def value(self):
            """sum_b 2^b (p_b - n_b) over the kept planes (continuous)."""
            w = self.powers * self.mask().reshape(self.powers.shape)
            return ((self.p - self.n) * w).sum(0)

        def rounded(self, v):
            """``v`` rounded on the grid 2^lo and saturated to the kept planes' range."""
            step = float(1 << self.lo)
            cap = float((1 << (self.hi + 1)) - (1 << self.lo))
            return torch.clamp(torch.round(v / step) * step, -cap, cap)

        def forward(self, _original):
            v = self.value()
            return (v + (self.rounded(v) - v).detach()) * self.scale

        def ints(self) -> np.ndarray:
            """The integer weights the layer computes with, at the original scale (multiples of 2^lo)."""
            with torch.no_grad():
                return self.rounded(self.value()).double().numpy().astype(np.int64)

        def group_lasso(self):
            """sum over kept planes of the L2 norm of (p_b, n_b)."""
            sq = (self.p ** 2 + self.n ** 2).reshape(self.planes, -1).sum(1)
            return (torch.sqrt(sq + EPS) * self.mask()).sum()

        @torch.no_grad()
        def clip(self) -> None:
            """The variables back in [0, 2], dropped planes at zero (after an SGD step)."""
            keep = self.mask().reshape(self.powers.shape)
            for t in (self.p, self.n):
                if (t < 0).any() or (t > 2).any() or ((1 - keep) * t).any():
                    t.clamp_(0, 2).mul_(keep)

        @torch.no_grad()
        def requantize(self, min_planes: int, zeroed: bool = True) -> tuple[int, int]:
            """Re-quantize: drop the bottom planes whose every variable rounds to 0 (``zeroed``: the LSB planes the
            lasso emptied; the weights then round on the coarser grid), write the rounded weights back as exact
            binary planes (a 2 carries into the plane above), then drop the end planes that are all zero in them
            (the network does not change); returns the (LSB, MSB) planes dropped now."""
            lo, hi = self.lo, self.hi
            if zeroed:  # MSBs first: the floor counts the top planes the rounded weights leave empty
                top = end_planes(plane_counts(self.ints(), self.planes), lo, hi, min_planes, bottom=False)[1]
                ones = (torch.round(self.p) + torch.round(self.n) > 0).reshape(self.planes, -1).sum(1).numpy()
                self.lo = end_planes(ones, lo, top, min_planes, top=False)[0]
            q = self.ints()
            p, n = to_planes(q, self.planes)
            self.p.copy_(torch.from_numpy(p.astype(np.float32)))
            self.n.copy_(torch.from_numpy(n.astype(np.float32)))
            self.lo, self.hi = end_planes(plane_counts(q, self.planes), self.lo, self.hi, min_planes)
            return self.lo - lo, hi - self.hi

    return BitPlanes


def bsq_penalty(planes: Mapping[str, Any]):
    """sum_l memory_weight_l x group_lasso_l over the layers' bit planes (``BitPlanes`` by name), without the
    strength; the memory weight counts the kept planes."""
    total = sum(m.p[0].numel() for m in planes.values())
    return sum(memory_weight(m.p[0].numel(), m.kept, total) * m.group_lasso() for m in planes.values())


def bit_plane_net(workload: Workload, chosen: set[str], *, data_dir=None):
    """A ``QuantNet`` of ``workload`` whose ``chosen`` layers compute from trainable bit planes; returns
    (net, {layer: BitPlanes}). The other layers keep the float weights of ``QuantNet`` (fine-tuned as they are)."""
    from torch.nn.utils import parametrize

    rt = _retraining()
    bit_planes = _torch_parts()
    net = rt.QuantNet(workload, data_dir=data_dir)
    planes = {}
    for name in sorted(chosen):
        mod, layer, q = net.modules[name], net.layers[name], net.quants[name]
        if not q.weight.signed:
            raise PruningError(f"bsq: layer {name!r} has unsigned weights; bsq works on signed weights")
        cap = q.weight.range[1]
        ints = np.clip(layer.weights.astype(np.int64), -cap, cap)  # sign-magnitude: -2^(B-1) saturates to -cap
        bp = bit_planes(ints, q.weight.bits - 1, net.scale[name])
        parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
        parametrize.register_parametrization(mod, "weight", bp, unsafe=True)
        mod.parametrizations.weight.original.requires_grad_(False)
        planes[name] = bp

    def clip_hook(_module, _args):
        for bp in planes.values():
            bp.clip()

    net.model.register_forward_pre_hook(clip_hook)
    return net, planes


# ----------------------------------------------------------------------------- the method
@register("bsq", *BSQ_PARAMS,
          summary="BSQ: per-layer weight precisions from a bit-plane group lasso while retraining (needs torch)",
          needs_torch=True, options=TRAIN_OPTIONS)
def bsq(workload: Workload, *, layers: Sequence[str] | None = None, seed: int = 0, limit: int | None = None,
        progress=None, datasets_dir=None, data_dir=None, **params: Any) -> PruneResult:
    """BSQ on a PyTorch built-in workload (see the module docstring); ``limit``: train on only that many images
    (tests). The result's params carry ``history``: the loss of every epoch and the layers' precisions after every
    re-quantization."""
    check_layers_param(layers)
    params = METHODS["bsq"].bind(params)
    chosen_layers = selected(workload, layers, "bsq")
    for layer in chosen_layers:
        if not layer.weight_signed:
            raise PruningError(f"bsq: layer {layer.name!r} has unsigned weights; bsq works on signed weights")
        if params["min_bits"] > layer.weight_bits:
            raise PruningError(f"bsq: min_bits ({params['min_bits']}) must be <= layer {layer.name!r}'s "
                               f"weight_bits ({layer.weight_bits})")
    chosen = {layer.name.partition("@")[0] for layer in chosen_layers}
    rt = _retraining()
    cfg = _config(params, seed, limit)
    data = rt.TrainData.cifar10(params["split_seed"], datasets_dir, limit)
    net, planes = bit_plane_net(workload, chosen, data_dir=data_dir)
    min_planes = params["min_bits"] - 1
    strength = params["strength"]
    history: dict[str, list] = {"loss": [], "penalty": [], "bits": []}

    def bits_now() -> dict[str, int]:
        return {n: bp.kept + 1 for n, bp in planes.items()}

    def requant(zeroed: bool = True) -> None:
        for name, bp in planes.items():
            lsb, msb = bp.requantize(min_planes, zeroed)
            if lsb or msb:
                log.info("bsq: %s drops %d LSB and %d MSB plane(s): %d bits", name, lsb, msb, bp.kept + 1)
        history["bits"].append(bits_now())
        if planes:
            import torch

            with torch.no_grad():
                history["penalty"].append(float(bsq_penalty(planes)))

    def on_epoch(e: int) -> None:
        if e and e % params["requant_every"] == 0:
            requant()

    history["bits"].append(bits_now())
    penalty = (lambda: strength * bsq_penalty(planes)) if planes and strength else None
    history["loss"] += rt.finetune(net, data, cfg, penalty=penalty, on_epoch=on_epoch, progress=progress,
                                   phase="bsq")
    requant()
    if params["final_epochs"]:
        history["loss"] += rt.finetune(net, data, cfg, epochs=params["final_epochs"], progress=progress,
                                       phase="final")
        requant(zeroed=False)  # all-zero end planes of the fine-tuned integers are dropped (no change)
    return _result(net, planes, workload, params, history, data.source)


def _result(net, planes, workload: Workload, params: dict[str, Any], history: dict, data_source: str) -> PruneResult:
    """The trained network as a PruneResult: BSQ layers at their reached precisions and scales."""
    from workloads.quantize import LayerQuant, quantize_bias

    ints = net.latent_ints()  # the other layers (no projection), at their own scales
    for name, bp in planes.items():
        ints[name] = bp.ints()
    retrained = net.to_workload(ints)  # original formats; biases at the original accumulator scales
    final: dict[str, tuple[np.ndarray, int, int, list[int] | None]] = {}
    for name, bp in planes.items():
        layer = net.layers[name]
        meta = dict(layer.meta)
        meta["weight"] = _rescaled_format(meta["weight"], bp.lo, bp.kept + 1)
        mod = net.modules[name]
        bias = None
        if mod.bias is not None:
            bias = [int(v) for v in quantize_bias(mod.bias.detach().double().numpy(), LayerQuant.from_meta(meta))]
        final[name] = (ints[name] >> bp.lo, bp.lo, bp.kept + 1, bias)
    extra = {}
    for layer in workload:
        base = layer.name.partition("@")[0]
        if base in final:
            q, lo, bits, _ = final[base]
            kept = bits - 1
            ones = int(plane_counts(q, kept).sum())
            extra[layer.name] = {"retrained": True, "bits_before": layer.weight_bits, "bits_after": bits,
                                 "lsb_dropped": lo, "msb_dropped": layer.weight_bits - bits - lo,
                                 "plane_density": ones / (q.size * kept)}
        else:
            extra[layer.name] = {"retrained": True, "bits_before": layer.weight_bits,
                                 "bits_after": layer.weight_bits, "lsb_dropped": 0, "msb_dropped": 0}
    res = assemble(workload, "bsq", params, {layer.name: layer.weights for layer in retrained}, extra,
                   new_meta={layer.name: layer.meta for layer in retrained})
    out = []
    for layer in res.workload:
        base = layer.name.partition("@")[0]
        if base in final:
            q, lo, bits, bias = final[base]
            layer = with_precision(layer, q, lsb_dropped=lo, bits=bits, bias=bias)
        out.append(layer)
    meta = res.workload.meta
    meta["pruning"][-1]["training_data"] = data_source
    return PruneResult(Workload(res.workload.name, out, meta), res.report, "bsq", {**params, "history": history})
