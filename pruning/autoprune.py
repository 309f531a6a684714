"""AUTO-PRUNE (Yang et al., ICS 2021): a reinforcement-learning agent picks every layer's pruning ratio, rewarded
by the hardware's direct feedback (any cost of the pruned workload, e.g. the occupied ReRAM crossbars) under an
accuracy-loss constraint. No retraining inside the search (optionally, fine-tuning after it: ``finetune``).

**Episode.** The agent walks the layers in order (as AMC does). At layer t it sees a state of normalized layer
features: the layer's index, input and output channels, kernel size, stride, weights (parameters) and MACs (each
min-max scaled over the searched layers), the action it took at layer t - 1 (divided by ``max_ratio``), the
fraction of the searched layers' weights its earlier actions removed and the fraction held by the layers still to
come (AMC's "reduced" and "rest"; weights stand in for the cost, which is measured on whole workloads only). It
answers with the layer's ratio a_t in [0, ``max_ratio``], the rate of ``method`` (``crossbar_rows``' ``ratio`` by
default; any method whose rate parameter is a fraction). The pruned workload is then measured once:
``cost(pruned)`` and ``accuracy(pruned)``.

**Reward.** With c = cost(pruned) / cost(original), A0 = accuracy(original) and the floor F = A0 - ``max_drop``:
``-c`` when accuracy(pruned) >= F (feasible: in [-1, 0], higher is cheaper), else ``-1 - ln(1 + v / max_drop)``
with the violation v = F - accuracy(pruned) > 0 (``max_drop`` taken as 0.01 when 0). Every infeasible episode thus
scores below every feasible one (the unpruned network scores -1), and the penalty grows with the violation,
logarithmically, so that a collapsed network does not swamp the gradient.

**Agent: REINFORCE with a Gaussian policy** (not AMC's DDPG). The policy's mean is a small MLP of the state
(one tanh hidden layer, numpy): z_t ~ N(mu(s_t), sigma^2), a_t = ``max_ratio`` x sigmoid(z_t) (a squashed
Gaussian: the action stays in range and the log-likelihood gradient stays exact, which clipping would break);
with a ``grid``, a_t is then rounded down to the nearest ratio of the grid (part of the environment: the gradient
is unchanged). The exploration width sigma decays geometrically from ``sigma0`` to ``sigma_min``, reached at 80 %
of the episodes (AMC decays its truncated-normal noise likewise). Episodes come in mirrored pairs (the second
of a pair draws the first one's noise negated: antithetic sampling, which halves the noise in the comparison of
the two). Every ``batch`` episodes the policy takes one Adam step along
``sum_i A_i x sum_t grad log pi(z_it | s_it)`` with ``grad log pi = (z - mu) / sigma^2 x grad mu``. The advantage
A_i is the episode's centered rank among the batch's rewards, in [-1/2, 1/2] (fitness shaping as in evolution
strategies; the batch's median is the baseline; tied rewards share their mean rank, so a batch of equal rewards
moves nothing). We tried the textbook advantage, reward minus a moving average
of the rewards over their standard deviation: the infeasible episodes' penalties then dominate the scale, the
differences in cost between feasible episodes vanish in it, and on the toy problem of the tests the policy
settled on pruning almost nothing; ranks with mirrored pairs found the cheapest points (about half of the gap
between the best uniform ratio and the optimum in 150 episodes on a 20-layer toy).

Why not DDPG: an episode here costs one accuracy measurement (seconds of inference) and budgets are a few hundred
episodes; AMC's DDPG spends 100 warm-up episodes filling its replay buffer before it learns, and needs an actor, a
critic and their targets tuned; this agent learns from its first batch and has six knobs (``Agent``). The result
is the best feasible episode seen (the unpruned network, episode 0, if no other is feasible).

``uniform_search`` is the baseline: one ratio for every layer, the highest feasible one of ``ratios``.

**With retraining** (``finetune=``, both searches, the same budget): the search stays post-training (``max_drop``
is then its looser constraint); afterwards the unpruned network and at most ``finetune_runs`` points of the
search's Pareto front (cost vs accuracy over the feasible episodes) are fine-tuned, chosen by bisection on the
front ordered by cost (assuming a cheaper front point fine-tunes no better), and the result is the cheapest
fine-tuned point within ``finetune_drop`` of the fine-tuned unpruned network (or, ``finetune_against="unpruned"``,
of the unpruned network itself); with ``finetune_folds`` k > 1, judged k-fold (each point fine-tuned once per
validation fold, by its mean accuracy over the folds). ``finetune`` is a callable or a dict
of ``retrain``'s training parameters for ``pruning.retrain_pruned`` (torch imported only then).

**Judged after a re-fit** (``refit=``, both searches): a pruned network's accuracy before any training says
little of what fine-tuning recovers (ResNet-20 with half its 128-row crossbars freed: 15-25 % top-1 as pruned,
67-73 % after the least-squares re-fit of its kept weights, 80-81 % after 8 epochs of fine-tuning), so every
episode can be measured after ``pruning.retrain_pruned`` with no epochs (adaptive BN or the least-squares re-fit,
about 10 s on ResNet-20), as EagleEye (Li et al., ECCV 2020) judges pruning candidates after adaptive BN.

Deterministic for a ``seed`` (one ``numpy.random.Generator`` drives the initial weights and every sample), as
long as ``cost`` and ``accuracy`` are. Takes ``cost`` and ``accuracy`` callables, so this package never imports the
simulator (as ``pruning.pareto``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workloads import Layer, LayerKind, Workload

from .base import METHODS, PruneResult, PruningError, assemble, check_layers_param, selected
from .crossbar_rows import prune_rows
from .magnitude import prune_layer
from .pareto import RATE_PARAMS, _replace

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class AutoPruneResult(PruneResult):
    """The chosen point (as any PruneResult) plus the search history: one row per episode (``episode`` 0 is the
    unpruned network): the ratio of every layer (``ratio:<layer>``), ``cost``, ``cost_ratio``, ``accuracy``,
    ``feasible``, ``reward``."""

    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    baseline_cost: float = math.nan
    baseline_accuracy: float = math.nan
    # with ``finetune``: one row per fine-tuned point (``episode``, ``cost``, ``cost_ratio``, ``accuracy`` before,
    # ``finetuned_accuracy`` (k-fold: the mean of ``finetuned_accuracy_fold<f>``), ``finetuned_cost``, ``feasible``;
    # episode 0 is the unpruned network), the unpruned
    # network's fine-tuned accuracy, and the chosen point before fine-tuning (``workload`` is the fine-tuned one)
    finetuned: pd.DataFrame | None = None
    finetuned_baseline_accuracy: float = math.nan
    before_finetune: Workload | None = None


@dataclass(frozen=True)
class Agent:
    """The REINFORCE agent's knobs (see the module docstring)."""

    hidden: int = 32  # tanh units of the policy's MLP
    lr: float = 0.03  # Adam step size
    batch: int = 4  # episodes per policy update (an even number: mirrored pairs)
    sigma0: float = 1.0  # exploration width (in z, before the sigmoid) at the first episode
    sigma_min: float = 0.15  # ... reached at 80 % of the episodes
    init_ratio: float = 0.1  # the policy's initial mean action, as a fraction of max_ratio

    def check(self) -> None:
        if not (isinstance(self.hidden, int) and self.hidden >= 1):
            raise PruningError(f"autoprune: agent hidden ({self.hidden!r}) must be a positive integer")
        if not (isinstance(self.batch, int) and self.batch >= 2 and self.batch % 2 == 0):
            raise PruningError(f"autoprune: agent batch ({self.batch!r}) must be an even integer >= 2")
        for name in ("lr", "sigma0", "sigma_min"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise PruningError(f"autoprune: agent {name} ({v!r}) must be a positive number")
        if self.sigma_min > self.sigma0:
            raise PruningError(f"autoprune: agent sigma_min ({self.sigma_min!r}) must be <= sigma0 ({self.sigma0!r})")
        if isinstance(self.init_ratio, bool) or not (isinstance(self.init_ratio, (int, float))
                                                     and 0 < self.init_ratio < 1):
            raise PruningError(f"autoprune: agent init_ratio ({self.init_ratio!r}) must be in (0, 1)")


def episode_reward(cost_ratio: float, acc: float, base_acc: float, max_drop: float) -> float:
    """The episode's reward: -cost_ratio when feasible, else -1 - ln(1 + violation / max_drop)."""
    violation = (base_acc - max_drop) - acc
    if violation <= 0:
        return -float(cost_ratio)
    return -1.0 - math.log1p(violation / (max_drop if max_drop > 0 else 0.01))


# ----------------------------------------------------------------------------- checks shared by the searches
def fraction_methods() -> list[str]:
    """The methods whose rate parameter is a fraction in [0, 1] (a ratio the agent can pick)."""
    out = []
    for name, rate in RATE_PARAMS.items():
        p = next((p for p in METHODS[name].params if p.name == rate), None)
        if p is not None and p.type is float and p.lo is not None and p.lo >= 0 and p.hi is not None and p.hi <= 1:
            out.append(name)
    return out


def _check(search: str, workload: Workload, cost, accuracy, method: str, params, max_drop, layers
           ) -> tuple[str, dict, list[Layer]]:
    check_layers_param(layers)
    if not callable(cost) or not callable(accuracy):
        raise PruningError(f"{search}: cost and accuracy must be callables taking a workload")
    allowed = fraction_methods()
    if method not in allowed:
        raise PruningError(f"{search}: method ({method!r}) must be one of: {', '.join(allowed)}")
    if params is not None and not isinstance(params, dict):
        raise PruningError(f"{search}: params ({params!r}) must be a dict of {method}'s other parameters")
    params = dict(params or {})
    rate = RATE_PARAMS[method]
    if rate in params:
        raise PruningError(f"{search}: params must not set {rate!r}, the rate of {method} (the search picks it)")
    METHODS[method].bind({**params, rate: 0.0})  # one-line errors for bad parameters
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not 0 <= max_drop < 1:
        raise PruningError(f"{search}: max_drop ({max_drop!r}) must be a number in [0, 1)")
    chosen, seen = [], set()
    for layer in selected(workload, layers, search):
        base = layer.name.partition("@")[0]  # one decision per layer of a workload imported on several inputs
        if base not in seen:
            seen.add(base)
            chosen.append(layer)
    if not chosen:
        raise PruningError(f"{search}: no layer to prune")
    return rate, params, chosen


# a method's weights for one layer from its bound parameters, for the methods that have such a function
LAYER_FUNCTIONS: dict[str, Callable[[Layer, dict], np.ndarray]] = {
    "crossbar_rows": lambda layer, p: prune_rows(layer, layer.weights, p["ratio"], p["block_outputs"])[0],
    "magnitude": lambda layer, p: prune_layer(layer, layer.weights, p["sparsity"]),
}


class _Pruner:
    """Prunes the chosen layers at given ratios and measures the result (cost ratio, accuracy, reward)."""

    def __init__(self, workload: Workload, cost, accuracy, method: str, rate: str, params: dict,
                 chosen: list[Layer], max_drop: float, search: str, refit: Callable[[Workload], Workload] | None):
        self.workload, self.cost, self.accuracy, self.refit, self.search = workload, cost, accuracy, refit, search
        self.method, self.rate, self.params, self.chosen, self.max_drop = method, rate, params, chosen, max_drop
        self.base_cost = float(cost(workload))
        if not math.isfinite(self.base_cost) or self.base_cost <= 0:
            raise PruningError(f"{search}: cost of the unpruned workload ({self.base_cost!r}) must be positive")
        self.base_acc = float(accuracy(workload))
        self.rows: list[dict] = []
        self._record(0, [0.0] * len(chosen), self.base_cost, self.base_acc)

    def weights(self, layer: Layer, ratio: float) -> np.ndarray:
        params = METHODS[self.method].bind({**self.params, self.rate: float(ratio)})
        if self.method in LAYER_FUNCTIONS:  # the same weights without building a report per layer and episode
            return LAYER_FUNCTIONS[self.method](layer, params)
        one = Workload(layer.name, [layer], self.workload.meta)
        return METHODS[self.method].function(one, **params).workload[0].weights

    def new_weights(self, ratios: Sequence[float]) -> dict[str, np.ndarray]:
        return {layer.name.partition("@")[0]: self.weights(layer, r)
                for layer, r in zip(self.chosen, ratios, strict=True) if r > 0}

    def pruned(self, ratios: Sequence[float]) -> Workload:
        """The workload pruned at ``ratios`` (per chosen layer), re-fitted by ``refit`` if there is one."""
        pruned = _replace(self.workload, self.new_weights(ratios))
        return pruned if self.refit is None or not any(r > 0 for r in ratios) else self._refitted(pruned)

    def _refitted(self, pruned: Workload) -> Workload:
        out = self.refit(pruned)
        if not isinstance(out, Workload):
            raise PruningError(f"{self.search}: refit returned {type(out).__name__}, not a Workload")
        return out

    def measure(self, episode: int, ratios: Sequence[float]) -> dict:
        pruned = self.pruned(ratios)
        return self._record(episode, ratios, float(self.cost(pruned)), float(self.accuracy(pruned)))

    def _record(self, episode: int, ratios: Sequence[float], cost: float, acc: float) -> dict:
        c = cost / self.base_cost
        row = {"episode": episode, **{f"ratio:{layer.name.partition('@')[0]}": float(r)
                                      for layer, r in zip(self.chosen, ratios, strict=True)},
               "cost": cost, "cost_ratio": c, "accuracy": acc, "feasible": acc >= self.base_acc - self.max_drop,
               "reward": episode_reward(c, acc, self.base_acc, self.max_drop)}
        self.rows.append(row)
        return row

    def result(self, search: str, row: dict, extra_params: dict) -> AutoPruneResult:
        names = [layer.name.partition("@")[0] for layer in self.chosen]
        ratios = {n: row[f"ratio:{n}"] for n in names}
        new = self.new_weights([ratios[n] for n in names])
        new = {layer.name: new[layer.name.partition("@")[0]] for layer in self.workload
               if layer.name.partition("@")[0] in new}
        params = {"pruning_method": self.method, **self.params, "ratios": ratios, "max_drop": self.max_drop,
                  **extra_params}
        res = assemble(self.workload, search, params, new,
                       {layer.name: {"ratio": ratios[layer.name.partition("@")[0]]} for layer in self.workload
                        if layer.name.partition("@")[0] in ratios})
        # with refit: the re-fitted network, the one the search measured (the report describes the pruning)
        wl = res.workload if self.refit is None or not new else self._refitted(res.workload)
        return AutoPruneResult(wl, res.report, search, res.params, history=pd.DataFrame(self.rows),
                               baseline_cost=self.base_cost, baseline_accuracy=self.base_acc)


def _best(rows: list[dict]) -> dict:
    """The feasible row of highest reward (the earliest on ties); row 0, the unpruned network, is feasible."""
    return max((r for r in rows if r["feasible"]), key=lambda r: (r["reward"], -r["episode"]))


# ----------------------------------------------------------------------------- fine-tuning the searched points
FINETUNE_AGAINST = ("finetuned", "unpruned")  # the accuracy a fine-tuned point must stay within finetune_drop of


def _retrainer(search: str, workload: Workload, method: str, params: dict, layers, seed: int, train: dict,
               label: str) -> Callable[[Workload, int], Workload]:
    """(pruned workload, validation fold) -> ``pruning.retrain_pruned`` of it with ``train``, a dict of
    ``retrain``'s training parameters (checked now, not after the search)."""
    from .bitpruner import FIXED_PROJECTIONS, TRAIN_OPTIONS, retrain_pruned

    if method not in FIXED_PROJECTIONS:
        raise PruningError(f"{search}: {label} as a dict retrains {', '.join(FIXED_PROJECTIONS)} only (method "
                           f"{method!r}); pass a callable")
    given = {k: v for k, v in train.items() if k not in ("limit", "datasets_dir", "data_dir", "progress")}
    opts = {k: v for k, v in train.items() if k in TRAIN_OPTIONS and k not in ("layers", "seed")}
    bad = sorted(k for k in given if k not in {p.name for p in METHODS["retrain"].params} or k == "method")
    if bad:
        raise PruningError(f"{search}: {label} has unknown training parameters: {', '.join(bad)} (known: "
                           f"{', '.join(p.name for p in METHODS['retrain'].params if p.name != 'method')})")
    METHODS["retrain"].bind(given)  # one-line errors now, not after the search

    def run(pruned: Workload, fold: int = 0) -> Workload:
        fold_kw = {"validation_fold": fold} if fold else {}
        return retrain_pruned(workload, pruned, method=method, layers=layers, seed=seed, **params, **given,
                              **fold_kw, **opts).workload

    return run


@dataclass(frozen=True)
class _FineTuning:
    """How a search fine-tunes and judges the points of its front: ``run(pruned, fold)`` fine-tunes leaving out
    validation fold ``fold``; with ``folds`` > 1 a point's accuracy is the mean of ``fold_accuracy(fine-tuned,
    fold)`` over the folds (k-fold), else the search's accuracy of the fold-0 fine-tuning."""

    run: Callable[[Workload, int], Workload]
    runs: int
    drop: float | None
    against: str
    folds: int
    fold_accuracy: Callable[[Workload, int], float] | None

    def judge(self, search: str, pruned: Workload, accuracy) -> tuple[Workload, float, list[float]]:
        """(the fold-0 fine-tuned workload, its accuracy: the mean over the folds, the accuracy of every fold)."""
        tuned0, accs = None, []
        for fold in range(self.folds):
            tuned = self.run(pruned, fold)
            if not isinstance(tuned, Workload):
                raise PruningError(f"{search}: finetune returned {type(tuned).__name__}, not a Workload")
            accs.append(float(accuracy(tuned) if self.folds == 1 else self.fold_accuracy(tuned, fold)))
            if fold == 0:
                tuned0 = tuned
        return tuned0, float(np.mean(accs)), accs

    def base_accuracy(self, measure: _Pruner) -> float:
        """The unpruned network's accuracy as the points are judged: the search's, or its mean over the folds."""
        if self.folds == 1:
            return measure.base_acc
        return float(np.mean([self.fold_accuracy(measure.workload, f) for f in range(self.folds)]))


def _fine_tuning(search: str, workload: Workload, method: str, params: dict, layers, seed: int, finetune, runs,
                 drop, against: str, folds, fold_accuracy) -> _FineTuning | None:
    """``finetune`` (a callable, or a dict of ``retrain``'s training parameters for ``pruning.retrain_pruned``)
    and its settings, checked."""
    if finetune is None:
        if folds != 1 or fold_accuracy is not None:
            raise PruningError(f"{search}: finetune_folds and fold_accuracy apply to fine-tuning; finetune is None")
        return None
    if isinstance(runs, bool) or not isinstance(runs, (int, np.integer)) or runs < 1:
        raise PruningError(f"{search}: finetune_runs ({runs!r}) must be a positive integer")
    if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop < 1):
        raise PruningError(f"{search}: finetune_drop ({drop!r}) must be a number in [0, 1)")
    if against not in FINETUNE_AGAINST:
        raise PruningError(f"{search}: finetune_against ({against!r}) must be one of: {', '.join(FINETUNE_AGAINST)}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 1:
        raise PruningError(f"{search}: finetune_folds ({folds!r}) must be a positive integer")
    if fold_accuracy is not None and not callable(fold_accuracy):
        raise PruningError(f"{search}: fold_accuracy ({fold_accuracy!r}) must be a callable (workload, fold) -> "
                           f"accuracy")
    folds = int(folds)
    if callable(finetune):
        if folds > 1 and fold_accuracy is None:
            raise PruningError(f"{search}: finetune_folds ({folds}) with a callable finetune needs fold_accuracy, "
                               f"the accuracy (workload, fold) -> fraction on the images that fold leaves out")
        run = (lambda pruned, fold: finetune(pruned)) if folds == 1 else finetune
        return _FineTuning(run, int(runs), drop, against, folds, fold_accuracy)
    if not isinstance(finetune, dict):
        raise PruningError(f"{search}: finetune ({finetune!r}) must be a callable (pruned workload -> fine-tuned "
                           f"workload) or a dict of retrain's training parameters")
    run = _retrainer(search, workload, method, params, layers, seed, finetune, "finetune")
    size = finetune.get("validation", 0)
    if folds > 1:  # checked now: the fine-tuning of the last fold would refuse them only after the search
        from workloads.datasets import CIFAR10_HALF

        if not size:
            raise PruningError(f"{search}: finetune_folds ({folds}) needs finetune's validation (the images of one "
                               f"fold) > 0")
        if folds * size > CIFAR10_HALF:
            raise PruningError(f"{search}: finetune_folds ({folds}) x validation ({size}) exceeds the {CIFAR10_HALF} "
                               f"train-half images")
    if folds > 1 and fold_accuracy is None:
        from workloads import evaluate

        def fold_accuracy(wl: Workload, fold: int) -> float:
            return evaluate(wl, subset="train", limit=size, fold=fold, split_seed=finetune.get("split_seed", 0),
                            datasets_dir=finetune.get("datasets_dir"), data_dir=finetune.get("data_dir"))["top1"]

    return _FineTuning(run, int(runs), drop, against, folds, fold_accuracy)


def _refitter(search: str, workload: Workload, method: str, params: dict, layers, seed: int, refit
              ) -> Callable[[Workload], Workload] | None:
    """The re-fit callable of ``refit``: a callable (pruned workload -> re-fitted workload); "bn" or "lstsq"; or a
    dict of ``retrain``'s training parameters with ``recalibrate`` set, run by ``pruning.retrain_pruned`` with no
    epochs (only the recalibration)."""
    if refit is None or callable(refit):
        return refit
    if isinstance(refit, str):
        refit = {"recalibrate": refit}
    if not isinstance(refit, dict) or refit.get("recalibrate") not in ("bn", "lstsq"):
        raise PruningError(f"{search}: refit ({refit!r}) must be a callable (pruned workload -> re-fitted workload), "
                           f"'bn', 'lstsq', or a dict of retrain's training parameters with recalibrate 'bn' or "
                           f"'lstsq'")
    epochs = sorted(k for k in ("epochs", "final_epochs") if k in refit)
    if epochs:
        raise PruningError(f"{search}: refit re-fits without training; it takes no {' or '.join(epochs)} (fine-tuning "
                           f"is finetune's)")
    run = _retrainer(search, workload, method, params, layers, seed, {**refit, "epochs": 0, "final_epochs": 0},
                     "refit")
    return lambda pruned: run(pruned, 0)


def refitter(workload: Workload, refit: dict[str, Any] | str, *, method: str = "crossbar_rows",
             params: dict[str, Any] | None = None, layers: Sequence[str] | None = None, seed: int = 0
             ) -> Callable[[Workload], Workload]:
    """The re-fit ``autoprune`` and ``uniform_search`` apply with ``refit=`` ("bn", "lstsq", or a dict of
    ``retrain``'s training parameters with ``recalibrate``), as a callable for other searches' accuracy functions
    (``pareto``'s): pruned workload (``workload`` pruned by ``method`` with ``params``) -> re-fitted workload, no
    training. A workload with ``workload``'s own weights comes back as it is."""
    if not isinstance(refit, (str, dict)):
        raise PruningError(f"refitter: refit ({refit!r}) must be 'bn', 'lstsq' or a dict of retrain's training "
                           f"parameters with recalibrate")
    fit = _refitter("refitter", workload, method, dict(params or {}), layers, seed, refit)

    def run(pruned: Workload) -> Workload:
        if all(np.array_equal(a.weights, b.weights) for a, b in zip(pruned, workload, strict=True)):
            return pruned
        return fit(pruned)

    return run


def pareto_front(rows: Sequence[dict]) -> list[dict]:
    """The measured points no other point beats (cost no higher and accuracy no lower, one of them strictly),
    by ascending cost; of points equal in both, the earliest episode."""
    out: list[dict] = []
    for r in sorted(rows, key=lambda r: (r["cost"], -r["accuracy"], r["episode"])):
        if not out or r["accuracy"] > out[-1]["accuracy"]:
            if out and r["cost"] == out[-1]["cost"]:
                continue
            out.append(r)
    return out


def _finetune_front(measure: _Pruner, search: str, tuning: _FineTuning, accuracy, drop: float, progress
                    ) -> tuple[dict, Workload, pd.DataFrame, float]:
    """Fine-tune the unpruned network and up to ``tuning.runs`` points of the search's Pareto front (cost vs
    accuracy among its feasible episodes), chosen by bisection on the front ordered by cost, assuming that a
    cheaper point of the front fine-tunes no better: the cheapest point found whose fine-tuned accuracy (``judge``:
    k-fold with ``folds`` > 1) is within ``drop`` of the fine-tuned unpruned network's (``against`` "finetuned";
    "unpruned": of the unpruned network's, judged the same way). Returns (its row, its fine-tuned workload, the
    table of fine-tuned points, the unpruned network's fine-tuned accuracy); the unpruned network's row and
    workload when none is."""
    rows = {r["episode"]: r for r in measure.rows}
    front = [r for r in pareto_front([r for r in measure.rows if r["feasible"]])
             if r["cost"] < measure.base_cost]  # cheapest first
    table: list[dict] = []

    def tune(row: dict) -> tuple[Workload, float]:
        pruned = measure.workload if row["episode"] == 0 else _replace(measure.workload, measure.new_weights(
            [row[f"ratio:{layer.name.partition('@')[0]}"] for layer in measure.chosen]))
        tuned, acc, accs = tuning.judge(search, pruned, accuracy)
        table.append({"episode": row["episode"], "cost": row["cost"], "cost_ratio": row["cost_ratio"],
                      "accuracy": row["accuracy"], "finetuned_accuracy": acc,
                      **({f"finetuned_accuracy_fold{f}": a for f, a in enumerate(accs)} if tuning.folds > 1 else {}),
                      "finetuned_cost": float(measure.cost(tuned)), "feasible": True})
        if progress is not None:
            progress(f"{search} finetune", len(table), tuning.runs + 1,
                     {"cost_ratio": row["cost_ratio"], "accuracy": acc})
        log.debug("%s finetune of episode %d: accuracy %.4f -> %.4f", search, row["episode"], row["accuracy"], acc)
        return tuned, acc

    best_wl, base_ft = tune(rows[0])
    best_row = rows[0]
    floor = (base_ft if tuning.against == "finetuned" else tuning.base_accuracy(measure)) - drop
    # bisection for the smallest feasible index of the front (cheapest first): front[lo] is infeasible (-1: none
    # known to be), front[hi] feasible (len(front): the unpruned network)
    lo, hi = -1, len(front)
    for _ in range(tuning.runs):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        tuned, acc = tune(front[mid])
        ok = acc >= floor
        table[-1]["feasible"] = ok
        if ok:
            hi, best_row, best_wl = mid, front[mid], tuned
        else:
            lo = mid
    return best_row, best_wl, pd.DataFrame(table), base_ft


def _finish(measure: _Pruner, search: str, row: dict, extra: dict, tuning: _FineTuning | None, accuracy,
            progress) -> AutoPruneResult:
    """The search's result: ``row``'s point, or with fine-tuning the point chosen among the fine-tuned ones."""
    if tuning is None:
        return measure.result(search, row, extra)
    drop = measure.max_drop if tuning.drop is None else tuning.drop
    row, tuned, table, base_ft = _finetune_front(measure, search, tuning, accuracy, drop, progress)
    res = measure.result(search, row, {**extra, "finetune_runs": tuning.runs, "finetune_drop": drop,
                                       "finetune_against": tuning.against, "finetune_folds": tuning.folds})
    return dataclasses.replace(res, workload=tuned, finetuned=table, finetuned_baseline_accuracy=base_ft,
                               before_finetune=res.workload)


# ----------------------------------------------------------------------------- the agent
def centered_ranks(rewards: np.ndarray) -> np.ndarray:
    """Ranks of ``rewards`` (0 = lowest; tied rewards share their mean rank) scaled to [-1/2, 1/2], mean 0."""
    r = np.asarray(rewards, dtype=np.float64)
    n = len(r)
    if n < 2:
        return np.zeros(n)
    order = np.argsort(r, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=np.float64)
    for v in np.unique(r):  # ties: the mean of their ranks
        tied = r == v
        ranks[tied] = ranks[tied].mean()
    return ranks / (n - 1) - 0.5


def _check_grid(grid, max_ratio: float) -> np.ndarray | None:
    if grid is None:
        return None
    try:
        g = np.unique(np.asarray([0.0, *grid], dtype=np.float64))
    except (TypeError, ValueError):
        raise PruningError(f"autoprune: grid ({grid!r}) must be a list of ratios in [0, max_ratio]") from None
    if g.ndim != 1 or not np.all(np.isfinite(g)) or g.min() < 0 or g.max() > max_ratio:
        raise PruningError(f"autoprune: grid ({grid!r}) must be a list of ratios in [0, max_ratio ({max_ratio:g})]")
    return g


def _on_grid(a: float, grid: np.ndarray | None) -> float:
    """``a`` rounded down to the nearest ratio of ``grid`` (``a`` itself without a grid)."""
    return a if grid is None else float(grid[np.searchsorted(grid, a, side="right") - 1])


def layer_features(layers: Sequence[Layer]) -> np.ndarray:
    """(layers, 7) static features, each min-max scaled to [0, 1] over the layers (0 where constant): index,
    in channels, out channels, kernel size (R x S), stride, weights, MACs."""
    raw = []
    for i, layer in enumerate(layers):
        kernel = int(np.prod(layer.weights.shape[2:])) if layer.kind == LayerKind.CONV else 1
        raw.append([i, layer.in_channels, layer.out_channels, kernel, layer.stride, layer.weights.size, layer.macs])
    f = np.asarray(raw, dtype=np.float64)
    lo, span = f.min(axis=0), np.ptp(f, axis=0)
    return np.where(span > 0, (f - lo) / np.where(span > 0, span, 1), 0.0)


class _Policy:
    """mu(s) = w2 . tanh(W1 s + b1) + b2, trained by Adam ascent."""

    def __init__(self, n_in: int, hidden: int, bias: float, rng: np.random.Generator):
        self.p = {"W1": rng.normal(0, 1 / math.sqrt(n_in), (hidden, n_in)), "b1": np.zeros(hidden),
                  "w2": rng.normal(0, 0.1 / math.sqrt(hidden), hidden), "b2": np.array(bias)}
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = 0

    def mean(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.tanh(s @ self.p["W1"].T + self.p["b1"])
        return h @ self.p["w2"] + self.p["b2"], h

    def ascend(self, s: np.ndarray, dmu: np.ndarray, lr: float) -> None:
        """One Adam step along d(objective)/d(mu) = ``dmu`` at the states ``s`` (rows)."""
        _, h = self.mean(s)
        dpre = dmu[:, None] * self.p["w2"] * (1 - h**2)
        g = {"W1": dpre.T @ s, "b1": dpre.sum(axis=0), "w2": h.T @ dmu, "b2": np.array(dmu.sum())}
        self.t += 1
        for k, gk in g.items():
            self.m[k] = 0.9 * self.m[k] + 0.1 * gk
            self.v[k] = 0.999 * self.v[k] + 0.001 * gk**2
            step = (self.m[k] / (1 - 0.9**self.t)) / (np.sqrt(self.v[k] / (1 - 0.999**self.t)) + 1e-8)
            self.p[k] = self.p[k] + lr * step


def autoprune(workload: Workload, *, cost: Callable[[Workload], float], accuracy: Callable[[Workload], float],
              method: str = "crossbar_rows", params: dict[str, Any] | None = None, max_drop: float = 0.01,
              episodes: int = 200, max_ratio: float = 0.9, grid: Sequence[float] | None = None,
              layers: Sequence[str] | None = None, seed: int = 0, agent: Agent | None = None,
              finetune: Callable[[Workload], Workload] | dict[str, Any] | None = None, finetune_runs: int = 3,
              finetune_drop: float | None = None, finetune_against: str = "finetuned", finetune_folds: int = 1,
              fold_accuracy: Callable[[Workload, int], float] | None = None,
              refit: Callable[[Workload], Workload] | dict[str, Any] | str | None = None,
              progress=None) -> AutoPruneResult:
    """Search per-layer ratios of ``method`` with the REINFORCE agent (see the module docstring): ``episodes``
    pruned networks, each measured once with ``cost`` and ``accuracy`` (plus one measurement of the unpruned
    network); returns the feasible episode of least cost (within ``max_drop`` of the unpruned accuracy) with the
    search history. ``params``: ``method``'s other parameters; ``grid``: the ratios an action may take (a sampled
    ratio is rounded down to the nearest; 0 is always allowed), default any; ``agent``: the agent's knobs;
    ``progress(phase, step, steps, figures)`` is called after every episode (and every fine-tuning).

    ``finetune`` (a callable pruned workload -> fine-tuned workload, or a dict of ``retrain``'s training
    parameters, e.g. ``{"epochs": 4, "lr": 5e-3}``, for ``pruning.retrain_pruned`` with ``seed``): after the
    search, the unpruned network and up to ``finetune_runs`` points of the search's Pareto front (feasible
    episodes: ``max_drop`` is then the search's looser constraint) are fine-tuned and measured with ``accuracy``;
    the result is the cheapest one within ``finetune_drop`` (default ``max_drop``) of the fine-tuned unpruned
    network (``finetune_against="finetuned"``) or of the unpruned network itself (``"unpruned"``), fine-tuned (see
    ``AutoPruneResult.finetuned``).

    ``finetune_folds`` k > 1 (k-fold acceptance, k times the fine-tuning): every fine-tuned point, the unpruned
    network's included, is fine-tuned k times, each time leaving out another of k disjoint validation folds, and
    judged by the mean of ``fold_accuracy(fine-tuned workload, fold)`` over the folds; the unpruned network by the
    mean of its own on the same folds. With a dict ``finetune`` the folds are its ``validation`` train-half images
    (``validation_fold``) and ``fold_accuracy`` defaults to their top-1 (``evaluate(subset="train",
    limit=validation, fold=k)``); a callable ``finetune`` is then called as ``finetune(pruned, fold)``. The result
    is the fold-0 fine-tuning. A judgement on n images has a standard error of about sqrt(p (1 - p) / n): 1.3
    points at 80 % on 1,000, 0.73 on 3,000.

    ``refit`` ("bn", "lstsq", a dict of ``retrain``'s training parameters with ``recalibrate``, or a callable):
    every pruned network is re-fitted (``pruning.retrain_pruned`` with no epochs: adaptive BN or the least-squares
    re-fit of the kept weights) before ``cost`` and ``accuracy`` measure it, so that the search judges what
    fine-tuning would start from (EagleEye's adaptive-BN evaluation); the result is then the re-fitted network
    (fine-tuning still starts from the pruned one and re-fits as ``finetune`` says)."""
    rate, params, chosen = _check("autoprune", workload, cost, accuracy, method, params, max_drop, layers)
    tuning = _fine_tuning("autoprune", workload, method, params, layers, seed, finetune, finetune_runs,
                          finetune_drop, finetune_against, finetune_folds, fold_accuracy)
    refit = _refitter("autoprune", workload, method, params, layers, seed, refit)
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise PruningError(f"autoprune: episodes ({episodes!r}) must be a positive integer")
    if isinstance(max_ratio, bool) or not isinstance(max_ratio, (int, float)) or not 0 < max_ratio <= 1:
        raise PruningError(f"autoprune: max_ratio ({max_ratio!r}) must be in (0, 1]")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PruningError(f"autoprune: seed ({seed!r}) must be a non-negative integer")
    grid = _check_grid(grid, max_ratio)
    agent = Agent() if agent is None else agent
    if not isinstance(agent, Agent):
        raise PruningError(f"autoprune: agent ({agent!r}) must be a pruning.autoprune.Agent")
    agent.check()
    episodes = int(episodes)
    measure = _Pruner(workload, cost, accuracy, method, rate, params, chosen, max_drop, "autoprune", refit)
    rng = np.random.default_rng(seed)
    static = layer_features(chosen)
    sizes = np.array([layer.weights.size for layer in chosen], dtype=np.float64)
    share = sizes / sizes.sum()
    policy = _Policy(static.shape[1] + 4, agent.hidden, math.log(agent.init_ratio / (1 - agent.init_ratio)), rng)
    decay = (agent.sigma_min / agent.sigma0) ** (1 / max(1.0, 0.8 * (episodes - 1)))
    batch: list[tuple[np.ndarray, np.ndarray, float]] = []  # (states, d log pi / d mu per layer, reward)
    noise = np.zeros(len(chosen))
    for ep in range(1, episodes + 1):
        sigma = max(agent.sigma_min, agent.sigma0 * decay ** (ep - 1))
        noise = -noise if ep % 2 == 0 else rng.standard_normal(len(chosen))  # mirrored pairs
        prev, reduced = 0.0, 0.0
        states, dlogp, ratios = [], [], []
        for t in range(len(chosen)):
            s = np.concatenate([static[t], [prev / max_ratio, reduced, share[t + 1:].sum(), 1.0]])
            mu = float(policy.mean(s[None])[0][0])
            z = mu + sigma * float(noise[t])
            a = _on_grid(max_ratio / (1 + math.exp(-z)) if z > -700 else 0.0, grid)
            states.append(s)
            dlogp.append((z - mu) / sigma**2)
            ratios.append(a)
            prev, reduced = a, reduced + a * share[t]
        row = measure.measure(ep, ratios)
        batch.append((np.array(states), np.array(dlogp), row["reward"]))
        if len(batch) == agent.batch or ep == episodes:
            rewards = np.array([b[2] for b in batch])
            adv = centered_ranks(rewards)
            dmu = np.concatenate([a_ * b[1] for a_, b in zip(adv, batch, strict=True)]) / len(batch)
            policy.ascend(np.concatenate([b[0] for b in batch]), dmu, agent.lr)
            batch = []
        best = _best(measure.rows)
        log.debug("autoprune episode %d: reward %.4f (cost %.4f, accuracy %.4f); best cost %.4f", ep, row["reward"],
                  row["cost_ratio"], row["accuracy"], best["cost_ratio"])
        if progress is not None:
            progress("autoprune", ep, episodes, {"reward": row["reward"], "best_cost": best["cost_ratio"]})
    return _finish(measure, "autoprune", _best(measure.rows), {
        "episodes": episodes, "max_ratio": max_ratio, "grid": None if grid is None else grid.tolist(),
        "seed": int(seed)}, tuning, accuracy, progress)


def uniform_search(workload: Workload, *, cost: Callable[[Workload], float], accuracy: Callable[[Workload], float],
                   ratios: Sequence[float] = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2)),
                   method: str = "crossbar_rows", params: dict[str, Any] | None = None, max_drop: float = 0.01,
                   layers: Sequence[str] | None = None, finetune: Callable[[Workload], Workload] | dict[str, Any] |
                   None = None, finetune_runs: int = 3, finetune_drop: float | None = None,
                   finetune_against: str = "finetuned", finetune_folds: int = 1,
                   fold_accuracy: Callable[[Workload, int], float] | None = None, seed: int = 0,
                   refit: Callable[[Workload], Workload] | dict[str, Any] | str | None = None,
                   progress=None) -> AutoPruneResult:
    """The baseline: every layer at one ratio; each of ``ratios`` measured once (plus the unpruned network); the
    highest feasible ratio (within ``max_drop`` of the unpruned accuracy) is the result, with the history (one
    ``episode`` per ratio, in the order given). ``finetune``, ``finetune_runs``, ``finetune_drop``: as
    ``finetune_against``, ``refit``: as ``autoprune``'s (the same fine-tuning budget; ``seed`` seeds a dict
    ``finetune``)."""
    rate, params, chosen = _check("uniform_search", workload, cost, accuracy, method, params, max_drop, layers)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PruningError(f"uniform_search: seed ({seed!r}) must be a non-negative integer")
    tuning = _fine_tuning("uniform_search", workload, method, params, layers, seed, finetune, finetune_runs,
                          finetune_drop, finetune_against, finetune_folds, fold_accuracy)
    refit = _refitter("uniform_search", workload, method, params, layers, seed, refit)
    try:
        ratios = [float(r) for r in ratios]
    except (TypeError, ValueError):
        raise PruningError(f"uniform_search: ratios ({ratios!r}) must be numbers in [0, 1]") from None
    if not ratios or not all(0 <= r <= 1 for r in ratios):
        raise PruningError(f"uniform_search: ratios ({ratios!r}) must be a non-empty list of numbers in [0, 1]")
    measure = _Pruner(workload, cost, accuracy, method, rate, params, chosen, max_drop, "uniform_search", refit)
    for i, r in enumerate(ratios, start=1):
        measure.measure(i, [r] * len(chosen))
        if progress is not None:
            progress("uniform_search", i, len(ratios), {"ratio": r})
    ok = [row for row in measure.rows if row["feasible"]]
    best = max(ok, key=lambda row: (row[f"ratio:{chosen[0].name.partition('@')[0]}"], -row["episode"]))
    return _finish(measure, "uniform_search", best, {"uniform_ratios": ratios}, tuning, accuracy, progress)
