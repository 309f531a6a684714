"""One module per design; ``model(design)`` returns its cost model.

Every ``DesignModel`` subclass defined in a module of this package is registered by its ``design``.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..config import Design
from .base import BrickStats, Cycle, DesignModel, Operand


def _discover() -> dict[Design, DesignModel]:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    found: dict[Design, DesignModel] = {}
    stack = list(DesignModel.__subclasses__())
    while stack:
        cls = stack.pop()
        stack += cls.__subclasses__()
        if "design" in cls.__dict__:
            found[cls.design] = cls()
    return found


MODELS: dict[Design, DesignModel] = _discover()


def model(design: Design) -> DesignModel:
    try:
        return MODELS[Design(design)]
    except KeyError:
        raise NotImplementedError(f"design {design!r} has no cost model yet") from None


__all__ = ["BrickStats", "Cycle", "DesignModel", "Operand", "MODELS", "model"]
