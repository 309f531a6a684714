"""PyTorch importer: trace a model on real images, fold batch norm, quantize to fixed point, emit a Workload.

Pipeline (docs/design.md §2):

1. :func:`fold_batchnorm` traces the model with ``torch.fx`` and folds every BatchNorm2d that directly follows a
   Conv2d (and is that conv's only user) into the conv: ``w' = w * g / sqrt(var + eps)``,
   ``b' = (b - mean) * g / sqrt(var + eps) + beta``, computed in float64.
2. :func:`calibrate` runs the folded model on the calibration images and records, per Conv2d / Linear, the
   largest magnitude of its input and whether any input was negative.
3. :func:`layer_quants` chooses per-layer formats (:mod:`workloads.quantize`). Inputs that are never negative
   (after a ReLU, or the average pool of ReLU outputs) are unsigned; the first conv's normalized image is signed
   and is quantized like any other input: two's complement at the scheme's width (sign bit included), its split
   chosen from the largest magnitude over the calibration images (``act_signed=True`` in the Layer).
4. :class:`FakeQuant` runs the model with the quantized weights (dequantized), the bias at the accumulator scale,
   and each conv / linear input rounded and saturated to its format: the integers a forward pre-hook computes are
   exactly those stored in the Layers (times the scales). Everything else (residual adds, padding, pooling,
   ReLU) runs in float.

Layer meta (JSON): ``module`` (qualified name), ``scheme``, ``act`` / ``weight`` formats (``scale``: float, or one
per output channel; dfp: ``frac_bits``), ``bias`` (ints at the accumulator scale) and ``accumulator_scale``
(per output channel): the real conv / linear output is ``(layer_output(layer) + bias[k]) * accumulator_scale[k]``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.fx
from torch import nn

from ..layer import Layer
from ..quantize import (
    SCHEMES,
    LayerQuant,
    TensorFormat,
    accumulator_scale,
    choose_layer_quant,
    profile_quants,
    quantize_bias,
)
from ..workload import Workload

log = logging.getLogger(__name__)

Preprocess = Callable[[np.ndarray], torch.Tensor]


# --------------------------------------------------------------------------------------------- BN folding
def fold_conv_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Folded (weight, bias) in float64 for conv(weight, bias) followed by ``bn`` in eval mode."""
    w = weight.detach().to(torch.float64)
    b = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else bias.detach().to(torch.float64)
    mean = bn.running_mean.detach().to(torch.float64)
    var = bn.running_var.detach().to(torch.float64)
    gamma = bn.weight.detach().to(torch.float64) if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().to(torch.float64) if bn.bias is not None else torch.zeros_like(mean)
    factor = gamma / torch.sqrt(var + bn.eps)
    return w * factor.view(-1, *([1] * (w.dim() - 1))), (b - mean) * factor + beta


def fold_batchnorm(model: nn.Module) -> torch.fx.GraphModule:
    """An eval-mode ``torch.fx`` copy of ``model`` with each Conv2d -> BatchNorm2d pair folded into the conv
    (which gains a bias); keeps the parameters' dtype. Unfolded BatchNorms stay as they are."""
    model = copy.deepcopy(model).eval()
    gm = torch.fx.symbolic_trace(model)
    modules = dict(gm.named_modules())
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        src = node.args[0]
        if not (isinstance(src, torch.fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        conv = modules[src.target]
        bn = modules[node.target]
        if not isinstance(conv, nn.Conv2d) or not bn.track_running_stats:
            continue
        w, b = fold_conv_bn(conv.weight, conv.bias, bn)
        dtype = conv.weight.dtype
        conv.weight = nn.Parameter(w.to(dtype), requires_grad=False)
        conv.bias = nn.Parameter(b.to(dtype), requires_grad=False)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    log.debug("folded %d batch norms", folded)
    return gm.eval()


def quant_modules(gm: torch.fx.GraphModule) -> dict[str, nn.Module]:
    """The Conv2d / Linear modules of a traced model, in graph (execution) order, by qualified name."""
    modules = dict(gm.named_modules())
    out: dict[str, nn.Module] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], (nn.Conv2d, nn.Linear)):
            if node.target in out:
                raise ValueError(f"module {node.target!r} is called more than once (one Layer per module)")
            out[node.target] = modules[node.target]
    return out


# --------------------------------------------------------------------------------------------- running
def _forward(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _prepare(images: np.ndarray, preprocess: Preprocess) -> torch.Tensor:
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    x = preprocess(images)
    if not isinstance(x, torch.Tensor) or x.shape[0] != len(images):
        raise ValueError("preprocess must return a tensor with one entry per image")
    return x


def calibrate(gm: torch.fx.GraphModule, x: torch.Tensor, batch_size: int = 500) -> dict[str, tuple[float, bool]]:
    """Per conv / linear: (largest |input| over all of ``x``, whether any input was negative)."""
    stats: dict[str, list] = {name: [0.0, False] for name in quant_modules(gm)}
    handles = []
    for name, mod in quant_modules(gm).items():
        def hook(_m, args, _name=name):
            a = args[0].detach()
            s = stats[_name]
            s[0] = max(s[0], float(a.abs().max()))
            s[1] = s[1] or bool((a < 0).any())
        handles.append(mod.register_forward_pre_hook(hook))
    try:
        _forward(gm, x, batch_size)
    finally:
        for h in handles:
            h.remove()
    return {k: (v[0], v[1]) for k, v in stats.items()}


def layer_quants(gm: torch.fx.GraphModule, stats: dict[str, tuple[float, bool]], scheme: str) -> dict[str, LayerQuant]:
    """The scheme's formats for every conv / linear of the folded model."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r} (expected one of {SCHEMES})")
    return {
        name: choose_layer_quant(scheme, stats[name][0], stats[name][1], mod.weight.detach().to(torch.float64).numpy())
        for name, mod in quant_modules(gm).items()
    }


def _torch_scale(fmt: TensorFormat, ndim: int, dtype) -> torch.Tensor:
    return torch.from_numpy(np.asarray(fmt.scale_array(ndim), dtype=np.float64)).to(dtype)


class FakeQuant:
    """A copy of a folded model whose conv / linear layers compute on quantized values.

    ``quants`` maps module names to :class:`LayerQuant`; a missing name, or a ``None`` act / weight format,
    leaves that tensor in float. With ``capture=True`` the integer inputs of the first sample of each forward
    call are kept in ``captured`` (name -> int64 array), and the integer weights are in ``int_weights``.
    ``weights_override`` maps module names to integer weights (in the layer's weight format, e.g. a pruned
    workload's) used instead of the quantized float weights; ``bias_override`` to integer biases at the
    accumulator scale (a retrained workload's ``meta["bias"]``) used instead of the quantized float biases.
    """

    def __init__(self, gm: torch.fx.GraphModule, quants: dict[str, LayerQuant], *, capture: bool = False,
                 weights_override: dict[str, np.ndarray] | None = None,
                 bias_override: dict[str, np.ndarray] | None = None):
        override = dict(weights_override or {})
        bias_given = dict(bias_override or {})
        self.model = copy.deepcopy(gm).eval()
        self.quants = quants
        self.captured: dict[str, np.ndarray] = {}
        self.int_weights: dict[str, np.ndarray] = {}
        self.int_bias: dict[str, np.ndarray | None] = {}
        for name, mod in quant_modules(self.model).items():
            q = quants.get(name)
            if q is None:
                continue
            dtype = mod.weight.dtype
            if q.weight is not None:
                w = mod.weight.detach().to(torch.float64).numpy()
                qw = q.weight.quantize(w)
                if name in override:
                    given = np.asarray(override.pop(name))
                    if given.shape != qw.shape:
                        raise ValueError(f"weights_override[{name!r}]: shape {given.shape}, the layer has {qw.shape}")
                    lo, hi = q.weight.range
                    if given.size and (given.min() < lo or given.max() > hi):
                        raise ValueError(f"weights_override[{name!r}]: values outside the weight format's "
                                         f"range [{lo}, {hi}]")
                    qw = given.astype(np.int64)
                self.int_weights[name] = qw
                mod.weight = nn.Parameter(torch.from_numpy(q.weight.dequantize(qw)).to(dtype), requires_grad=False)
            if mod.bias is not None and q.act is not None and q.weight is not None:
                b = mod.bias.detach().to(torch.float64).numpy()
                qb = quantize_bias(b, q)
                if name in bias_given:
                    given_b = np.asarray(bias_given.pop(name), dtype=np.int64).reshape(-1)
                    if given_b.shape != qb.shape:
                        raise ValueError(f"bias_override[{name!r}]: shape {given_b.shape}, the layer has {qb.shape}")
                    qb = given_b
                self.int_bias[name] = qb
                deq = qb.astype(np.float64) * accumulator_scale(q, len(b))
                mod.bias = nn.Parameter(torch.from_numpy(deq).to(dtype), requires_grad=False)
            if q.act is not None:
                mod.register_forward_pre_hook(self._act_hook(name, q.act, capture))
        if override:
            raise ValueError(f"weights_override names no quantized layer: {sorted(override)}")
        if bias_given:
            raise ValueError(f"bias_override names no quantized layer with a bias: {sorted(bias_given)}")

    def _act_hook(self, name: str, fmt: TensorFormat, capture: bool):
        lo, hi = fmt.range
        if fmt.kind == "dfp":  # multiply by 2**frac: exact in floating point
            up, down = 2.0 ** fmt.frac_bits, 2.0 ** -fmt.frac_bits
            def to_int(a):
                return torch.clamp(torch.round(a * up), lo, hi)

            def to_real(q):
                return q * down
        else:
            if fmt.per_channel:
                raise ValueError(f"layer {name!r}: per-channel activation scales are not supported")
            scale = float(fmt.scales[0])

            def to_int(a):
                return torch.clamp(torch.round(a / scale), lo, hi)

            def to_real(q):
                return q * scale

        def hook(_m, args):
            q = to_int(args[0])
            if capture:
                self.captured[name] = q[0].detach().to(torch.float64).numpy().astype(np.int64)
            return (to_real(q),)

        return hook

    def __call__(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        return _forward(self.model, x, batch_size)


# --------------------------------------------------------------------------------------------- public API
def import_pytorch(
    model: nn.Module,
    images: np.ndarray,
    *,
    preprocess: Preprocess,
    scheme: str = "dfp16",
    name: str = "pytorch-model",
    profile=None,
    batch_size: int = 500,
    samples: int = 1,
) -> Workload:
    """A Workload of the model's conv / linear layers on the first ``samples`` of ``images``, quantized with
    ``scheme`` ("dfp8", "dfp16", "int8_per_channel") calibrated on all ``images`` (uint8 (N, H, W, C));
    ``preprocess`` maps such images to the model's float input (N, C, H, W). One sample gives layers named after
    their modules; more give one layer set per sample, ``<module>@i`` (as the TFLite importer).

    ``profile`` (a DataFrame from :func:`workloads.profiling.profile_precisions`) instead quantizes each layer
    to its profiled dynamic fixed point widths and splits (layers absent from it keep ``scheme``'s formats).
    """
    gm = fold_batchnorm(model)
    x = _prepare(images, preprocess)
    stats = calibrate(gm, x, batch_size)
    quants = layer_quants(gm, stats, scheme)
    if profile is not None:
        quants.update(profile_quants(profile, stats))
    if not 1 <= samples <= len(x):
        raise ValueError(f"samples ({samples}) must be between 1 and the number of images ({len(x)})")
    fq = FakeQuant(gm, quants, capture=True)
    layers = []
    for i in range(samples):
        fq(x[i:i + 1])
        suffix = f"@{i}" if samples > 1 else ""
        for lname, mod in quant_modules(fq.model).items():
            q = quants[lname]
            a, w = fq.captured[lname], fq.int_weights[lname]
            k = w.shape[0]
            bias = fq.int_bias.get(lname)
            meta = {
                "module": lname,
                "scheme": "profile" if profile is not None and lname in set(profile["layer"]) else scheme,
                **q.to_meta(),
                "bias": None if bias is None else [int(v) for v in bias],
                "accumulator_scale": [float(v) for v in accumulator_scale(q, k)],
            }
            common = dict(
                act_bits=q.act.bits, weight_bits=q.weight.bits, act_signed=q.act.signed, weight_signed=True, meta=meta,
            )
            if isinstance(mod, nn.Conv2d):
                if mod.padding_mode != "zeros" or isinstance(mod.padding, str) or mod.dilation != (1, 1):
                    raise ValueError(f"layer {lname!r}: only zero padding given as integers and no dilation "
                                     "are supported")
                if mod.stride[0] != mod.stride[1]:
                    raise ValueError(f"layer {lname!r}: unequal strides {mod.stride} are not supported")
                ph, pw = mod.padding
                layers.append(Layer.conv(
                    lname + suffix, a, w, stride=mod.stride[0], padding=(ph, ph, pw, pw), groups=mod.groups, **common,
                ))
            else:
                layers.append(Layer.fc(lname + suffix, a.reshape(-1), w, **common))
    meta = {
        "source": "pytorch",
        "scheme": scheme if profile is None else f"profile (else {scheme})",
        "calibration_images": int(len(x)),
        "samples": samples,
        "input_max_abs": {k: v[0] for k, v in stats.items()},
    }
    log.info("imported %s: %d layers, scheme %s", name, len(layers), meta["scheme"])
    return Workload(name, layers, meta)


def predict(
    model: nn.Module, images: np.ndarray, *, preprocess: Preprocess, scheme: str = "fp32",
    calib_images: np.ndarray | None = None, quants: dict[str, LayerQuant] | None = None, batch_size: int = 500,
    weights_override: dict[str, np.ndarray] | None = None, bias_override: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Logits (N, classes) of the model in fp32 (``scheme="fp32"``) or fake-quantized with ``scheme`` calibrated on
    ``calib_images`` (default: ``images``), or with explicit per-layer ``quants``; ``weights_override`` and
    ``bias_override`` as :class:`FakeQuant`."""
    gm = fold_batchnorm(model)
    x = _prepare(images, preprocess)
    if quants is None:
        if scheme == "fp32":
            return _forward(gm, x, batch_size).numpy()
        cx = x if calib_images is None else _prepare(calib_images, preprocess)
        quants = layer_quants(gm, calibrate(gm, cx, batch_size), scheme)
    return FakeQuant(gm, quants, weights_override=weights_override, bias_override=bias_override)(x,
                                                                                                 batch_size).numpy()


def quantized_accuracy(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, scheme: str, calib_images: np.ndarray | None = None,
    *, preprocess: Preprocess, batch_size: int = 500,
) -> float:
    """Top-1 accuracy (fraction) with fake-quantized weights and conv / linear inputs (``scheme="fp32"``: the
    float model). Calibrates on ``calib_images`` (default: ``images``)."""
    logits = predict(model, images, preprocess=preprocess, scheme=scheme, calib_images=calib_images,
                     batch_size=batch_size)
    return float(np.mean(logits.argmax(1) == np.asarray(labels)))


def fp32_accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess) -> float:
    """Top-1 accuracy of the float model."""
    return quantized_accuracy(model, images, labels, "fp32", preprocess=preprocess)
