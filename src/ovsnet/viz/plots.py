"""Plots of results with matplotlib: the cascade path per object and frame, sweep curves, ablation bars.

matplotlib's object-oriented API on an Agg canvas (no ``pyplot``, no global backend switch), so the plots
work headless and in worker processes. Every file is written atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ovsnet.data.io import atomic_path

__all__ = ["PATH_COLOURS", "SWEEP_METRICS", "ablation_bar_plot", "path_timeline", "sweep_plot"]

logger = logging.getLogger(__name__)

SWEEP_METRICS: tuple[str, ...] = ("J-Mean", "F-Mean", "J&F-Mean")
# Cascade paths (inference.cascade.PATHS) plus "untracked" for objects not yet added at a frame.
PATH_COLOURS: dict[str, str] = {
    "iou": "#2ca02c",
    "reid": "#1f77b4",
    "flow": "#ff7f0e",
    "absent": "#d62728",
    "untracked": "#e0e0e0",
}


def _save_figure(fig: Figure, path: str | os.PathLike, dpi: int) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def path_timeline(
    decisions: Sequence[Mapping[int, str]],
    path: str | os.PathLike,
    first_frame: int = 1,
    figsize: tuple[float, float] = (10.0, 3.0),
    dpi: int = 100,
    title: str | None = None,
) -> None:
    """PNG of the cascade path (iou / reid / flow / absent) per object (rows) per frame (columns).

    ``decisions[t]`` maps object id → path for frame ``first_frame + t`` (the segmenter's ``decisions``:
    the annotated first frame has none). Objects missing from a frame (added later) show as "untracked".
    The image is ``figsize * dpi`` pixels.
    """
    names = list(PATH_COLOURS)
    objects = sorted({int(k) for d in decisions for k in d})
    codes = np.full((max(len(objects), 1), max(len(decisions), 1)), names.index("untracked"), dtype=np.int64)
    row_of = {obj: r for r, obj in enumerate(objects)}
    for t, frame_decisions in enumerate(decisions):
        for obj, taken in frame_decisions.items():
            if taken not in PATH_COLOURS:
                raise ValueError(
                    f"path_timeline: unknown path {taken!r} for object {obj} at frame "
                    f"{first_frame + t}; expected one of {names[:-1]}"
                )
            codes[row_of[int(obj)], t] = names.index(taken)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    cmap = ListedColormap([PATH_COLOURS[n] for n in names])
    extent = (first_frame - 0.5, first_frame + codes.shape[1] - 0.5, codes.shape[0] - 0.5, -0.5)
    ax.imshow(
        codes,
        cmap=cmap,
        vmin=-0.5,
        vmax=len(names) - 0.5,
        aspect="auto",
        interpolation="nearest",
        extent=extent,
    )
    ax.set_yticks(range(len(objects)), [str(o) for o in objects])
    ax.set_xlabel("frame")
    ax.set_ylabel("object")
    ax.set_title(title or "association path per object and frame")
    used = {names[c] for c in np.unique(codes)} if decisions else set()
    handles = [
        Patch(facecolor=PATH_COLOURS[n], edgecolor="black", linewidth=0.5, label=n)
        for n in names
        if n in used or n != "untracked"
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _save_figure(fig, path, dpi)


def sweep_plot(
    table: Any,
    x: str,
    path: str | os.PathLike,
    metrics: Sequence[str] = SWEEP_METRICS,
    figsize: tuple[float, float] = (6.0, 4.0),
    dpi: int = 100,
    title: str | None = None,
) -> None:
    """PNG of J-Mean, F-Mean and J&F-Mean (those present) against the swept column ``x`` of a pandas table.

    Lines with markers, sorted by ``x``; the row with the best J&F-Mean (else the first metric) is marked
    with a star and its value.
    """
    if x not in table.columns:
        raise KeyError(f"sweep_plot: column {x!r} not in the table (columns: {list(table.columns)})")
    present = [m for m in metrics if m in table.columns]
    if not present:
        raise KeyError(f"sweep_plot: none of {list(metrics)} in the table (columns: {list(table.columns)})")
    if len(table) == 0:
        raise ValueError("sweep_plot: the table is empty")
    data = table.sort_values(x)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    for metric in present:
        ax.plot(data[x], data[metric], marker="o", label=metric)
    key = "J&F-Mean" if "J&F-Mean" in present else present[0]
    best = data.loc[data[key].idxmax()]
    ax.plot(
        [best[x]],
        [best[key]],
        marker="*",
        markersize=16,
        color="gold",
        markeredgecolor="black",
        linestyle="none",
        label=f"best {key} {best[key]:.3f} at {x}={best[x]:g}",
        zorder=5,
    )
    ax.set_xlabel(x)
    ax.set_ylabel("score")
    ax.set_title(title or f"sweep of {x}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    _save_figure(fig, path, dpi)


def ablation_bar_plot(
    table: Any,
    label: str,
    path: str | os.PathLike,
    metrics: Sequence[str] = SWEEP_METRICS,
    figsize: tuple[float, float] = (7.0, 4.0),
    dpi: int = 100,
    title: str | None = None,
) -> None:
    """PNG of grouped bars: one group per row (named by column ``label``), one bar per metric present."""
    present = [m for m in metrics if m in table.columns]
    if label not in table.columns or not present:
        raise KeyError(
            f"ablation_bar_plot: need column {label!r} and one of {list(metrics)} "
            f"(columns: {list(table.columns)})"
        )
    positions = np.arange(len(table))
    width = 0.8 / len(present)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    for k, metric in enumerate(present):
        bars = ax.bar(positions + (k - (len(present) - 1) / 2) * width, table[metric], width, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(positions, [str(v) for v in table[label]])
    ax.set_ylabel("score")
    ax.set_title(title or "ablation")
    ax.legend(loc="best")
    _save_figure(fig, path, dpi)
