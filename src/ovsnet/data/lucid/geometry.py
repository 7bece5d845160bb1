"""Geometry of a dreamed frame: similarity and rotation-zoom matrices, and the random thin-plate spline that
deforms an object (5 boundary points moved by up to 5% of its box, the box's far corners pinned)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator


def disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def affine(m: np.ndarray) -> np.ndarray:
    """2x3 → 3x3 so matrices compose with ``@``."""
    return np.vstack([np.asarray(m, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def similarity(
    width: int, height: int, angle_deg: float, sx: float, sy: float, tx: float, ty: float
) -> np.ndarray:
    """Rotation (counter-clockwise on screen, like cv2) and x/y scale about the centre, then a translation."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    t = math.radians(angle_deg)
    cos, sin = math.cos(t), math.sin(t)
    rot = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
    scale = np.diag([sx, sy, 1.0])
    return (
        np.array([[1, 0, cx + tx], [0, 1, cy + ty], [0, 0, 1.0]])
        @ rot
        @ scale
        @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    )


def inscribed_zoom(width: int, height: int, angle_deg: float) -> float:
    """Zoom that makes a rotated frame cover the whole output: same-aspect rectangle inscribed in it."""
    t = math.radians(abs(angle_deg))
    cos, sin = math.cos(t), math.sin(t)
    k = min(width / (width * cos + height * sin), height / (width * sin + height * cos))
    return 1.0 / k


#: Points per RBFInterpolator call. OpenBLAS multithreads the larger matrix products of the evaluation, and in
#: DataLoader workers on a busy machine those threads only contend (3x slower); products this small run on one.
_CHUNK = 4096


class ThinPlateSpline:
    """A 2-D thin-plate spline ``f`` with ``f(dst_i) ≈ src_i``: used as a backward map for ``cv2.remap``.

    Fitted by :class:`~scipy.interpolate.RBFInterpolator` on control points centred and scaled to a unit box,
    so ``regularization`` means the same at every image size: it is the ridge added to the ``r²·log r²``
    kernel matrix (scipy's kernel is ``r²·log r``, half of it, hence half the smoothing).
    """

    def __init__(self, dst: np.ndarray, src: np.ndarray, regularization: float = 1e-3) -> None:
        dst = np.asarray(dst, np.float64)
        self.centre = dst.mean(axis=0)
        self.scale = float(max(np.ptp(dst, axis=0).max(), 1.0))
        self._rbf = RBFInterpolator(
            (dst - self.centre) / self.scale,
            np.asarray(src, np.float64),
            kernel="thin_plate_spline",
            smoothing=regularization / 2.0,
            degree=1,
        )

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points = (np.stack([np.ravel(x), np.ravel(y)], axis=1).astype(np.float64) - self.centre) / self.scale
        chunks = [self._rbf(points[i : i + _CHUNK]) for i in range(0, len(points), _CHUNK)]
        out = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 2), np.float32)
        return out[:, 0].reshape(np.shape(x)), out[:, 1].reshape(np.shape(y))


def _boundary_points(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct random (x, y) pixels on the boundary of a binary mask (fewer if it is tiny)."""
    mask = mask.astype(np.uint8)
    edge = mask & ~cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    ys, xs = np.nonzero(edge)
    if len(xs) == 0:
        return np.zeros((0, 2))
    pick = rng.choice(len(xs), size=min(count, len(xs)), replace=False)
    return np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)


def random_tps(
    mask: np.ndarray,
    origin: tuple[float, float],
    box: tuple[float, float, float, float],
    points: int,
    magnitude: float,
    reg: float,
    rng: np.random.Generator,
) -> tuple[ThinPlateSpline | None, float]:
    """Backward TPS moving ``points`` boundary pixels by up to ``magnitude`` of the box, corners fixed.

    ``mask`` is a crop whose (0, 0) is at ``origin``; ``box`` is (x0, y0, w, h) in the same frame as origin.
    Returns the spline (None when the mask has no boundary) and the margin (px) the shape may grow by.
    """
    x0, y0, w, h = box
    margin = magnitude * max(w, h) + 2.0
    src = _boundary_points(mask, points, rng)
    if len(src) == 0:
        return None, 0.0
    src += np.asarray(origin, np.float64)
    dst = src + np.stack(
        [
            rng.uniform(-magnitude * w, magnitude * w, len(src)),
            rng.uniform(-magnitude * h, magnitude * h, len(src)),
        ],
        axis=1,
    )
    pad = 2.0 * margin
    corners = np.array(
        [
            [x0 - pad, y0 - pad],
            [x0 + w + pad, y0 - pad],
            [x0 - pad, y0 + h + pad],
            [x0 + w + pad, y0 + h + pad],
        ]
    )
    tps = ThinPlateSpline(np.vstack([dst, corners]), np.vstack([src, corners]), reg)
    return tps, margin
