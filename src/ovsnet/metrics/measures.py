"""The DAVIS measures of binary masks: region similarity J, boundary F-measure and their statistics.

Each function equals the official DAVIS 2017 tool's (``davis2017-evaluation``) bit for bit; the boundary
counts run on each object's bounding box only (see :mod:`ovsnet.metrics.davis` for the conventions kept).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "BOUND_TH",
    "boundary_radius",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "disk",
    "seg2bmap",
]

BOUND_TH = 0.008
"""Boundary tolerance as a fraction of the image diagonal (values >= 1 are a radius in pixels)."""
STATISTICS = ("Mean", "Recall", "Decay")
_N_BINS = 4


def disk(radius: float) -> np.ndarray:
    """Disk structuring element, ``uint8``; the same array as ``skimage.morphology.disk(radius)``.

    Reproduced with numpy (pixels of the ``[-r, r]`` grid whose squared distance is at most ``r²``) so that the
    evaluation needs no scikit-image.
    """
    coords = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(coords, coords)
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def boundary_radius(shape: Sequence[int], bound_th: float = BOUND_TH) -> float:
    """Tolerance radius in pixels: ``bound_th`` itself when >= 1, else ``ceil(bound_th · diagonal)``."""
    if bound_th >= 1:
        return bound_th
    return float(np.ceil(bound_th * np.linalg.norm(shape[-2:])))


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary map of a binary mask (the official ``_seg2bmap``, no resizing).

    A pixel is a boundary pixel when it differs from its east, south or south-east neighbour; on the last row
    only the east neighbour counts, on the last column only the south one, and the bottom-right pixel is never
    a boundary. The boundary thus sits half a pixel towards the origin from the true contour.
    """
    seg = np.asarray(seg).astype(bool)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap expects an HxW mask, got shape {seg.shape}")
    return _bmap(seg, bottom_edge=True, right_edge=True)


def _bmap(seg: np.ndarray, bottom_edge: bool, right_edge: bool) -> np.ndarray:
    """``seg2bmap`` of a crop ``(h, w[, channels])``: pixels past the crop are zero; the edge rules apply only
    where the crop ends at the image's last row / column."""
    h, w = seg.shape[:2]
    padded = np.zeros((h + 1, w + 1, *seg.shape[2:]), dtype=bool)
    padded[:h, :w] = seg
    east = padded[:h, 1:]
    south = padded[1:, :w]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ padded[1:, 1:])
    if bottom_edge:
        boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    if right_edge:
        boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    if bottom_edge and right_edge:
        boundary[-1, -1] = False
    return boundary


def f_from_counts(
    n_fg: np.ndarray, n_gt: np.ndarray, fg_match: np.ndarray, gt_match: np.ndarray
) -> np.ndarray:
    """Boundary F-measure from boundary and match counts, with the official empty-boundary conventions."""
    n_fg = np.asarray(n_fg, dtype=np.float64)
    n_gt = np.asarray(n_gt, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_fg > 0, np.asarray(fg_match, dtype=np.float64) / n_fg, 1.0)
        recall = np.where(n_gt > 0, np.asarray(gt_match, dtype=np.float64) / n_gt, 1.0)
        precision = np.where((n_fg > 0) & (n_gt == 0), 0.0, precision)
        recall = np.where((n_fg == 0) & (n_gt > 0), 0.0, recall)
        total = precision + recall
        return np.where(total == 0, 0.0, 2 * precision * recall / np.where(total == 0, 1.0, total))


def _channel_counts(pairs: np.ndarray) -> tuple[int, int]:
    """Non-zero counts of the two channels of a contiguous (h, w, 2) boolean array, in one pass each.

    Each pixel's two bytes read as one uint16: masking the low / high byte counts one channel without a strided
    view (several times faster than counting ``pairs[..., 0]``).
    """
    words = pairs.view(np.uint16)
    first, second = (0x00FF, 0xFF00) if sys.byteorder == "little" else (0xFF00, 0x00FF)
    return int(np.count_nonzero(words & first)), int(np.count_nonzero(words & second))


def boundary_counts(
    gt: np.ndarray, res: np.ndarray, kernel: np.ndarray, bottom_edge: bool = True, right_edge: bool = True
) -> tuple[int, int, int, int]:
    """(n_fg, n_gt, fg_match, gt_match) of two boolean masks, computed on their bounding box.

    The masks are the full image, or a crop of it past which both masks are empty; ``bottom_edge`` /
    ``right_edge`` say whether the crop's last row / column is the image's.
    """
    x, y, w, h = cv2.boundingRect((gt | res).view(np.uint8))
    if w == 0 or h == 0:
        return 0, 0, 0, 0
    height, width = gt.shape
    # One pixel up/left (boundaries sit half a pixel towards the origin) and one down/right (neighbours).
    y0, y1 = max(y - 1, 0), min(y + h + 1, height)
    x0, x1 = max(x - 1, 0), min(x + w + 1, width)
    bottom, right = bottom_edge and y1 == height, right_edge and x1 == width
    # Both masks as the two channels of one crop: one boundary pass and one dilation serve both.
    pair = np.stack((gt[y0:y1, x0:x1], res[y0:y1, x0:x1]), axis=-1)
    boundaries = _bmap(pair, bottom, right)
    n_gt, n_fg = _channel_counts(boundaries)
    if n_gt == 0 or n_fg == 0:
        return n_fg, n_gt, 0, 0
    # Every boundary pixel lies in the crop, so dilating the crop gives the full-image values inside it.
    dilated = cv2.dilate(boundaries.view(np.uint8), kernel)
    # Swapping the two bytes of each pixel pairs ground-truth boundaries with the dilated result and back.
    matches = boundaries.view(np.uint16) & dilated.view(np.uint16).byteswap()
    gt_match, fg_match = _channel_counts(matches.view(bool))
    return n_fg, n_gt, fg_match, gt_match


def db_eval_iou(
    annotation: np.ndarray, segmentation: np.ndarray, void_pixels: np.ndarray | None = None
) -> float | np.ndarray:
    """Region similarity J (Jaccard index) of binary masks ``(..., H, W)``; 1 where the union is empty.

    ``void_pixels`` (same shape) are left out of both intersection and union. Returns a float for one HxW pair,
    else an array over the leading axes.
    """
    annotation = np.asarray(annotation).astype(bool)
    segmentation = np.asarray(segmentation).astype(bool)
    if annotation.shape != segmentation.shape:
        raise ValueError(
            f"annotation {annotation.shape} and segmentation {segmentation.shape} differ in shape"
        )
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels).astype(bool)
        if void_pixels.shape != annotation.shape:
            raise ValueError(
                f"annotation {annotation.shape} and void pixels {void_pixels.shape} differ in shape"
            )
        keep = ~void_pixels
        inters = np.count_nonzero(annotation & segmentation & keep, axis=(-2, -1))
        union = np.count_nonzero((annotation | segmentation) & keep, axis=(-2, -1))
    else:
        inters = np.count_nonzero(annotation & segmentation, axis=(-2, -1))
        union = np.count_nonzero(annotation | segmentation, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.where(union == 0, 1.0, np.asarray(inters, dtype=np.float64) / np.where(union == 0, 1, union))
    return float(j) if j.ndim == 0 else j


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> float | np.ndarray:
    """Boundary F-measure of binary masks ``(..., H, W)`` (official ``db_eval_boundary``).

    ``void_pixels`` (same shape) are removed from both masks before their boundaries are taken. Returns a float
    for one HxW pair, else an array over the leading axes.
    """
    annotation = np.asarray(annotation).astype(bool)
    segmentation = np.asarray(segmentation).astype(bool)
    if annotation.shape != segmentation.shape:
        raise ValueError(
            f"annotation {annotation.shape} and segmentation {segmentation.shape} differ in shape"
        )
    if annotation.ndim < 2:
        raise ValueError(f"db_eval_boundary expects (..., H, W) masks, got shape {annotation.shape}")
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels).astype(bool)
        if void_pixels.shape != annotation.shape:
            raise ValueError(
                f"annotation {annotation.shape} and void pixels {void_pixels.shape} differ in shape"
            )
        annotation = annotation & ~void_pixels
        segmentation = segmentation & ~void_pixels
    lead = annotation.shape[:-2]
    gts = annotation.reshape(-1, *annotation.shape[-2:])
    ress = segmentation.reshape(-1, *segmentation.shape[-2:])
    kernel = disk(boundary_radius(annotation.shape, bound_th))
    counts = np.array([boundary_counts(g, r, kernel) for g, r in zip(gts, ress, strict=True)], dtype=np.int64)
    f = f_from_counts(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3]).reshape(lead)
    return float(f) if f.ndim == 0 else f


def db_statistics(per_frame_values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame values (NaNs ignored by mean and decay).

    Recall is the fraction of frames above 0.5; decay is the mean of the first of 4 frame bins minus that of the
    last, with the official bin edges (``uint8``-cast, so they wrap for sequences longer than 255 frames).
    """
    values = np.asarray(per_frame_values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > 0.5))
        edges = (np.round(np.linspace(1, len(values), _N_BINS + 1) + 1e-10) - 1).astype(np.int64) % 256
        first = values[edges[0] : (edges[1] + 1) % 256]
        last = values[edges[_N_BINS - 1] : (edges[_N_BINS] + 1) % 256]
        decay = float(np.nanmean(first) - np.nanmean(last))
    return mean, recall, decay
