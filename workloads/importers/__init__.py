"""Importers of trained models (TFLite, PyTorch, ONNX, MiniLM) into Workloads; each needs its optional extra."""
