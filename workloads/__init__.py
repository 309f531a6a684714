"""What runs on the simulated accelerators: layers, workloads, generators and integer reference ops."""

from .layer import Layer, LayerKind, WorkloadError
from .reference_ops import conv2d, fc, gemm, layer_output
from .workload import Workload

__all__ = ["Layer", "LayerKind", "Workload", "WorkloadError", "conv2d", "fc", "gemm", "layer_output"]
