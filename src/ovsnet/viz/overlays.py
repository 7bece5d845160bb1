"""Pictures of results drawn with OpenCV: mask overlays, contact sheets, PNGs and overlay videos.

Images are ``uint8`` H×W×3 RGB and label maps H×W ``uint8`` (0 = background, 255 = void), as everywhere in
ovsnet. No matplotlib here, so the video CLI and the evaluation load none; plots are :mod:`ovsnet.viz.plots`.
Every file is written atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ovsnet.data.io import DAVIS_PALETTE, VOID_LABEL, DataError, atomic_path
from ovsnet.data.video_writer import VideoWriter

__all__ = ["contact_sheet", "overlay", "save_png", "write_overlay_video"]

logger = logging.getLogger(__name__)

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
