"""Model definitions matching the trained checkpoints in ../shared/workloads (needs the ``torch`` extra)."""
