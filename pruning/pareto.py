"""A per-layer rate search with two measured objectives: cycles on an accelerator and accuracy (no retraining).

Given an integer method with a rate parameter (``bit_balance``'s ``target``, ``magnitude``'s ``sparsity``,
``bit_budget``'s ``max_terms``, ``crossbar_rows``' ``ratio``) and candidate ``rates``, every layer may take any
rate. The search:

1. measures each layer alone at each rate: its cycles (``layer_cycles(layer)``, e.g. the simulator on a preset:
   layers run one after the other, so a workload's cycles are the sum of its layers') and the accuracy of the
   network with only that layer pruned at that rate (``accuracy(workload)``, e.g. ``workloads.evaluate`` on a
   subset of images), i.e. the layer's sensitivity;
2. treats the accuracy losses as additive and finds, for a range of loss budgets, the per-layer rates that
   minimise the cycles within the budget (a multiple-choice knapsack, solved exactly by dynamic programming over
   the budget quantized into ``resolution`` steps);
3. builds every distinct choice, measures its real accuracy and cycles, and keeps the measured Pareto frontier.

``pareto`` returns a ``ParetoResult``: its ``workload`` / ``report`` are the fastest measured point whose accuracy
is within ``max_drop`` of the unpruned network's (the unpruned network if none is), ``frontier`` is the table of
measured points (one row each: cycles, accuracy, predicted accuracy, whether it is on the frontier, the rate of
every layer) and ``points`` their PruneResults. Measure accuracy for the search on images the final score does not
use (e.g. the CIFAR-10 copy's ``train`` half; report the ``holdout`` half).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workloads import Layer, Workload

from .base import METHODS, PruneResult, PruningError, assemble, check_layers_param, selected

RATE_PARAMS = {"bit_balance": "target", "magnitude": "sparsity", "bit_budget": "max_terms", "n_of_g": "keep",
               "crossbar_rows": "ratio"}


@dataclass(frozen=True)
class ParetoResult(PruneResult):
    """The chosen point (as any PruneResult) plus every measured point and the frontier."""

    frontier: pd.DataFrame = field(default_factory=pd.DataFrame)
    points: tuple[PruneResult, ...] = ()


def _prune_layer(workload: Workload, method: str, rate_param: str, rate, params: dict, name: str) -> np.ndarray:
    return METHODS[method].function(workload, layers=[name], **{**params, rate_param: rate}).workload[name].weights


def _knapsack(cost: np.ndarray, loss: np.ndarray, budget: float, resolution: int) -> list[int]:
    """Per layer (rows), the option (columns) minimising the total cost with the summed loss within ``budget``
    (losses clipped at 0, quantized into ``resolution`` steps of budget / resolution)."""
    n_layers, n_opt = cost.shape
    unit = budget / resolution if budget > 0 else 1.0
    w = np.ceil(np.clip(loss, 0, None) / unit - 1e-9).astype(np.int64) if budget > 0 else (loss > 0).astype(np.int64)
    cap = resolution if budget > 0 else 0
    big = np.inf
    best = np.zeros(cap + 1)
    choice = np.zeros((n_layers, cap + 1), dtype=np.int64)
    for i in range(n_layers):
        new = np.full(cap + 1, big)
        for o in range(n_opt):
            if w[i, o] > cap:
                continue
            shifted = np.full(cap + 1, big)
            shifted[w[i, o]:] = best[:cap + 1 - w[i, o]] + cost[i, o]
            better = shifted < new
            new[better] = shifted[better]
            choice[i, better] = o
        best = new
    b = int(np.argmin(best))
    picks = []
    for i in range(n_layers - 1, -1, -1):
        o = int(choice[i, b])
        picks.append(o)
        b -= w[i, o]
    return picks[::-1]


def pareto(workload: Workload, *, layer_cycles: Callable[[Layer], float], accuracy: Callable[[Workload], float],
           method: str = "bit_balance", rates: Sequence[Any] = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95),
           params: dict[str, Any] | None = None, budgets: int = 12, resolution: int = 200, max_drop: float = 0.01,
           layers: Sequence[str] | None = None, seed: int = 0, progress=None) -> ParetoResult:
    """Search per-layer rates of ``method`` (see the module docstring). ``params``: the method's other parameters;
    ``budgets``: how many accuracy-loss budgets (up to the loss of every layer at its highest rate) to solve;
    ``max_drop``: the accuracy drop (fraction) the chosen point may have."""
    check_layers_param(layers)
    if method not in RATE_PARAMS:
        raise PruningError(f"pareto: method ({method!r}) must be one of: {', '.join(RATE_PARAMS)}")
    rate_param = RATE_PARAMS[method]
    params = dict(params or {})
    if not rates:
        raise PruningError("pareto: rates must not be empty")
    METHODS[method].bind({**params, rate_param: rates[0]})  # one-line errors for bad parameters
    rates = list(rates)
    chosen = [layer.name for layer in selected(workload, layers, "pareto")]
    n_steps = len(chosen) * len(rates) + budgets
    step = 0

    def tick(what: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress("pareto", step, n_steps, {"what": what})

    base_acc = float(accuracy(workload))
    base_cycles = {name: float(layer_cycles(workload[name])) for name in chosen}
    other_cycles = sum(float(layer_cycles(layer)) for layer in workload if layer.name not in set(chosen))
    # 1. every layer alone at every rate: its pruned weights, cycles and the network's accuracy
    weights = {}
    cost = np.zeros((len(chosen), len(rates) + 1))
    loss = np.zeros_like(cost)
    for i, name in enumerate(chosen):
        cost[i, 0] = base_cycles[name]  # option 0: the layer as it is
        for j, rate in enumerate(rates, start=1):
            w = _prune_layer(workload, method, rate_param, rate, params, name)
            weights[(name, j)] = w
            single = workload[name].with_values(weights=w)
            cost[i, j] = float(layer_cycles(single))
            loss[i, j] = base_acc - float(accuracy(_replace(workload, {name: w})))
            tick(f"{name} at {rate}")
    # 2. knapsack choices for a range of loss budgets, 3. measured
    top = float(np.clip(loss, 0, None).max(axis=1).sum())
    seen, rows, points = set(), [], []
    for budget in np.linspace(0, top, budgets):
        picks = tuple(_knapsack(cost, loss, float(budget), resolution))
        tick(f"budget {budget:.3f}")
        if picks in seen:
            continue
        seen.add(picks)
        new = {name: weights[(name, o)] for name, o in zip(chosen, picks, strict=True) if o > 0}
        candidate = _replace(workload, new)
        acc = float(accuracy(candidate))
        cycles = other_cycles + sum(cost[i, o] for i, o in enumerate(picks))
        rate_of = {name: (rates[o - 1] if o else None) for name, o in zip(chosen, picks, strict=True)}
        result = assemble(workload, "pareto", {"method": method, **params, "rates": rate_of}, new,
                          {name: {"rate": r} for name, r in rate_of.items()})
        points.append(result)
        rows.append({"cycles": cycles, "accuracy": acc, "predicted_accuracy": base_acc - sum(
            loss[i, o] for i, o in enumerate(picks)), "loss_budget": float(budget), "baseline_accuracy": base_acc,
            **{f"rate:{name}": r for name, r in rate_of.items()}})
    frontier = pd.DataFrame(rows)
    frontier["on_frontier"] = [not ((frontier["cycles"] <= r.cycles) & (frontier["accuracy"] >= r.accuracy) &
                                    ((frontier["cycles"] < r.cycles) | (frontier["accuracy"] > r.accuracy))).any()
                               for r in frontier.itertuples()]
    ok = frontier[frontier["accuracy"] >= base_acc - max_drop]
    if len(ok):
        best = points[int(ok["cycles"].idxmin())]
    else:  # no measured point within max_drop: the unpruned network, not the least bad pruned one
        unpruned = {name: None for name in chosen}
        best = assemble(workload, "pareto", {"method": method, **params, "rates": unpruned}, {},
                        {name: {"rate": None} for name in chosen})
    return ParetoResult(best.workload, best.report, "pareto", {**best.params, "max_drop": max_drop},
                        frontier=frontier, points=tuple(points))


def _replace(workload: Workload, new: dict[str, np.ndarray]) -> Workload:
    """``workload`` with some layers' weights replaced (every input's copy ``name@i`` of a layer too)."""
    layers = []
    for layer in workload:
        base = layer.name.partition("@")[0]
        w = new.get(layer.name, new.get(base))
        layers.append(layer if w is None else layer.with_values(weights=w))
    return Workload(workload.name, layers, workload.meta)
