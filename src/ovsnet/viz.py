"""Pictures of results: mask overlays, contact sheets, overlay videos, path timelines and sweep plots.

Images are ``uint8`` H×W×3 RGB and label maps H×W ``uint8`` (0 = background, 255 = void), as everywhere in
ovsnet. Plots use matplotlib's object-oriented API on an Agg canvas (no ``pyplot``, no global backend
switch), so they work headless and in worker processes. Every file is written atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from ovsnet.data.io import DAVIS_PALETTE, DataError, atomic_path
from ovsnet.data.video import VideoWriter

__all__ = [
    "PATH_COLOURS",
    "SWEEP_METRICS",
    "ablation_bar_plot",
    "contact_sheet",
    "overlay",
    "path_timeline",
    "save_png",
    "sweep_plot",
    "write_overlay_video",
]

logger = logging.getLogger(__name__)

VOID_LABEL = 255
SWEEP_METRICS: tuple[str, ...] = ("J-Mean", "F-Mean", "J&F-Mean")
# Cascade paths (inference.cascade.PATHS) plus "untracked" for objects not yet added at a frame.
PATH_COLOURS: dict[str, str] = {
    "iou": "#2ca02c",
    "reid": "#1f77b4",
    "flow": "#ff7f0e",
    "absent": "#d62728",
    "untracked": "#e0e0e0",
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{what} must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
    return image


def _text_scale(height: int, width: int) -> tuple[float, int]:
    """Font scale and stroke so that labels stay legible from thumbnails to 4K frames."""
    scale = max(0.4, min(height, width) / 480.0)
    return scale, max(1, round(scale * 2))


def _put_text(image: np.ndarray, text: str, centre: tuple[int, int], scale: float, thickness: int) -> None:
    """White text with a black outline, centred on ``centre`` (x, y) and kept inside the image (in place).

    The text is rendered once as an anti-aliased coverage mask and composited, with the outline from a
    dilation of that mask, so that it stays legible on any colour even at thumbnail sizes.
    """
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    h, w = image.shape[:2]
    pad = thickness + 2
    x = int(np.clip(centre[0] - tw // 2, 0, max(w - tw, 0)))
    y = int(np.clip(centre[1] + th // 2, th, max(h - base, th)))
    x0, y0, x1, y1 = max(x - pad, 0), max(y - th - pad, 0), min(x + tw + pad, w), min(y + base + pad, h)
    if x1 <= x0 or y1 <= y0:
        return
    coverage = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.putText(coverage, text, (x - x0, y - y0), _FONT, scale, 255, thickness, cv2.LINE_AA)
    outline = cv2.dilate(coverage, np.ones((3, 3), np.uint8), iterations=max(1, thickness // 2 + 1))
    fill = coverage.astype(np.float32)[..., None] / 255.0
    edge = outline.astype(np.float32)[..., None] / 255.0
    roi = image[y0:y1, x0:x1].astype(np.float32) * (1.0 - edge)
    image[y0:y1, x0:x1] = np.clip(roi * (1.0 - fill) + 255.0 * fill + 0.5, 0, 255).astype(np.uint8)


def _label_anchor(mask: np.ndarray) -> tuple[int, int]:
    """The mask centroid (x, y), moved to the nearest mask pixel when it falls outside a non-convex mask."""
    ys, xs = np.nonzero(mask)
    cx, cy = float(xs.mean()), float(ys.mean())
    if mask[int(round(cy)), int(round(cx))]:
        return int(round(cx)), int(round(cy))
    nearest = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
    return int(xs[nearest]), int(ys[nearest])


def overlay(
    frame: np.ndarray, label_map: np.ndarray, alpha: float = 0.5, draw_ids: bool = True, contours: bool = True
) -> np.ndarray:
    """Blend DAVIS-palette object colours over ``frame``; add each object's contour and id.

    Only object pixels (1..254) change colour, so the background stays the untouched frame; contours are
    drawn in the object's colour at full opacity and ids at the mask centroid.
    """
    frame = _check_rgb(frame, "overlay frame")
    labels = np.asarray(label_map)
    if labels.shape != frame.shape[:2]:
        raise DataError(
            f"overlay: label map size {labels.shape} differs from the frame size {frame.shape[:2]}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    labels = labels.astype(np.uint8, copy=False)
    out = frame.copy()
    objects = (labels > 0) & (labels != VOID_LABEL)
    if not objects.any():
        return out
    colours = DAVIS_PALETTE[labels[objects]].astype(np.float32)
    out[objects] = np.clip((1.0 - alpha) * frame[objects] + alpha * colours + 0.5, 0, 255).astype(np.uint8)
    ids = [int(i) for i in np.unique(labels[objects])]
    h, w = labels.shape
    thickness = max(1, round(min(h, w) / 240))
    scale, stroke = _text_scale(h, w)
    masks = {i: (labels == i).astype(np.uint8) for i in ids}
    if contours:
        for obj_id, mask in masks.items():
            found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            colour = tuple(int(c) for c in DAVIS_PALETTE[obj_id])
            cv2.drawContours(out, found, -1, colour, thickness, cv2.LINE_8)
    if draw_ids:
        for obj_id, mask in masks.items():
            _put_text(out, str(obj_id), _label_anchor(mask), scale, stroke)
    return out


def _fit_width(image: np.ndarray, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    height = max(1, round(h * width / w))
    interpolation = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def contact_sheet(
    frames_or_overlays: Sequence[np.ndarray],
    columns: int,
    tile_width: int,
    labels: Sequence[str] | None = None,
    gap: int = 4,
    background: int = 32,
) -> np.ndarray:
    """A grid of thumbnails ``tile_width`` wide (rows as tall as the tallest tile), with captions below.

    The sheet is ``columns * tile_width + (columns + 1) * gap`` pixels wide; rows are added as needed.
    """
    images = [_check_rgb(im, f"contact sheet image {i}") for i, im in enumerate(frames_or_overlays)]
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if columns < 1 or tile_width < 1:
        raise ValueError(f"contact_sheet needs columns >= 1 and tile_width >= 1, got {columns}, {tile_width}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"contact_sheet: {len(labels)} labels for {len(images)} images")
    tiles = [_fit_width(im, tile_width) for im in images]
    tile_h = max(t.shape[0] for t in tiles)
    scale, stroke = _text_scale(tile_h, tile_width)
    scale = min(scale, 0.5)
    caption_h = 0 if labels is None else cv2.getTextSize("Hg", _FONT, scale, stroke)[0][1] + 2 * gap + 2
    rows = -(-len(tiles) // columns)
    cell_h = tile_h + caption_h
    sheet = np.full(
        (rows * cell_h + (rows + 1) * gap, columns * tile_width + (columns + 1) * gap, 3),
        background,
        dtype=np.uint8,
    )
    for i, tile in enumerate(tiles):
        row, col = divmod(i, columns)
        y = gap + row * (cell_h + gap)
        x = gap + col * (tile_width + gap)
        sheet[y : y + tile.shape[0], x : x + tile_width] = tile
        if labels is not None:
            cell = sheet[y + tile_h : y + cell_h, x : x + tile_width]
            _put_text(cell, str(labels[i]), (tile_width // 2, caption_h // 2), scale, stroke)
    return sheet


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 image (H×W gray, H×W×3 RGB or H×W×4 RGBA) as a PNG, atomically."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise DataError(
            f"save_png {path}: image must be uint8 HxW, HxWx3 or HxWx4, got {image.dtype} {image.shape}"
        )
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def write_overlay_video(
    frames: Iterable[np.ndarray],
    label_maps: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float,
    **overlay_kwargs: Any,
) -> int:
    """Stream ``overlay(frame, labels)`` into a video file (atomic); returns the number of frames written.

    Both inputs are consumed lazily, one frame at a time, so arbitrarily long videos fit in memory.
    """
    count = 0
    with VideoWriter(path, fps) as writer:
        for index, (frame, labels) in enumerate(zip(frames, label_maps, strict=True)):
            try:
                writer.write(overlay(frame, labels, **overlay_kwargs))
            except DataError as exc:
                raise DataError(f"overlay video {path}, frame {index}: {exc}") from exc
            count += 1
    return count


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
