"""What runs on the simulated accelerators: layers, workloads, generators and integer reference ops."""

from .evaluate import evaluate
from .layer import Layer, LayerKind, WorkloadError
from .reference_ops import conv2d, fc, gemm, layer_output
from .registry import builtin_names, load_builtin
from .workload import Workload

__all__ = ["Layer", "LayerKind", "Workload", "WorkloadError", "builtin_names", "conv2d", "evaluate", "fc",
           "gemm", "layer_output", "load_builtin"]
