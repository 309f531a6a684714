"""One module per design: its knobs and its cost model; ``MODELS`` maps every design to its model.

Every ``DesignModel`` subclass defined in a module (or sub-package) of this package is registered by its
``design``.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..knobs import Design
from ..plan import Operand
from .base import BrickStats, Cycle, DesignModel


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


__all__ = ["BrickStats", "Cycle", "DesignModel", "Operand", "MODELS"]
