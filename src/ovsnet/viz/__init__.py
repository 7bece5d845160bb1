"""Pictures of results: :mod:`~ovsnet.viz.overlays` (OpenCV: mask overlays, contact sheets, PNGs, overlay
videos) and :mod:`~ovsnet.viz.plots` (matplotlib: path timelines, sweep and ablation plots).

Every public name of both is importable from here, loaded on first use (PEP 562), so
``from ovsnet.viz import overlay`` loads no matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "contact_sheet": "overlays",
    "overlay": "overlays",
    "save_png": "overlays",
    "write_overlay_video": "overlays",
    "PATH_COLOURS": "plots",
    "SWEEP_METRICS": "plots",
    "ablation_bar_plot": "plots",
    "path_timeline": "plots",
    "sweep_plot": "plots",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
