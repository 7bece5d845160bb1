"""A dreamed frame as data: the cached source, the pasted layers and the scene, and how a scene is rendered
(layers pasted back to front over the augmented background, then one global warp and the illumination)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ovsnet.data.lucid.compositing import blend_alpha, feather_alpha, illumination, seamless
from ovsnet.data.lucid.geometry import ThinPlateSpline


@dataclass
class Source:
    """What a source frame yields once: inpainted background, object ids, per-object boxes and areas."""

    background: np.ndarray
    ids: list[int]
    areas: dict[int, int]
    boxes: dict[int, tuple[int, int, int, int]]  # x, y, w, h
    has_void: bool


@dataclass
class Layer:
    """Objects pasted together: a source crop, a backward map (TPS ∘ scale ∘ placement) and a dest region."""

    image: np.ndarray  # source crop
    labels: np.ndarray  # source crop, 0 outside the layer's objects
    origin: tuple[int, int]  # crop (x, y) in the source
    box: tuple[float, float, float, float]  # layer content (x0, y0, w, h) in the source
    scale: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)  # destination of the box's top-left
    tps: ThinPlateSpline | None = None
    margin: float = 0.0  # growth of the shape by the TPS (source px)

    def region(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The destination window (x0, y0, x1, y1) the placed, scaled and deformed layer can cover."""
        x0, y0, w, h = self.box
        grow = (self.margin + 1.0) * self.scale
        tx, ty = self.offset
        return (
            max(0, math.floor(tx - grow)),
            max(0, math.floor(ty - grow)),
            min(width, math.ceil(tx + w * self.scale + grow)),
            min(height, math.ceil(ty + h * self.scale + grow)),
        )

    def source_maps(self, region: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Crop coordinates (``cv2.remap`` maps) of the destination pixels of ``region`` (x0, y0, x1, y1):
        placement and scale undone (pixel centres at integers, exact for scale 1), then the deformation."""
        rx0, ry0, rx1, ry1 = region
        u = np.arange(rx0, rx1, dtype=np.float32)[None, :].repeat(ry1 - ry0, 0)
        v = np.arange(ry0, ry1, dtype=np.float32)[:, None].repeat(rx1 - rx0, 1)
        a, b = self._unscaled(u, v)
        if self.tps is not None:
            a, b = self.tps(a, b)
        return a - np.float32(self.origin[0]), b - np.float32(self.origin[1])

    def _unscaled(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Destination pixel → source frame point before the deformation (undoes placement and scale)."""
        x0, y0, _, _ = self.box
        tx, ty = self.offset
        if self.scale == 1.0:
            return u + np.float32(x0 - tx), v + np.float32(y0 - ty)
        s = np.float32(self.scale)
        a = np.float32(x0 - 0.5) + (u - np.float32(tx - 0.5)) / s
        b = np.float32(y0 - 0.5) + (v - np.float32(ty - 0.5)) / s
        return a, b


@dataclass
class Scene:
    """Everything drawn for one sample: rendering it is deterministic, so a draw can be retried cheaply."""

    background: np.ndarray
    layers: list[Layer]
    order: list[int]  # back to front
    global_matrix: np.ndarray  # 3x3, scene → output (rotation-zoom and flip)
    illumination: np.ndarray | None  # (2, 3) S and V params


def render_layer(
    layer: Layer, region: tuple[int, int, int, int], erode_px: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layer's image, labels and mask over ``region`` (x0, y0, x1, y1) of the scene.

    A deformed mask is eroded by ``erode_px`` (the recipe's 1 px) so resampling never grows an object, except
    an object thinner than the erosion, which would vanish and is kept whole instead.
    """
    mx, my = layer.source_maps(region)
    mx, my = np.ascontiguousarray(mx, np.float32), np.ascontiguousarray(my, np.float32)
    image = cv2.remap(layer.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    labels = cv2.remap(layer.labels, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if layer.tps is not None and erode_px > 0:
        kernel = np.ones((2 * erode_px + 1,) * 2, np.uint8)
        keep = cv2.erode((labels != 0).view(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
        eroded = np.where(keep > 0, labels, 0).astype(np.uint8)
        before = np.bincount(labels.ravel(), minlength=256)
        after = np.bincount(eroded.ravel(), minlength=256)
        lost = np.flatnonzero((before > 0) & (after == 0))
        lost = lost[lost != 0]
        if len(lost):
            restore = np.isin(labels, lost)
            eroded[restore] = labels[restore]
        labels = eroded
    return image, labels, labels != 0


def composite(scene: Scene, blend: str, blend_width: int, erode_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Paste the layers back to front over the background; pasted labels overwrite (that is occlusion)."""
    height, width = scene.background.shape[:2]
    image = scene.background.copy()
    labels = np.zeros((height, width), np.uint8)
    if blend_width <= 0:
        blend = "none"
    for index in scene.order:
        layer = scene.layers[index]
        region = layer.region(width, height)
        if region[2] <= region[0] or region[3] <= region[1]:
            continue
        over, lab, mask = render_layer(layer, region, erode_px)
        if not mask.any():
            continue
        sl = (slice(region[1], region[3]), slice(region[0], region[2]))
        under = image[sl]
        if blend == "feather":
            image[sl] = blend_alpha(under, over, feather_alpha(mask, blend_width))
        elif blend == "seamless":
            image[sl] = seamless(under, over, mask, blend_width)
        else:
            under[mask] = over[mask]
        labels[sl][mask] = lab[mask]
    return image, labels


def output_frame(scene: Scene, image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scene → output: the global rotation-zoom / flip in one warp, then the illumination change.

    Labels are warped as ``labels + 1`` with nearest interpolation so pixels from outside the scene are
    known: they are filled from the warped inpainted background with label 0, never with reflected objects.
    """
    height, width = labels.shape
    m = scene.global_matrix
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    if np.allclose(m, np.eye(3), rtol=0.0, atol=1e-9):
        out, out_lab = image, labels
    elif np.allclose(m, flip, rtol=0.0, atol=1e-9):
        out, out_lab = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(labels[:, ::-1])
    else:
        size = (width, height)
        out = cv2.warpAffine(image, m[:2], size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        lab = cv2.warpAffine(
            labels.astype(np.uint16) + 1,
            m[:2],
            size,
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        uncovered = lab == 0
        if uncovered.any():
            bg = cv2.warpAffine(
                scene.background, m[:2], size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
            )
            out[uncovered] = bg[uncovered]
        out_lab = np.where(uncovered, 0, lab - 1).astype(np.uint8)
    if scene.illumination is not None:
        out = illumination(out, scene.illumination)
    return out, out_lab
