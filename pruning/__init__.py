"""Workload -> workload transforms with a report (depends only on ``workloads``): SWIS decomposition."""

from .swis import METHODS, SwisResult, decompose, decompose_workload

__all__ = ["METHODS", "SwisResult", "decompose", "decompose_workload"]
