"""One module per design; ``model(design)`` returns its cost model."""

from __future__ import annotations

from ..config import Design
from .base import BrickStats, Cycle, DesignModel, Operand
from .dadiannao import DaDianNao
from .dynamic_stripes import DynamicStripes
from .pragmatic import Pragmatic
from .stripes import Stripes

MODELS: dict[Design, DesignModel] = {m.design: m for m in (DaDianNao(), Stripes(), DynamicStripes(), Pragmatic())}


def model(design: Design) -> DesignModel:
    return MODELS[Design(design)]


__all__ = ["BrickStats", "Cycle", "DesignModel", "Operand", "MODELS", "model"]
