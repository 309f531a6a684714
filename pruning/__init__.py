"""Workload -> workload transforms that make bit-sparse, lane-balanced weights, each with a per-layer report.

Every method follows one contract (``pruning.base``): ``pruning.<method>(workload, *, params, layers=None,
seed=0) -> PruneResult``; ``METHODS`` lists them with their typed parameters and ``prune(workload, name,
**params)`` dispatches. Depends only on ``workloads``.
"""

from .autoprune import AutoPruneResult, autoprune, refitter, uniform_search
from .base import METHODS, Method, Param, PruneResult, PruningError, prune
from .bit_balance import bit_balance
from .bit_budget import bit_budget
from .bitpruner import bitpruner, retrain, retrain_pruned
from .bitslice_l1 import bitslice_l1, slice_report
from .bsq import bsq, drop_planes
from .crossbar_rows import crossbar_rows
from .magnitude import magnitude
from .n_of_g import n_of_g
from .pareto import ParetoResult, pareto
from .swis_decomposition import SwisResult, decompose, swis

__all__ = ["METHODS", "AutoPruneResult", "Method", "Param", "ParetoResult", "PruneResult", "PruningError", "SwisResult",
           "autoprune", "bit_balance", "bit_budget", "bitpruner", "bitslice_l1", "bsq", "crossbar_rows", "decompose",
           "drop_planes", "magnitude", "n_of_g", "pareto", "prune", "refitter", "retrain", "retrain_pruned",
           "slice_report", "swis", "uniform_search"]
