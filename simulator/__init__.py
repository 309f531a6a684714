"""Cycle-accurate, bit-exact simulation of bit-serial DNN accelerators: ``simulate(load_arch(name), workload)``."""

from .config import KNOBS, ArchConfig, ConfigError, Design, Encoding, Serial, design_knobs, load_arch, preset_names
from .engine import effective_weights, simulate, simulate_layer
from .results import Results

__all__ = ["KNOBS", "ArchConfig", "ConfigError", "Design", "Encoding", "Serial", "Results", "design_knobs",
           "effective_weights", "load_arch", "preset_names", "simulate", "simulate_layer"]
