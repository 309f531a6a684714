"""Methods with retraining (need torch): Bit-Pruner's whole flow, and any integer method retrained.

``bitpruner`` (Zhao et al., "Network Pruning for Bit-Serial Accelerators", IEEE TCAD 42(5), 2023): bit pruning
with lane-balanced restructuring (the ``bit_balance`` projection), reached progressively and kept in the loop
while fine-tuning. The progressive target follows the first author's public code: from the network's bit
sparsity s0, each stage moves a third of the remaining way to full sparsity, ``s = s + (1 - s) / 3``, until the
target is reached; every stage fine-tunes ``epochs`` epochs with the weights projected (budgets re-chosen from the
current weights at the start of every epoch), and ``final_epochs`` more run at the target. ``admm=True`` replaces
each stage's straight-through fine-tuning by ADMM epochs (auxiliary weights projected onto the stage's budget
set, scaled dual updates, ``rho`` growing by ``rho_growth`` per epoch); the final epochs then fine-tune the
projected weights.

``retrain`` fine-tunes with any integer method's constraint in the loop: ``magnitude`` and ``n_of_g`` keep the
zeros of the pruned weights (masks; ADMM re-prunes the auxiliary weights each epoch), ``bit_budget`` keeps every
weight within its term budget, ``bit_balance`` re-chooses the group budgets every epoch, ``swis`` re-decomposes
every epoch (each group keeps its shared positions in between), ``crossbar_rows`` keeps every all-zero row of the
pruned weights at zero, in every layer (a fixed mask read off the pruned weights: rows are never re-chosen, so the
compact crossbar mapping never grows; the other weights, pruned layers' or not, train freely).
``retrain_pruned`` fine-tunes a workload pruned elsewhere (``crossbar_rows`` at per-layer ratios, e.g.
``autoprune``'s result) the same way.

Retraining data and scoring: the CIFAR-10 test copy's ``train`` half (5,000 images, 500 per class, drawn with
``split_seed``); score the result on the other half with ``workloads.evaluate(subset="holdout")`` (see
``pruning.finetune``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np

from workloads import Workload

from .base import (
    METHODS,
    SPACE_TO_DEPTH,
    Param,
    PruneResult,
    PruningError,
    assemble,
    check_layers_param,
    register,
    selected,
)

TORCH_INSTALL = "pip install -e '.[torch]'"  # torch==2.13.0, the CPU wheel

RETRAIN_METHODS = ("magnitude", "n_of_g", "bit_budget", "bit_balance", "swis", "crossbar_rows")
FIXED_PROJECTIONS = ("crossbar_rows",)  # constraint read off the pruned weights: retrain_pruned takes any rates
TRAIN_OPTIONS = ("layers", "seed", "limit", "progress", "datasets_dir", "data_dir")  # call options, not parameters
TRAIN_PARAMS = (
    Param("epochs", int, "fine-tuning epochs (per stage for bitpruner)", 2, lo=0),
    Param("lr", float, "SGD learning rate (cosine decay; BN is folded, so keep it small)", 1e-3, lo=0.0),
    Param("batch_size", int, "training batch size", 128, lo=1),
    Param("admm", bool, "ADMM instead of straight-through fine-tuning", False),
    Param("rho", float, "ADMM penalty (integer units), grown by rho_growth per epoch", 1e-3, lo=0.0),
    Param("rho_growth", float, "ADMM: factor on rho per epoch", 1.5, lo=1.0),
    Param("final_epochs", int, "fine-tuning epochs at the end with the projection in the loop", 1, lo=0),
    Param("split_seed", int, "seed of the class-balanced train / holdout split of the CIFAR-10 test copy", 0,
          lo=0),
    Param("threads", int, "torch CPU threads (0: torch's choice)", 0, lo=0),
    Param("optimizer", str, "sgd (momentum 0.9) or adam (per-weight steps)", "sgd", choices=("sgd", "adam")),
    Param("validation", int, "train-half images left out of the fine-tuning data: those "
          "evaluate(subset='train', limit=validation) scores (a search's validation set)", 0, lo=0),
    Param("validation_fold", int, "which disjoint set of validation images is left out: fold k > 0 is the one "
          "evaluate(subset='train', limit=validation, fold=k) scores (k-fold checks)", 0, lo=0),
    Param("recalibrate", str, "before fine-tuning: none; bn (every conv's output statistics back to the unpruned "
          "network's: adaptive BN on the folded network); lstsq (every layer's kept weights re-fitted to the "
          "unpruned network's outputs by least squares)", "none", choices=("none", "bn", "lstsq")),
    Param("distill", float, "weight of knowledge distillation from the unpruned network (soft targets at "
          "temperature): 0 trains on the labels alone, 1 on the teacher alone", 0.0, lo=0.0, hi=1.0),
    Param("temperature", float, "distillation temperature (> 0)", 4.0, lo=0.0),
)


def _retraining():
    if importlib.util.find_spec("torch") is None:
        raise PruningError(f"retraining needs torch: {TORCH_INSTALL}")
    from . import finetune

    return finetune


def _config(params: dict[str, Any], seed: int, limit: int | None):
    rt = _retraining()
    return rt.TrainConfig(epochs=params["epochs"], batch_size=params["batch_size"], lr=params["lr"], seed=seed,
                          split_seed=params["split_seed"], threads=params["threads"] or None, limit=limit,
                          optimizer=params.get("optimizer", "sgd"), distill=params.get("distill", 0.0),
                          temperature=params.get("temperature", 4.0))


def _projection(method: str, params: dict[str, Any], layer_names: set[str], start: Workload | None = None):
    """The retraining projection of an integer method (only on ``layer_names``; the others pass through);
    ``start``: the pruned workload, for the methods whose constraint is read off the pruned weights."""
    rt = _retraining()
    from .bit_balance import balance_budgets
    from .bit_budget import budget_table
    from .magnitude import prune_layer
    from .n_of_g import keep_layer
    from .swis_decomposition import swis_tables

    def masked(rule):
        return rt.MaskProjection(lambda layer, w: rule(layer, w) if layer.name.partition("@")[0] in layer_names
                                 else w)

    def tabled(choose):
        def pick(layer, w):
            if layer.name.partition("@")[0] in layer_names:
                return choose(layer, w)
            from .base import magnitude_cap

            cap = magnitude_cap(layer)
            ident = np.minimum(np.arange(cap + 2), cap)[None, :]  # no constraint (saturate at the range)
            return ident, np.zeros(w.shape, np.int64)

        return rt.TableProjection(pick)

    if method == "magnitude":
        if params.get("scope", "layer") != "layer":
            raise PruningError("retrain: magnitude retraining prunes each layer by itself (scope 'layer')")
        return masked(lambda layer, w: prune_layer(layer, w, params["sparsity"]))
    if method == "n_of_g":
        return masked(lambda layer, w: keep_layer(layer, w, params["keep"], params["group"],
                                                  params["first_layer_space_to_depth"]))
    if method == "bit_budget":
        return tabled(lambda layer, w: (budget_table(layer, params["max_terms"], params["encoding"])[None, :],
                                        np.zeros(w.shape, np.int64)))
    if method == "bit_balance":
        return tabled(lambda layer, w: balance_budgets(layer, w, params["lanes"], params["target"],
                                                       params["first_layer_space_to_depth"]))
    if method == "swis":
        if params["decomposition"] != "swis":
            raise PruningError("retrain: swis retraining keeps the shared-position decomposition "
                               f"(decomposition 'swis', not {params['decomposition']!r})")
        return tabled(lambda layer, w: swis_tables(layer, w, params["shared_terms"], params["group_size"],
                                                   params["first_layer_space_to_depth"]))
    if method == "crossbar_rows":
        if start is None:
            raise PruningError("retrain: crossbar_rows retraining needs the pruned workload (start)")
        from .crossbar_rows import kept_rows

        # every layer's free rows stay free (the pruned layers' and any the others had): no layer's compact
        # mapping can grow
        return rt.FixedMaskProjection({layer.name.partition("@")[0]: kept_rows(layer, layer.weights,
                                                                              params["block_outputs"])
                                       for layer in start})
    raise PruningError(f"retrain: method {method!r} has no retraining projection ({', '.join(RETRAIN_METHODS)})")


def _result(net, workload: Workload, name: str, params: dict[str, Any], chosen: set[str], history: dict,
            data_source: str) -> PruneResult:
    """The retrained network as a PruneResult: every layer's weights and biases as the network holds them."""
    retrained = net.to_workload()
    new = {layer.name: layer.weights for layer in retrained}
    meta = {layer.name: layer.meta for layer in retrained}
    extra = {layer.name: {"retrained": True, "projected": layer.name.partition("@")[0] in chosen}
             for layer in retrained}
    res = assemble(workload, name, params, new, extra, new_meta=meta)
    res.workload.meta["pruning"][-1]["training_data"] = data_source
    return PruneResult(res.workload, res.report, name, {**params, "history": history})


def _run(original, start, name, params, chosen, projection, stages, *, seed, limit, progress, datasets_dir,
         data_dir):
    """Fine-tune ``start`` (``original`` pruned, or itself) through ``stages`` (projection settings per stage), then
    the final epochs at the last one; the report compares with ``original``."""
    rt = _retraining()
    cfg = _config(params, seed, limit)
    validation, fold = params.get("validation", 0), params.get("validation_fold", 0)
    if fold and not validation:
        raise PruningError(f"{name}: validation_fold ({fold}) needs validation (the fold's size) > 0")
    data = rt.TrainData.cifar10(params["split_seed"], datasets_dir, limit, validation, fold)
    net = rt.QuantNet(start, data_dir=data_dir)
    history: dict[str, list] = {"stage": [], "loss": []}
    recal = params.get("recalibrate", "none") != "none"
    # the unpruned network: what recalibration fits to and what distillation learns from
    teacher = rt.QuantNet(original, data_dir=data_dir) if recal or cfg.distill > 0 else None
    if recal:
        net.projection = projection(stages[0])
        net.refresh()
        fit = rt.recalibrate if params["recalibrate"] == "bn" else rt.reconstruct
        history["recalibration"] = fit(net, teacher, data)
    for k, stage in enumerate(stages):
        net.projection = projection(stage)
        net.refresh()
        if params["admm"]:
            losses = rt.admm(net, data, cfg, epochs=params["epochs"], rho=params["rho"],
                             rho_growth=params["rho_growth"], progress=progress, teacher=teacher)
        else:
            losses = rt.finetune(net, data, cfg, on_epoch=lambda e: net.refresh(), progress=progress,
                                 phase=f"stage {k + 1}/{len(stages)}", teacher=teacher)
        history["stage"] += [stage] * len(losses)
        history["loss"] += losses
    net.projection = projection(stages[-1])
    net.refresh()
    losses = rt.finetune(net, data, cfg, epochs=params["final_epochs"], on_epoch=lambda e: net.refresh(),
                         progress=progress, phase="final", teacher=teacher)
    history["stage"] += [stages[-1]] * len(losses)
    history["loss"] += losses
    return _result(net, original, name, params, chosen, history, data.source)


def progressive_targets(start: float, target: float) -> list[float]:
    """Bit-Pruner's progressive schedule: s <- s + (1 - s) / 3 from ``start`` until ``target`` (which ends it)."""
    out, s = [], start
    while s < target - 1e-12:
        s = min(target, s + (1 - s) / 3)
        out.append(s)
    return out or [target]


@register("bitpruner",
          Param("target", float, "bit sparsity every layer reaches (sign-magnitude)", 0.85, lo=0.0, hi=1.0),
          Param("lanes", int, "weights that run in lockstep: the lanes of a weight brick", 16, lo=1),
          SPACE_TO_DEPTH,
          *TRAIN_PARAMS,
          summary="Bit-Pruner: progressive lane-balanced bit pruning with retraining (STE or ADMM; needs torch)",
          needs_torch=True, options=TRAIN_OPTIONS)
def bitpruner(workload: Workload, *, layers: Sequence[str] | None = None, seed: int = 0, limit: int | None = None,
              progress=None, datasets_dir=None, data_dir=None, **params: Any) -> PruneResult:
    """Bit-Pruner's flow on a PyTorch built-in workload (see the module docstring); ``limit``: train on only that
    many images (tests)."""
    check_layers_param(layers)
    params = METHODS["bitpruner"].bind(params)
    chosen = {layer.name.partition("@")[0] for layer in selected(workload, layers, "bitpruner")}
    from .bit_balance import bit_balance

    start = float(bit_balance(workload, target=0.0, layers=layers).totals()["bit_sparsity"])
    stages = progressive_targets(start, params["target"])
    base = {k: params[k] for k in ("lanes", "first_layer_space_to_depth")}
    return _run(workload, workload, "bitpruner", params, chosen,
                lambda s: _projection("bit_balance", {**base, "target": s}, chosen), stages, seed=seed,
                limit=limit, progress=progress, datasets_dir=datasets_dir, data_dir=data_dir)


@register("retrain",
          Param("method", str, "the integer method whose constraint stays in the loop", "bit_budget",
                choices=RETRAIN_METHODS),
          *TRAIN_PARAMS,
          summary="an integer method (magnitude, n_of_g, bit_budget, bit_balance, swis, crossbar_rows) with retraining "
                  "(needs torch)",
          needs_torch=True, options=TRAIN_OPTIONS, wraps=True)
def retrain(workload: Workload, *, layers: Sequence[str] | None = None, seed: int = 0, limit: int | None = None,
            progress=None, datasets_dir=None, data_dir=None, **params: Any) -> PruneResult:
    """Prune ``workload`` with ``method`` (its own parameters among ``params``), then fine-tune with its
    constraint in the loop; the result's method is ``<method>+retrain`` (``+admm``)."""
    check_layers_param(layers)
    own, theirs, mine = _split("retrain", params, RETRAIN_METHODS)
    pruned = own.function(workload, layers=layers, seed=seed, **theirs)
    return _retrain_from(workload, pruned.workload, own, theirs, mine, layers=layers, seed=seed, limit=limit,
                         progress=progress, datasets_dir=datasets_dir, data_dir=data_dir)


def retrain_pruned(original: Workload, pruned: Workload, *, layers: Sequence[str] | None = None, seed: int = 0,
                   limit: int | None = None, progress=None, datasets_dir=None, data_dir=None,
                   **params: Any) -> PruneResult:
    """Fine-tune ``pruned``, ``original`` pruned by ``method`` on ``layers`` at whatever per-layer rates (e.g.
    ``autoprune``'s result), with the method's constraint read off ``pruned`` kept in the loop (``method`` one of
    ``FIXED_PROJECTIONS``: ``crossbar_rows``, whose freed rows stay zero). ``params``: ``method``, its other
    parameters (not its rate) and the training parameters, as ``retrain`` takes them; the report compares with
    ``original``; the result's method is ``<method>+retrain``."""
    check_layers_param(layers)
    if not isinstance(original, Workload) or not isinstance(pruned, Workload):
        raise PruningError("retrain_pruned: original and pruned must be workloads")
    if [layer.name for layer in original] != [layer.name for layer in pruned]:
        raise PruningError(f"retrain_pruned: pruned ({pruned.name!r}) must have the layers of original "
                           f"({original.name!r})")
    params = {"method": "crossbar_rows", **params}
    own, theirs, mine = _split("retrain_pruned", params, FIXED_PROJECTIONS, rate_free=True)
    return _retrain_from(original, pruned, own, theirs, mine, layers=layers, seed=seed, limit=limit,
                         progress=progress, datasets_dir=datasets_dir, data_dir=data_dir)


def _split(caller: str, params: dict[str, Any], allowed: tuple[str, ...], rate_free: bool = False):
    """(the inner method, its bound parameters, the bound training parameters) of ``retrain``'s ``params``;
    ``rate_free``: the inner method's rate is not among them (a placeholder 0 is bound)."""
    train_names = {p.name for p in METHODS["retrain"].params}
    method = params.get("method")
    if method not in allowed or method not in METHODS or METHODS[method].needs_torch:
        raise PruningError(f"{caller}: method ({method!r}) must be one of: {', '.join(allowed)}")
    mine = METHODS["retrain"].bind({k: v for k, v in params.items() if k in train_names})
    own = METHODS[method]
    theirs = {k: v for k, v in params.items() if k not in train_names}
    if rate_free:
        from .pareto import RATE_PARAMS

        rate = RATE_PARAMS[method]
        if rate in theirs:
            raise PruningError(f"{caller}: params must not set {rate!r}: the rates are the pruned workload's")
        theirs = {k: v for k, v in own.bind({**theirs, rate: 0.0}).items() if k != rate}
    else:
        theirs = own.bind(theirs)
    return own, theirs, mine


def _retrain_from(original: Workload, pruned: Workload, own, theirs: dict, mine: dict, *, layers, seed, limit,
                  progress, datasets_dir, data_dir) -> PruneResult:
    """Fine-tune ``pruned`` (``original`` pruned by ``own``) with ``own``'s constraint in the loop."""
    chosen = {layer.name.partition("@")[0] for layer in selected(original, layers, own.name)}
    projection = _projection(own.name, theirs, chosen, start=pruned)
    name = f"{own.name}+{'admm' if mine['admm'] else 'retrain'}"
    return _run(original, pruned, name, {**theirs, **mine}, chosen, lambda _: projection, [None], seed=seed,
                limit=limit, progress=progress, datasets_dir=datasets_dir, data_dir=data_dir)
