"""Deforming shapes in object-local units (about 1 = the body's half-size; x right, y down): rigid body
polygons plus a swinging kinematic tree of tapered segments, and their rasterisation to part-id maps.

Each part carries the map back to its rest pose, so a photo texture sampled in rest coordinates moves with
the part (a limb keeps its own patch of texture as it swings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_MIRROR = np.diag([-1.0, 1.0])


@dataclass
class Part:
    """One rigid piece of a shape at a frame: outline, holes, and the map back to its rest pose.

    ``to_rest`` (2x3) maps the part's current object-local coordinates to where they were at rest, so the
    photo texture, sampled in rest coordinates, moves with the part.
    """

    outline: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)
    to_rest: np.ndarray = field(default_factory=lambda: _IDENTITY)


@dataclass
class Segment:
    """A tapered capsule in a kinematic tree; its angle swings ``amp · sin(omega·t + phase)`` about rest."""

    parent: int  # -1: fixed to the body at ``anchor``
    anchor: tuple[float, float]
    at: float  # fraction along the parent where it starts
    angle: float  # rest angle: absolute for a root, relative to the parent otherwise
    length: float
    width: tuple[float, float]  # half-widths at the start and the end
    amp: float = 0.0
    omega: float = 0.0
    phase: float = 0.0


def ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 28, rot: float = 0.0) -> np.ndarray:
    """``n`` outline points of an ellipse centred at (cx, cy) with half-axes (ax, ay), rotated by ``rot``."""
    theta = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    x, y = ax * np.cos(theta), ay * np.sin(theta)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


class Shape:
    """A deforming shape: rigid body polygons plus a swinging kinematic tree of tapered segments."""

    kind = "shape"

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.mirror = False
        self.min_width = 0.0  # local units; set once the pixel size is known
        self._rest: tuple[np.ndarray, np.ndarray] | None = None
        self._lengths = self._widths = np.zeros(0)
        self.upright = False  # keeps its orientation (a walking body), instead of spinning freely
        self.info: dict[str, Any] = {}

    def root(
        self,
        anchor: tuple[float, float],
        angle: float,
        length: float,
        width: tuple[float, float],
        amp: float = 0.0,
        omega: float = 0.0,
        phase: float = 0.0,
    ) -> int:
        """Add a segment fixed to the body at ``anchor`` (absolute rest angle); returns its index."""
        self.segments.append(Segment(-1, anchor, 0.0, angle, length, width, amp, omega, phase))
        return len(self.segments) - 1

    def child(
        self,
        parent: int,
        at: float,
        angle: float,
        length: float,
        width: tuple[float, float],
        amp: float = 0.0,
        omega: float = 0.0,
        phase: float = 0.0,
    ) -> int:
        """Add a segment starting ``at`` (fraction) along ``parent``, angled relative to it; returns its index."""
        self.segments.append(Segment(parent, (0.0, 0.0), at, angle, length, width, amp, omega, phase))
        return len(self.segments) - 1

    # -- to implement ----------------------------------------------------------------------------------------
    def body(self, t: int) -> list[Part]:
        return []

    def body_reach(self) -> float:
        return 0.0

    # -- shared ----------------------------------------------------------------------------------------------
    def _pose(self, t: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Starts (S, 2) and angles (S,) of the segments at frame ``t`` (``None``: rest pose)."""
        starts, angles = np.zeros((len(self.segments), 2)), np.zeros(len(self.segments))
        for i, seg in enumerate(self.segments):
            swing = 0.0 if t is None else seg.amp * math.sin(seg.omega * t + seg.phase)
            if seg.parent < 0:
                sx, sy = seg.anchor
                angle = seg.angle + swing
            else:
                reach = seg.at * self.segments[seg.parent].length
                pa = angles[seg.parent]
                sx = starts[seg.parent, 0] + reach * math.cos(pa)
                sy = starts[seg.parent, 1] + reach * math.sin(pa)
                angle = pa + seg.angle + swing
            starts[i] = sx, sy
            angles[i] = angle
        return starts, angles

    def _segment_parts(self, t: int) -> list[Part]:
        """Tapered capsules with round ends (vectorised over the segments) and their rest-pose maps."""
        if self._rest is None:
            self._rest = self._pose(None)
            self._lengths = np.array([s.length for s in self.segments])
            self._widths = np.array([s.width for s in self.segments])
        starts, angles = self._pose(t)
        rest_starts, rest_angles = self._rest
        widths = np.maximum(self._widths, self.min_width)
        ends = starts + self._lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        half = np.linspace(-math.pi / 2, math.pi / 2, 7)
        end_arc = angles[:, None] + half[None]
        start_arc = end_arc + math.pi
        outlines = np.concatenate(
            [
                ends[:, None]
                + widths[:, 1, None, None] * np.stack([np.cos(end_arc), np.sin(end_arc)], axis=2),
                starts[:, None]
                + widths[:, 0, None, None] * np.stack([np.cos(start_arc), np.sin(start_arc)], axis=2),
            ],
            axis=1,
        )
        delta = rest_angles - angles
        c, si = np.cos(delta), np.sin(delta)
        rot = np.stack([np.stack([c, -si], axis=1), np.stack([si, c], axis=1)], axis=1)  # (S, 2, 2)
        offsets = rest_starts - np.einsum("sij,sj->si", rot, starts)
        maps = np.concatenate([rot, offsets[:, :, None]], axis=2)
        return [Part(outlines[i], [], maps[i]) for i in range(len(self.segments))]

    def parts(self, t: int) -> list[Part]:
        """Body first (holes cut only through it), then the segments, parents before children."""
        parts = self.body(t)
        if self.segments:
            parts.extend(self._segment_parts(t))
        if self.mirror:
            for part in parts:
                part.outline = part.outline * (-1.0, 1.0)
                part.holes = [h * (-1.0, 1.0) for h in part.holes]
                lin = _MIRROR @ part.to_rest[:, :2] @ _MIRROR
                part.to_rest = np.hstack([lin, (_MIRROR @ part.to_rest[:, 2])[:, None]])
        return parts

    def reach(self) -> float:
        """An upper bound of the distance from the origin to any point of the shape, over all frames."""
        bound: list[float] = []
        reach = self.body_reach()
        for seg in self.segments:
            if seg.parent < 0:
                start = float(np.hypot(*seg.anchor))
            else:
                start = bound[seg.parent] - (1.0 - seg.at) * self.segments[seg.parent].length
            bound.append(start + seg.length)
            reach = max(reach, bound[-1] + max(*seg.width, self.min_width))
        return reach

    def typical_reach(self) -> float:
        """Farthest point from the origin over a sample of frames: the size that sizing and spacing use.

        :meth:`reach` is a strict bound (for planned exits) but far too loose for long kinematic chains.
        """
        reach = 0.0
        for t in range(0, 48, 4):
            body = [np.hypot(*p.outline.T).max() for p in self.body(t)]
            if self.segments:
                starts, angles = self._pose(t)
                ends = starts + np.array([s.length for s in self.segments])[:, None] * np.stack(
                    [np.cos(angles), np.sin(angles)], axis=1
                )
                w = np.array([s.width for s in self.segments])
                body.append(float((np.hypot(*ends.T) + w[:, 1]).max()))
                body.append(float((np.hypot(*starts.T) + w[:, 0]).max()))
            reach = max(reach, *body)
        return reach

    def unit_area(self, t: int = 0, px: float = 24.0) -> tuple[float, float]:
        """Pixel area and convex-hull area at frame ``t`` in squared local units (rasterised at ``px``/unit)."""
        size = int(math.ceil(2 * self.reach() * px)) + 4
        origin = np.array([size / 2.0, size / 2.0])
        polys = [(p.outline * px + origin, [h * px + origin for h in p.holes]) for p in self.parts(t)]
        area = float(np.count_nonzero(raster(polys, (0, 0), (size, size)))) / (px * px)
        hull = cv2.convexHull(np.concatenate([o for o, _ in polys]).astype(np.float32))
        return area, max(area, float(cv2.contourArea(hull)) / (px * px))


def fixed(points: np.ndarray, origin: tuple[float, float]) -> np.ndarray:
    return np.round((points - origin) * 16.0).astype(np.int32)


def raster(
    polys: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]],
    origin: tuple[float, float],
    shape: tuple[int, int],
) -> np.ndarray:
    """Part-id map (1-based, 0 = none) of polygons in pixel coordinates; later parts cover earlier ones."""
    ids = np.zeros(shape, np.uint8)
    for k, (outline, holes) in enumerate(polys):
        cv2.fillPoly(ids, [fixed(outline, origin)], k + 1, lineType=cv2.LINE_8, shift=4)
        for hole in holes:
            cv2.fillPoly(ids, [fixed(hole, origin)], 0, lineType=cv2.LINE_8, shift=4)
    return ids
