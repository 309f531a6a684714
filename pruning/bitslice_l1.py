"""Bit-slice L1 (Zhang, Yang, Chen, Wang, Li, "Exploring Bit-Slice Sparsity in Deep Neural Networks for Efficient
ReRAM-Based Deployment", EMC2 workshop at NeurIPS 2019, arXiv:1909.08496): magnitude pruning, then fine-tuning
with an L1 penalty on every weight bit slice, so that ReRAM crossbar columns carry less current and their ADCs
need fewer bits.

Storage (``workloads.slices``). A signed integer weight is stored differentially (positive array max(w, 0),
negative array max(-w, 0)); each magnitude is cut into ``cell_bits``-bit slices, lowest first (8-bit weights,
2-bit cells: four slices; slice j weighs 2^(j x cell_bits)). A layer's weights are unrolled as a (C*R*S, K)
matrix whose rows are cut into crossbars of ``xbar_rows`` rows; every (output, slice, array) is one crossbar
column, and its ADC needs ``adc_bits_for(sum of the column's cells x (2^input_bits - 1))`` bits.

Flow. (1) Every selected layer loses its ``sparsity`` fraction of smallest real magnitudes
(``pruning.magnitude.prune_layer``). (2) The network is fine-tuned (``pruning.finetune``: batch norm folded,
recorded formats, straight-through integer weights) for ``epochs`` then ``final_epochs`` epochs, both with the
penalty and with the magnitude mask in the loop: a ``MaskProjection`` whose mask is the pruned workload's zeros,
fixed for the whole run (as the authors' code masks the gradients of the pruned weights), so every weight that
magnitude pruning zeroed ends at zero; the projection also saturates magnitudes to 2^(magnitude bits) - 1 (the
symmetric range of the other methods, ``pruning.base.magnitude_cap``: an 8-bit -128 becomes -127), so that every
weight fits its slices whatever ``cell_bits``. The result's weights are the projected integers, as ``retrain``
gives.

The penalty: ``l1 x sum over the selected layers and the slices j of slice_j(|w_int|)``, divided by the selected
layers' weight count (``normalize="network"``, the default, as the authors' public code does) or by each layer's
own (``normalize="layer"``: the sum over layers of each layer's mean slice value). ``w_int`` is the latent weight
in integer units (|w| / scale, masked, before rounding); slice_j is the j-th slice of its rounded, saturated
magnitude, with a straight-through gradient d slice_j / d|w_int| = 2^-(j x cell_bits) (the authors' surrogate:
floor with an identity gradient on the magnitude divided by the slice weight). What this implies: for every
unpruned weight the penalty's gradient is ``l1 x sign(w) / scale x sum_j 2^-(j x cell_bits) / divisor``, the
direction of a plain L1 on |w_int| (factor 1.33 for four 2-bit slices); the slices set the penalty's value, not
its direction. It shrinks magnitudes, which empties the high slices first (a magnitude below 2^(j x cell_bits) has
zero slices j and above) and turns small weights into zeros (all slices zero). On ResNet-20 the per-layer mean
pushes the small layers (conv1: 432 weights, layer1: 2,304) 16-85x harder per weight than the 36,864-weight ones
and wrecks accuracy before the large layers gain any slice sparsity, hence the network default (measured in
``scripts/bitslice_results.py``). Either way SGD moves the float weight, so a step moves an integer weight by
lr x gradient / scale: the penalty's push in integer units grows as 1 / scale^2 (1 / scale relative to the loss's
own push), and layers with a finer weight scale (ResNet-20's 2^-9 ones) lose their weights first. ``l1=0`` is the
unregularized baseline: the same pruning, the same fine-tuning, the same seeds.

Report columns (per layer, ``slice_report``): ``slice<j>_zero`` (zero share of slice j over both differential
arrays, lowest slice first), ``slice_zero`` (all slices), ``slice<j>_adc_bits`` (the most ADC bits any crossbar
column of slice j needs), besides ``retrained`` and ``projected`` (the layer was pruned and penalized). Counted
over both arrays a weight's idle array is all zeros, so every share is at least one half; the share over the
slices of |w| alone (one array, as the authors count) is ``2 x share - 1``.

Retraining data and scoring as every retraining method: the CIFAR-10 test copy's ``train`` half (``split_seed``);
score on the other half with ``workloads.evaluate(subset="holdout")``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from workloads import Workload
from workloads.slices import column_adc_bits, signed_planes, slice_count, weight_slices

from .base import (
    METHODS,
    Param,
    PruneResult,
    PruningError,
    check_layers_param,
    magnitude_cap,
    register,
    selected,
)
from .bitpruner import TRAIN_OPTIONS, TRAIN_PARAMS, _config, _result, _retraining
from .magnitude import prune_layer

log = logging.getLogger(__name__)

# the straight-through fine-tuning parameters of the retraining methods (ADMM has its own penalty: not offered;
# nor retrain's recalibration, validation split and distillation)
_TRAIN = tuple(p for p in TRAIN_PARAMS if p.name not in ("admm", "rho", "rho_growth", "recalibrate", "validation",
                                                          "distill", "temperature"))


def slice_report(layer_weights, weight_bits: int, signed: bool, cell_bits: int = 2, xbar_rows: int = 128,
                 input_bits: int = 1) -> dict[str, Any]:
    """Bit-slice figures of one layer's integer weights (output channel first: (K, C, R, S) or (K, C)):
    ``slice<j>_zero`` (zero share of slice j, lowest first, over both differential arrays; the positive one only
    for unsigned weights), ``slice_zero`` (all slices), ``slice<j>_adc_bits`` (the most ADC bits any crossbar
    column of slice j needs: weights unrolled as a (C*R*S, K) matrix, rows cut into blocks of ``xbar_rows``, one
    column per output, slice and array, ``input_bits`` input bits per read)."""
    for name, value, lo in (("weight_bits", weight_bits, 1), ("cell_bits", cell_bits, 1),
                            ("xbar_rows", xbar_rows, 1), ("input_bits", input_bits, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise PruningError(f"slice_report: {name} ({value!r}) must be an integer >= {lo}")
    w = np.asarray(layer_weights)
    if w.ndim < 2 or w.size == 0 or not np.issubdtype(w.dtype, np.integer):
        raise PruningError(f"slice_report: weights must be a non-empty integer array, output channel first (got "
                           f"{w.dtype} {w.shape})")
    w = w.astype(np.int64)
    if not signed and int(w.min()) < 0:
        raise PruningError(f"slice_report: unsigned weights hold a negative value ({int(w.min())})")
    n = slice_count(weight_bits, signed, cell_bits)
    matrix = w.reshape(w.shape[0], -1).T  # (C*R*S, K): one row per input, one column per output
    arrays = signed_planes(matrix) if signed else (matrix,)
    try:
        slices = [weight_slices(a, n, cell_bits) for a in arrays]  # each (rows, K, n)
    except ValueError as err:
        raise PruningError(f"slice_report: {err} ({weight_bits}-bit {'signed' if signed else 'unsigned'} "
                           f"weights)") from None
    cells = matrix.size * len(arrays)
    out: dict[str, Any] = {}
    zeros_total = 0
    for j in range(n):
        zeros = sum(int(np.count_nonzero(s[..., j] == 0)) for s in slices)
        zeros_total += zeros
        out[f"slice{j}_zero"] = zeros / cells
    out["slice_zero"] = zeros_total / (cells * n)
    for j in range(n):
        columns = np.concatenate([s[..., j] for s in slices], axis=1)  # (rows, K x arrays)
        out[f"slice{j}_adc_bits"] = int(column_adc_bits(columns, xbar_rows, input_bits).max())
    return out


@register("bitslice_l1",
          Param("sparsity", float, "fraction of every selected layer's weights zeroed by magnitude before "
                "fine-tuning (kept zero)", 0.5, lo=0.0, hi=1.0),
          Param("cell_bits", int, "bits per ReRAM cell: the width of a weight slice", 2, lo=1, hi=16),
          Param("l1", float, "strength of the L1 penalty on the slices (0: fine-tuning without it, the baseline)",
                10.0, lo=0.0),
          Param("normalize", str, "network: the slice sum over the selected layers / their weight count (the "
                "authors' code); layer: the sum over layers of each layer's mean slice value", "network",
                choices=("network", "layer")),
          Param("xbar_rows", int, "crossbar rows (report: the ADC bits of a column)", 128, lo=1),
          Param("input_bits", int, "input bits applied per crossbar read (report: the ADC bits of a column)", 1,
                lo=1, hi=16),
          *_TRAIN,
          summary="bit-slice L1: magnitude pruning, then fine-tuning with an L1 penalty on the weights' ReRAM bit "
                  "slices (needs torch)",
          needs_torch=True, options=TRAIN_OPTIONS)
def bitslice_l1(workload: Workload, *, layers: Sequence[str] | None = None, seed: int = 0, limit: int | None = None,
                progress=None, datasets_dir=None, data_dir=None, **params: Any) -> PruneResult:
    """Bit-slice L1 on a PyTorch built-in workload (see the module docstring); ``limit``: train on only that many
    images (tests). ``params["history"]``: training loss (penalty included) and mean penalty of every epoch."""
    check_layers_param(layers)
    params = METHODS["bitslice_l1"].bind(params)
    names = {layer.name for layer in selected(workload, layers, "bitslice_l1")}
    chosen = {name.partition("@")[0] for name in names}
    rt = _retraining()
    start = Workload(workload.name, [layer.with_values(weights=prune_layer(layer, layer.weights, params["sparsity"]))
                                     if layer.name in names else layer for layer in workload], workload.meta)
    cfg = _config(params, seed, limit)
    data = rt.TrainData.cifar10(params["split_seed"], datasets_dir, limit)
    net = rt.QuantNet(start, data_dir=data_dir)
    net.projection = _mask_projection(rt, net, chosen)
    net.refresh()
    penalty, epoch_penalties = _slice_penalty(net, chosen, params["cell_bits"], params["l1"],
                                               params["normalize"])
    history: dict[str, list] = {"stage": [], "loss": [], "penalty": []}
    for phase, epochs in (("finetune", params["epochs"]), ("final", params["final_epochs"])):
        marks = []

        def on_epoch(_e, marks=marks):
            marks.append(len(epoch_penalties))

        losses = rt.finetune(net, data, cfg, epochs=epochs, penalty=penalty, on_epoch=on_epoch,
                             progress=progress, phase=phase)
        ends = [*marks[1:], len(epoch_penalties)][:len(marks)]
        history["stage"] += [phase] * len(losses)
        history["loss"] += losses
        history["penalty"] += [float(np.mean(epoch_penalties[a:b])) if b > a else 0.0
                               for a, b in zip(marks, ends, strict=True)]
    log.info("bitslice_l1: l1 %g, losses %s", params["l1"], history["loss"])
    res = _result(net, workload, "bitslice_l1", params, chosen, history, data.source)
    report = res.report.copy()
    figures = [slice_report(layer.weights, layer.weight_bits, layer.weight_signed, params["cell_bits"],
                            params["xbar_rows"], params["input_bits"]) for layer in res.workload]
    for col in figures[0] if figures else ():
        report[col] = [f[col] for f in figures]
    return PruneResult(res.workload, report, res.method, res.params)


def _mask_projection(rt, net, chosen: set[str]):
    """The magnitude mask of the pruned network, fixed (every selected layer's zeros stay zero; the other layers
    pass through), with magnitudes saturated to 2^(magnitude bits) - 1."""
    import torch

    keep = {n: (layer.weights != 0) if n in chosen else np.ones(layer.weights.shape, bool)
            for n, layer in net.layers.items()}
    caps = {n: magnitude_cap(layer) for n, layer in net.layers.items()}

    class SliceMask(rt.MaskProjection):
        def apply(self, name, q):
            return torch.clamp(super().apply(name, q), -caps[name], caps[name])

    def rule(layer, w):
        n = layer.name.partition("@")[0]
        return np.clip(np.where(keep[n], w, 0), -caps[n], caps[n])

    return SliceMask(rule)


def _slice_penalty(net, chosen: set[str], cell_bits: int, strength: float, normalize: str = "network"):
    """``(penalty, values)``: the loss term (None for ``strength`` 0) and the list its values are appended to;
    ``normalize``: "layer" (each layer's mean over its weights) or "network" (every layer's sum / all weights)."""
    import torch

    values: list[float] = []
    if strength == 0:
        return None, values
    names = [n for n in net.modules if n in chosen]
    masks = {n: torch.from_numpy((net.layers[n].weights != 0).astype(np.float32)) for n in names}
    caps = {n: float(magnitude_cap(net.layers[n])) for n in names}
    n_slices = {n: slice_count(net.layers[n].weight_bits, net.layers[n].weight_signed, cell_bits) for n in names}
    base = float(1 << cell_bits)
    total_weights = sum(net.layers[n].weights.size for n in names)
    divisor = {n: net.layers[n].weights.size if normalize == "layer" else total_weights for n in names}

    def penalty():
        total = 0.0
        for n in names:
            w = net.modules[n].parametrizations.weight.original
            x = (w / net.scale[n]).abs() * masks[n]  # latent |w_int|, pruned weights out
            mag = torch.clamp(torch.round(x.detach()), max=caps[n])
            for j in range(n_slices[n]):
                step = base ** j
                value = torch.remainder(torch.floor(mag / step), base)
                surrogate = x / step  # d slice_j / d|w_int| = 2^-(j * cell_bits)
                total = total + (surrogate + (value - surrogate).detach()).sum() / divisor[n]
        term = strength * total
        values.append(float(term.detach()))
        return term

    return penalty, values


__all__ = ["bitslice_l1", "slice_report"]
