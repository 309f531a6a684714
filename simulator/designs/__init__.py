"""One module per design: its knobs and its cost model; ``MODELS`` maps every design to its model.

Importing this package imports every module (and sub-package) in it; defining a ``DesignModel`` subclass with a
``design`` registers it (``simulator.knobs.DESIGNS``), so adding a design is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..knobs import DESIGNS, Design
from ..plan import Operand
from .base import BrickStats, Cycle, DesignModel

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

MODELS: dict[Design, DesignModel] = DESIGNS  # type: ignore[assignment]  # every design is a DesignModel

__all__ = ["BrickStats", "Cycle", "DesignModel", "Operand", "MODELS"]
