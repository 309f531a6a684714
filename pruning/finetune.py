"""Fine-tuning with the weights projected in the loop: the retraining half of the pruning methods (needs torch).

Data. There is no CIFAR-10 training set offline: fine-tuning uses the ``train`` half of the CIFAR-10 test copy in
``../shared/datasets`` (``workloads.datasets.cifar10_split``: 500 images per class, drawn with ``split_seed``),
and every accuracy of a retrained workload is measured on the other half only
(``workloads.evaluate(subset="holdout")``). Augmentation: random crops of the 4-pixel zero-padded image and
horizontal flips, drawn from ``seed``.

The network. A PyTorch built-in workload (``resnet20-cifar10``, ``resnet56-cifar10``) is rebuilt as its importer
quantized it: batch norm folded into the convolutions, every conv / linear computing on the formats its layer
records (``meta``: activation and weight formats). Activations are rounded and saturated to their format, with a
straight-through gradient. Each weight tensor is a trainable float tensor ``w``; the forward pass uses
``P(round(w / scale)) * scale``, where ``P`` is the method's projection (a mask, a bit budget, per-group budgets),
with a straight-through gradient (d out / d w = 1), so the float weights keep learning while the network always
computes with weights in the method's constraint set. Biases train too (their integers, at the accumulator scale,
are written into the layers' ``meta["bias"]``, which ``evaluate`` runs). Training starts from the workload's own
integer weights and biases, so a pruned workload is fine-tuned from where pruning left it.

ADMM (``admm=True``): the forward pass uses the rounded weights without projection; an auxiliary copy
``Z = P(W + U)`` (in integer units) and the scaled dual ``U`` are updated every epoch (``U += W - Z``), and the
loss gains ``rho / 2 * mean((W - Z + U)^2)``, with ``rho`` multiplied by ``rho_growth`` every epoch. After the ADMM
epochs the weights are projected once and fine-tuned with the projection in the loop (``final_epochs``).

Optimizer: SGD with momentum (or Adam, ``optimizer="adam"``), cosine learning-rate decay over each fine-tuning
phase. Deterministic for a seed on a given machine (torch's CPU kernels are deterministic; threads are set by
``threads``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from workloads import Layer, Workload, WorkloadError

from .base import PruningError

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")
Progress = Callable[[str, int, int, dict], None]  # (phase, step, steps, figures such as {"loss": ...})


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune: epochs over the 5,000 training images, batch size, SGD settings, seeds, threads."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3  # BN is folded into the convolutions: 1e-2 diverges
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: bool = True
    seed: int = 0
    split_seed: int = 0
    threads: int | None = None  # torch CPU threads (default: torch's choice)
    optimizer: str = "sgd"  # "sgd" (momentum) or "adam" (per-weight steps: the folded layers' scales differ widely)
    limit: int | None = None  # use only ``limit`` evenly spaced training images (tests)
    distill: float = 0.0  # weight of the distillation loss against the teacher (the rest: cross-entropy)
    temperature: float = 4.0  # distillation temperature

    def check(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "epochs" else 1):
                kind = "non-negative" if name == "epochs" else "positive"
                raise PruningError(f"retraining: {name} ({v!r}) must be a {kind} integer")
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise PruningError(f"retraining: {name} ({v!r}) must be a finite non-negative number")
        if self.optimizer not in OPTIMIZERS:
            raise PruningError(f"retraining: optimizer ({self.optimizer!r}) must be one of: {', '.join(OPTIMIZERS)}")
        if isinstance(self.distill, bool) or not isinstance(self.distill, (int, float)) or not 0 <= self.distill <= 1:
            raise PruningError(f"retraining: distill ({self.distill!r}) must be a number in [0, 1]")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise PruningError(f"retraining: temperature ({t!r}) must be a positive number")


# ----------------------------------------------------------------------------- projections
class Projection:
    """A method's constraint set for integer weights. ``full`` projects any weights (numpy, per layer, possibly
    expensive: used by ADMM and to ``refresh``); ``refresh`` fixes a cheap form of the constraint from given
    weights (a mask, budgets); ``apply`` projects a torch tensor of integer-valued weights onto that fixed form."""

    name = "projection"

    def full(self, layer: Layer, weights: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def refresh(self, layers: dict[str, Layer], weights: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def apply(self, name: str, q):
        raise NotImplementedError


class MaskProjection(Projection):
    """Zeros stay zero: the mask of a pruned workload (``full``: the pruning rule ``rule(layer, weights)``)."""

    name = "mask"

    def __init__(self, rule: Callable[[Layer, np.ndarray], np.ndarray]):
        self.rule = rule
        self.masks: dict = {}

    def full(self, layer: Layer, weights: np.ndarray) -> np.ndarray:
        return self.rule(layer, weights)

    def refresh(self, layers, weights) -> None:
        self.masks = {n: torch.from_numpy((self.full(layers[n], w) != 0).astype(np.float32))
                      for n, w in weights.items()}

    def apply(self, name: str, q):
        return q * self.masks[name].to(q.dtype)


class FixedMaskProjection(Projection):
    """Fixed masks (bool arrays per layer name, shaped like the weights; a layer without one is not constrained):
    the weights where a mask is False stay zero whatever the training does, e.g. the freed rows of a pruned
    workload. Unlike ``MaskProjection``, nothing is re-chosen at a refresh."""

    name = "fixed mask"

    def __init__(self, masks: dict[str, np.ndarray]):
        self.keep = {n: np.asarray(m, dtype=bool) for n, m in masks.items()}
        self.masks = {n: torch.from_numpy(m.astype(np.float32)) for n, m in self.keep.items()}

    def full(self, layer: Layer, weights: np.ndarray) -> np.ndarray:
        keep = self.keep.get(layer.name.partition("@")[0])
        return weights if keep is None else np.where(keep, weights, 0).astype(weights.dtype)

    def refresh(self, layers, weights) -> None:
        pass

    def apply(self, name: str, q):
        mask = self.masks.get(name)
        return q if mask is None else q * mask.to(q.dtype)


class TableProjection(Projection):
    """Every weight's magnitude through a nearest-allowed-value table chosen per weight (a bit budget per weight,
    per lane group or per layer); the sign is kept."""

    name = "table"

    def __init__(self, choose: Callable[[Layer, np.ndarray], tuple[np.ndarray, np.ndarray]]):
        """``choose(layer, weights)`` -> (tables (B, cap + 2) int64, index of the table of every weight)."""
        self.choose = choose
        self.tables: dict = {}
        self.which: dict = {}

    def full(self, layer: Layer, weights: np.ndarray) -> np.ndarray:
        tables, which = self.choose(layer, weights)
        w = weights.astype(np.int64)
        return np.sign(w) * tables[which, np.abs(w)]

    def refresh(self, layers, weights) -> None:
        for n, w in weights.items():
            tables, which = self.choose(layers[n], w)
            self.tables[n] = torch.from_numpy(tables.astype(np.float32))
            self.which[n] = torch.from_numpy(which.astype(np.int64))

    def apply(self, name: str, q):
        t, which = self.tables[name], self.which[name]
        mag = q.abs().clamp(max=t.shape[1] - 1).long()
        return q.sign() * t[which, mag].to(q.dtype)


# ----------------------------------------------------------------------------- the network
class QuantNet:
    """A PyTorch built-in workload's network with trainable float weights, computing on its recorded formats
    through a projection (see the module docstring)."""

    def __init__(self, workload: Workload, *, data_dir=None):
        from workloads import registry
        from workloads.evaluate import _one_weight_set
        from workloads.importers.pytorch import fold_batchnorm, quant_modules
        from workloads.models.cifar_resnet import load_cifar_resnet
        from workloads.quantize import LayerQuant, accumulator_scale

        name = workload.meta.get("builtin")
        entry = registry.BUILTINS.get(name) if isinstance(name, str) else None
        if entry is None or entry.importer != "pytorch":
            raise PruningError(f"retraining needs a PyTorch built-in workload (resnet20-cifar10, resnet56-cifar10); "
                               f"workload {workload.name!r} has builtin {name!r}")
        self.workload = workload
        self.layers = _one_weight_set(workload, quantized=True)
        gm = fold_batchnorm(load_cifar_resnet(entry.depth, registry.model_path(name, data_dir)))
        self.modules = quant_modules(gm)
        if set(self.modules) != set(self.layers):
            raise WorkloadError(f"retraining: workload {workload.name!r} layers {sorted(self.layers)} do not match the "
                                f"model's {sorted(self.modules)}")
        self.model = gm.float()
        self.quants = {n: LayerQuant.from_meta(layer.meta) for n, layer in self.layers.items()}
        self.scale: dict = {}
        self.acc_scale: dict = {}
        self.projection: Projection | None = None
        self.project = True  # False during ADMM's free phase
        for n, mod in self.modules.items():
            layer, q = self.layers[n], self.quants[n]
            s = np.asarray(q.weight.scale_array(layer.weights.ndim), dtype=np.float64)
            self.scale[n] = torch.from_numpy(np.broadcast_to(s, s.shape).astype(np.float32).copy())
            w = torch.from_numpy((layer.weights.astype(np.float64) * s).astype(np.float32))
            mod.weight = nn.Parameter(w, requires_grad=True)
            k = layer.out_channels
            self.acc_scale[n] = accumulator_scale(q, k)
            if mod.bias is not None:
                bias = layer.meta.get("bias")
                b = (np.asarray(bias, np.float64) * self.acc_scale[n]) if bias is not None else \
                    mod.bias.detach().double().numpy()
                mod.bias = nn.Parameter(torch.from_numpy(b.astype(np.float32)), requires_grad=True)
            nn.utils.parametrize.register_parametrization(mod, "weight", _WeightQuant(self, n))
            mod.register_forward_pre_hook(_act_hook(q.act))

    # ----------------------------------------------------------------- integers
    def latent_ints(self) -> dict[str, np.ndarray]:
        """round(w / scale), saturated to each weight format (no projection)."""
        out = {}
        for n, mod in self.modules.items():
            w = mod.parametrizations.weight.original.detach()
            lo, hi = self.quants[n].weight.range
            out[n] = np.clip(np.rint((w / self.scale[n]).double().numpy()), lo, hi).astype(np.int64)
        return out

    def int_weights(self) -> dict[str, np.ndarray]:
        """The integer weights the network computes with (projected)."""
        ints = self.latent_ints()
        if self.projection is None:
            return ints
        return {n: self.projection.full(self.layers[n], w) for n, w in ints.items()}

    def int_biases(self) -> dict[str, np.ndarray]:
        from workloads.quantize import quantize_bias

        return {n: quantize_bias(mod.bias.detach().double().numpy(), self.quants[n])
                for n, mod in self.modules.items() if mod.bias is not None}

    def to_workload(self, weights: dict[str, np.ndarray] | None = None) -> Workload:
        """The workload with the network's integer weights (``weights`` if given) and biases, in every input's
        layer copy (``name@i``)."""
        weights = self.int_weights() if weights is None else weights
        biases = self.int_biases()
        layers = []
        for layer in self.workload:
            base = layer.name.partition("@")[0]
            meta = dict(layer.meta)
            if base in biases:
                meta["bias"] = [int(v) for v in biases[base]]
            layers.append(layer.with_values(weights=weights[base].astype(np.int32), meta=meta))
        return Workload(self.workload.name, layers, self.workload.meta)

    def refresh(self) -> None:
        """Fix the projection's cheap form from the current (unprojected) weights."""
        if self.projection is not None:
            self.projection.refresh(self.layers, self.latent_ints())

    def parameters(self):
        return self.model.parameters()


class _WeightQuant(nn.Module):
    """The parametrization of a weight: ``P(round(w / s)) * s`` with a straight-through gradient."""

    def __init__(self, net: QuantNet, name: str):
        super().__init__()
        self.net, self.name = [net], name  # a list: the network is not a submodule of its own parametrization

    def forward(self, w):
        net, name = self.net[0], self.name
        s = net.scale[name]
        q = w / s
        lo, hi = net.quants[name].weight.range
        r = torch.clamp(torch.round(q), lo, hi)
        if net.project and net.projection is not None:
            r = net.projection.apply(name, r)
        return (q + (r - q).detach()) * s


def _act_hook(fmt):
    lo, hi = fmt.range
    scale = math.ldexp(1.0, -fmt.frac_bits) if fmt.kind == "dfp" else float(fmt.scales[0])

    def hook(_module, args):
        x = args[0] / scale
        r = torch.clamp(torch.round(x), lo, hi)
        return ((x + (r - x).detach()) * scale,)

    return hook


# ----------------------------------------------------------------------------- data
@dataclass
class TrainData:
    """The fine-tuning images (uint8 (N, 32, 32, 3)) and labels: the ``train`` half of the CIFAR-10 test copy."""

    images: np.ndarray
    labels: np.ndarray
    source: str = "CIFAR-10 test copy, train half (500 per class)"
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def cifar10(cls, split_seed: int = 0, datasets_dir=None, limit: int | None = None,
                validation: int = 0, validation_fold: int = 0) -> TrainData:
        """The train half; ``validation``: leave out the images ``evaluate(subset="train", limit=validation,
        fold=validation_fold)`` scores (a validation set a search can judge fine-tuned networks on); ``limit``:
        then keep that many, evenly spaced."""
        from workloads.datasets import cifar10_split, dataset_dir, evenly_spaced, load_cifar10_test

        folder = dataset_dir(datasets_dir)
        labels = load_cifar10_test(folder)[1]
        train, _ = cifar10_split(labels, split_seed)
        source = "CIFAR-10 test copy, train half (500 per class)"
        if validation:
            try:
                train = np.setdiff1d(train, evenly_spaced(train, validation, validation_fold))
            except ValueError as e:  # a fold past the end of the train half
                raise PruningError(f"validation_fold {validation_fold}, train half: {e}") from None
            fold = f" (fold {validation_fold})" if validation_fold else ""
            source += f" without the {validation} validation images{fold}"
        train = evenly_spaced(train, limit)
        images, labels = load_cifar10_test(folder, train)
        return cls(images, labels, source=source, indices=train)


def _batches(data: TrainData, cfg: TrainConfig, epoch: int):
    """Shuffled, augmented, normalized batches of one epoch (seeded by (seed, epoch))."""
    from workloads.models.cifar_resnet import cifar_preprocess

    rng = np.random.default_rng([cfg.seed, epoch])
    order = rng.permutation(len(data.labels))
    for i in range(0, len(order), cfg.batch_size):
        idx = order[i:i + cfg.batch_size]
        imgs = data.images[idx]
        if cfg.augment:
            padded = np.pad(imgs, ((0, 0), (4, 4), (4, 4), (0, 0)))
            dy, dx = rng.integers(0, 9, len(idx)), rng.integers(0, 9, len(idx))
            flip = rng.random(len(idx)) < 0.5
            imgs = np.stack([padded[j, dy[j]:dy[j] + 32, dx[j]:dx[j] + 32] for j in range(len(idx))])
            imgs[flip] = imgs[flip][:, :, ::-1]
        yield cifar_preprocess(np.ascontiguousarray(imgs)), torch.from_numpy(data.labels[idx])


def finetune(net: QuantNet, data: TrainData, cfg: TrainConfig, *, epochs: int | None = None,
             penalty: Callable[[], object] | None = None, on_epoch: Callable[[int], None] | None = None,
             progress: Progress | None = None, phase: str = "finetune", teacher: QuantNet | None = None
             ) -> list[float]:
    """SGD over ``data`` for ``epochs`` (default ``cfg.epochs``) with cosine learning-rate decay; ``penalty()`` is
    added to the loss; ``on_epoch(e)`` runs before each epoch. With ``cfg.distill`` = a > 0 and a ``teacher`` (the
    unpruned network), the loss is (1 - a) x cross-entropy + a x T^2 x KL(teacher || network) on the logits at
    temperature T = ``cfg.temperature`` (Hinton et al. 2015), the teacher seeing the same augmented batch. Returns
    the mean training loss of every epoch."""
    cfg.check()
    if cfg.distill > 0 and teacher is None:
        raise PruningError("retraining: distill needs a teacher network")
    epochs = cfg.epochs if epochs is None else epochs
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps = epochs * math.ceil(len(data.labels) / cfg.batch_size)
    step = 0
    losses = []
    net.model.train()
    for e in range(epochs):
        if on_epoch is not None:
            on_epoch(e)
        total, count = 0.0, 0
        for x, y in _batches(data, cfg, e):
            for g in opt.param_groups:
                g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
            opt.zero_grad()
            logits = net.model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            if cfg.distill > 0:
                loss = (1 - cfg.distill) * loss + cfg.distill * _distillation(logits, teacher, x, cfg.temperature)
            if penalty is not None:
                loss = loss + penalty()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
            step += 1
            if progress is not None:
                progress(phase, step, steps, {"loss": float(loss.detach())})
        losses.append(total / max(count, 1))
        log.info("%s epoch %d/%d: loss %.4f", phase, e + 1, epochs, losses[-1])
    net.model.eval()
    return losses


def _distillation(logits, teacher: QuantNet, x, temperature: float):
    """T^2 x KL(softmax(teacher / T) || softmax(logits / T)), batch mean (the soft-target loss)."""
    with torch.no_grad():
        teacher.model.eval()
        target = torch.nn.functional.log_softmax(teacher.model(x) / temperature, dim=1)
    own = torch.nn.functional.log_softmax(logits / temperature, dim=1)
    kl = torch.nn.functional.kl_div(own, target, reduction="batchmean", log_target=True)
    return temperature * temperature * kl


def _calibration_batch(data: TrainData, images: int):
    """``images`` evenly spaced training images, preprocessed (no augmentation): what recalibration fits on."""
    from workloads.models.cifar_resnet import cifar_preprocess

    pick = np.linspace(0, len(data.labels) - 1, min(images, len(data.labels))).round().astype(np.int64)
    return cifar_preprocess(np.ascontiguousarray(data.images[pick]))


def _forward_with_hooks(model: QuantNet, x, hook) -> None:
    """One evaluation pass of ``model`` on ``x`` with the forward hook ``hook(name)`` on every layer module."""
    handles = [m.register_forward_hook(hook(n)) for n, m in model.modules.items()]
    try:
        model.model.eval()
        model.model(x)
    finally:
        for h in handles:
            h.remove()


def recalibrate(net: QuantNet, reference: QuantNet, data: TrainData, images: int = 512) -> dict[str, float]:
    """Adaptive batch norm for a network whose batch norm is folded (EagleEye's "adaptive BN", Li et al. 2020):
    every conv's output channels are brought back to the mean and standard deviation the ``reference`` network's
    (the unpruned one's) have on the same ``images`` evenly spaced training images (no augmentation), conv by conv
    in execution order, each seeing its corrected inputs; the affine correction out * a + c is folded into the
    weights (w * a, per output channel: zero rows stay zero) and the bias (b * a + c). This is what recomputing the
    unfolded network's BN statistics on the pruned network would do. Linear layers (no batch norm) are left alone.
    Returns the mean |log a| of every corrected conv (how far its scale had drifted)."""
    x = _calibration_batch(data, images)
    target: dict[str, tuple] = {}

    def stats(out):
        return out.mean(dim=(0, 2, 3)), out.std(dim=(0, 2, 3))

    def record(name):
        def hook(_mod, _args, out):
            if out.ndim == 4:
                target[name] = stats(out)

        return hook

    fix: dict[str, tuple] = {}

    def correct(name):
        def hook(_mod, _args, out):
            if out.ndim != 4 or name not in target:
                return None
            (mu, sd), (mu2, sd2) = target[name], stats(out)
            a = torch.where(sd2 > 1e-12, sd / torch.clamp(sd2, min=1e-12), torch.ones_like(sd))
            c = mu - mu2 * a
            fix[name] = (a, c)
            return out * a.view(1, -1, 1, 1) + c.view(1, -1, 1, 1)

        return hook

    with torch.no_grad():
        _forward_with_hooks(reference, x, record)
        _forward_with_hooks(net, x, correct)
        drift = {}
        for n, (a, c) in fix.items():
            mod = net.modules[n]
            w = mod.parametrizations.weight.original
            w.mul_(a.view(-1, *([1] * (w.ndim - 1))))
            if mod.bias is None:
                mod.bias = nn.Parameter(c.clone(), requires_grad=True)
            else:
                mod.bias.mul_(a).add_(c)
            drift[n] = float(torch.log(a).abs().mean())
    log.info("recalibrated %d convs: mean |log scale| %.3f", len(drift), float(np.mean(list(drift.values()) or [0])))
    return drift


def reconstruct(net: QuantNet, reference: QuantNet, data: TrainData, images: int = 512, positions: int = 8192,
                ridge: float = 1e-3, seed: int = 0) -> dict[str, float]:
    """Least-squares reconstruction after pruning (as channel pruning's, He et al. 2017, for the rows a mask
    projection keeps): layer by layer in execution order, every pruned layer's (its weights differ from the
    reference's) weights on its kept inputs and its bias are re-fitted so that, on the inputs it now receives (the
    already reconstructed layers' outputs), it reproduces the ``reference`` (unpruned) network's outputs of that
    layer, on ``images`` evenly spaced training images (at most ``positions`` output positions drawn with
    ``seed``); ridge ``ridge`` x the mean diagonal of the normal equations. The weights the projection zeroes stay
    zero; layers the pruning left alone keep their weights (re-fitting them on a few images only adds noise: on
    the unpruned network this is the identity). Returns every re-fitted layer's relative residual
    (||fit - target|| / ||target||)."""
    x = _calibration_batch(data, images)
    rng = np.random.default_rng(seed)
    target: dict[str, torch.Tensor] = {}

    def record(name):
        def hook(_mod, _args, out):
            target[name] = out

        return hook

    residual: dict[str, float] = {}

    def refit(name):
        def hook(mod, args, out):
            inp = args[0]
            conv = out.ndim == 4
            if np.array_equal(net.layers[name].weights, reference.layers[name].weights):
                return None  # not pruned: left as it is (its inputs may have changed, but it keeps its weights)
            mask = getattr(net.projection, "masks", {}).get(name)  # a mask projection's zeros stay zero
            ys = target[name].flatten(2).transpose(1, 2).reshape(-1, out.shape[1]) if conv else target[name]
            rows = torch.arange(len(ys)) if len(ys) <= positions else \
                torch.from_numpy(np.sort(rng.choice(len(ys), positions, replace=False)))
            ys = ys[rows].double()
            if conv:
                if mod.groups != 1:
                    return None
                per = out.shape[2] * out.shape[3]  # output positions per image
                parts = []
                for i in range(0, len(inp), 64):  # unfold 64 images at a time, keep the drawn positions
                    cols = nn.functional.unfold(inp[i:i + 64], mod.kernel_size, mod.dilation, mod.padding,
                                                mod.stride)
                    cols = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (images * positions, C * R * S)
                    mine = rows[(rows >= i * per) & (rows < (i + 64) * per)] - i * per
                    parts.append(cols[mine])
                xs = torch.cat(parts).double()
            else:
                xs = inp[rows].double()
            w = mod.parametrizations.weight.original
            k = w.shape[0]
            scale = net.scale[name].double().reshape(k, -1) if net.scale[name].numel() > 1 else \
                net.scale[name].double().reshape(1, 1)
            keep = torch.ones(k, xs.shape[1], dtype=torch.bool) if mask is None else mask.reshape(k, -1) != 0
            new_w = torch.zeros(k, xs.shape[1], dtype=torch.float64)
            new_b = torch.zeros(k, dtype=torch.float64)
            patterns, which = torch.unique(keep, dim=0, return_inverse=True)
            for p, pattern in enumerate(patterns):
                outs = torch.nonzero(which == p).flatten()
                a = torch.cat([xs[:, pattern], torch.ones(len(xs), 1, dtype=torch.float64)], dim=1)
                gram = a.T @ a
                lam = ridge * float(torch.diagonal(gram)[:-1].mean()) if pattern.any() else 0.0
                reg = torch.eye(len(gram), dtype=torch.float64) * lam
                reg[-1, -1] = 0.0
                sol = torch.linalg.solve(gram + reg, a.T @ ys[:, outs])  # (kept + 1, outs)
                new_w[outs[:, None], torch.nonzero(pattern).flatten()[None, :]] = sol[:-1].T
                new_b[outs] = sol[-1]
            lo, hi = net.quants[name].weight.range
            new_w = torch.maximum(torch.minimum(new_w, hi * scale), lo * scale)  # within the weight format
            with torch.no_grad():
                w.copy_(new_w.reshape(w.shape).to(w.dtype))
                if mod.bias is None:
                    mod.bias = nn.Parameter(new_b.to(w.dtype), requires_grad=True)
                else:
                    mod.bias.copy_(new_b.to(w.dtype))
            fit = (nn.functional.conv2d(inp, mod.weight, mod.bias, mod.stride, mod.padding, mod.dilation)
                   if conv else nn.functional.linear(inp, mod.weight, mod.bias))
            residual[name] = float((fit - target[name]).norm() / target[name].norm().clamp(min=1e-12))
            return fit

        return hook

    with torch.no_grad():
        _forward_with_hooks(reference, x, record)
        _forward_with_hooks(net, x, refit)
    log.info("reconstructed %d layers: mean relative residual %.3f", len(residual),
             float(np.mean(list(residual.values()) or [0])))
    return residual


def admm(net: QuantNet, data: TrainData, cfg: TrainConfig, *, epochs: int, rho: float = 1e-3,
         rho_growth: float = 1.5, progress: Progress | None = None, teacher: QuantNet | None = None) -> list[float]:
    """ADMM epochs (see the module docstring); the network's projection gives the constraint set. Returns the
    training losses; the weights are NOT projected at the end (the caller projects and fine-tunes)."""
    proj = net.projection
    if proj is None:
        raise PruningError("ADMM needs a projection")
    names = list(net.modules)
    state = {"rho": rho}
    w_int = {n: torch.from_numpy(w.astype(np.float32)) for n, w in net.latent_ints().items()}
    u = {n: torch.zeros_like(w_int[n]) for n in names}
    z = {n: torch.from_numpy(proj.full(net.layers[n], w_int[n].numpy().astype(np.int64)).astype(np.float32))
         for n in names}

    def on_epoch(e: int) -> None:
        if e == 0:
            return
        ints = net.latent_ints()
        for n in names:
            w = torch.from_numpy(ints[n].astype(np.float32))
            target = np.rint((w + u[n]).numpy()).astype(np.int64)
            lo, hi = net.quants[n].weight.range
            z[n] = torch.from_numpy(proj.full(net.layers[n], np.clip(target, lo, hi)).astype(np.float32))
            u[n] += w - z[n]
        state["rho"] *= rho_growth

    def penalty():
        total = 0.0
        for n, mod in net.modules.items():
            w = mod.parametrizations.weight.original / net.scale[n]
            total = total + ((w - z[n] + u[n]) ** 2).mean()
        return state["rho"] / 2 * total

    net.project = False
    try:
        return finetune(net, data, cfg, epochs=epochs, penalty=penalty, on_epoch=on_epoch, progress=progress,
                        phase="admm", teacher=teacher)
    finally:
        net.project = True
