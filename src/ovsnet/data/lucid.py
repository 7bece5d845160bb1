"""Lucid Data Dreaming: new training frames and frame pairs (with flow) from one annotated frame.

Khoreva et al., "Lucid Data Dreaming for Video Object Segmentation". The objects are cut out, the hole is
inpainted (once per source frame, cached), the background is augmented, the objects are deformed (thin-plate
spline), scaled and re-pasted in a random depth order (so they occlude each other), and the whole frame gets a
global rotation, flip and illumination change. A pair adds a camera affine and/or an object motion and returns
the exact flow between the two frames. Every number is a :class:`LucidConfig` field; the defaults are the
recipe's (``shared/notes/lucid-data-dreaming.md``).

Label maps are only ever resampled with nearest interpolation, so every output label is an input label,
0 or 255 (void). All randomness comes from the ``rng`` argument: the same seed gives the same output.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ovsnet.data.io import VOID_LABEL, DataError

__all__ = ["LucidConfig", "LucidDreamer"]

log = logging.getLogger(__name__)

MOTION_TYPES = ("both", "objects", "camera")
BLEND_MODES = ("feather", "seamless", "none")
_RANGE_FIELDS = ("bg_scale_range", "scale_range", "illum_a", "illum_b", "illum_c", "camera_scale_range")
_PROB_FIELDS = (
    "bg_flip_p",
    "bg_affine_p",
    "bg_illumination_p",
    "keep_unselected_p",
    "independent_p",
    "deform_p",
    "rotation_p",
    "flip_p",
    "illumination_p",
)

Map = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class LucidConfig:
    """Every parameter of the recipe; ranges are ``(low, high)``, fractions are of the box or image size."""

    # background: objects removed (mask dilated by a disk of ``inpaint_radius`` px), inpainted, cached
    inpaint_radius: int = 7
    inpaint_method: str = "telea"  # cv2.inpaint: "telea" or "ns"
    inpaint_cv_radius: int = 3  # cv2.inpaint's neighbourhood radius
    cache_size: int = 32  # inpainted source frames kept (LRU), per process / DataLoader worker
    bg_flip_p: float = 0.5
    bg_affine_p: float = 0.5  # small affine of the background (not in the notes; 0 = the original recipe)
    bg_rotation_deg: float = 3.0
    bg_scale_range: tuple[float, float] = (0.95, 1.05)
    bg_translation: float = 0.05
    bg_illumination_p: float = 0.5
    # objects: k of N (k uniform in 1..N) move together; the others are kept in place or removed
    keep_unselected_p: float = 0.5
    independent_p: float = 0.0  # probability that the selected objects move separately instead of as a group
    deform_p: float = 0.5
    tps_points: int = 5
    tps_magnitude: float = 0.05  # control points move by up to this fraction of the box width/height
    tps_regularization: float = 1e-3
    erode_px: int = 1  # erosion of a deformed mask
    scale_range: tuple[float, float] = (0.85, 1.15)  # uniform scale of the moved box
    max_translation: float | None = None  # None: anywhere inside the image; else at most this image fraction
    blend: str = "feather"  # "feather" (alpha ramp inside the mask), "seamless" (cv2.seamlessClone), "none"
    blend_width: int = 2
    # global
    rotation_p: float = 0.5
    rotation_deg: float = 30.0  # then cropped to the inscribed rectangle and resized back
    flip_p: float = 0.5
    illumination_p: float = 0.5
    illum_a: tuple[float, float] = (0.97, 1.03)  # x' = a * x**b + c on HSV saturation and value, x in [0, 1]
    illum_b: tuple[float, float] = (0.8, 1.2)
    illum_c: tuple[float, float] = (-0.05, 0.05)
    # pairs
    motion_types: tuple[str, ...] = MOTION_TYPES
    camera_rotation_deg: float = 3.0
    camera_scale_range: tuple[float, float] = (0.95, 1.05)  # x and y drawn separately
    camera_translation: float = 0.05
    pair_tps_points: int = 5
    pair_tps_magnitude: float = 0.05
    pair_shift: float = 0.05  # object shift, fraction of its box size
    # safety
    min_object_pixels: int = 16  # a sample is kept when some object has this many pixels (or its full area)
    max_tries: int = 10

    def __post_init__(self) -> None:
        for name in _RANGE_FIELDS:
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(f"LucidConfig.{name} must be (low, high) with low <= high, got {value}")
            setattr(self, name, value)
        for name in _PROB_FIELDS:
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"LucidConfig.{name} must be a probability, got {getattr(self, name)}")
        self.motion_types = tuple(str(m) for m in self.motion_types)
        if not self.motion_types or any(m not in MOTION_TYPES for m in self.motion_types):
            raise ValueError(f"LucidConfig.motion_types must be a non-empty subset of {MOTION_TYPES}")
        if self.blend not in BLEND_MODES:
            raise ValueError(f"LucidConfig.blend must be one of {BLEND_MODES}, got {self.blend!r}")
        if self.inpaint_method not in ("telea", "ns"):
            raise ValueError(
                f"LucidConfig.inpaint_method must be 'telea' or 'ns', got {self.inpaint_method!r}"
            )
        if self.scale_range[0] <= 0 or self.bg_scale_range[0] <= 0 or self.camera_scale_range[0] <= 0:
            raise ValueError("LucidConfig scale ranges must be positive")
        if self.max_tries < 1 or self.cache_size < 0:
            raise ValueError("LucidConfig.max_tries must be >= 1 and cache_size >= 0")


# ----------------------------------------------------------------------------------------------- geometry


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _affine(m: np.ndarray) -> np.ndarray:
    """2x3 → 3x3 so matrices compose with ``@``."""
    return np.vstack([np.asarray(m, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def _similarity(
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


def _inscribed_zoom(width: int, height: int, angle_deg: float) -> float:
    """Zoom that makes a rotated frame cover the whole output: same-aspect rectangle inscribed in it."""
    t = math.radians(abs(angle_deg))
    cos, sin = math.cos(t), math.sin(t)
    k = min(width / (width * cos + height * sin), height / (width * sin + height * cos))
    return 1.0 / k


def _apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


class _ThinPlateSpline:
    """A 2-D thin-plate spline ``f`` with ``f(dst_i) ≈ src_i``: used as a backward map for ``cv2.remap``."""

    def __init__(self, dst: np.ndarray, src: np.ndarray, regularization: float = 1e-3) -> None:
        dst = np.asarray(dst, np.float64)
        src = np.asarray(src, np.float64)
        n = len(dst)
        self.centre = dst.mean(axis=0)
        self.scale = float(max(np.ptp(dst, axis=0).max(), 1.0))
        pts = (dst - self.centre) / self.scale
        r2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        system = np.zeros((n + 3, n + 3))
        system[:n, :n] = self._kernel(r2) + regularization * np.eye(n)
        system[:n, n] = 1.0
        system[:n, n + 1 :] = pts
        system[n, :n] = 1.0
        system[n + 1 :, :n] = pts.T
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = src
        self.coef = np.linalg.lstsq(system, rhs, rcond=None)[0]
        self.points = pts

    @staticmethod
    def _kernel(r2: np.ndarray) -> np.ndarray:
        return r2 * np.log(np.maximum(r2, 1e-20))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xn = ((x - self.centre[0]) / self.scale).astype(np.float32)
        yn = ((y - self.centre[1]) / self.scale).astype(np.float32)
        a = self.coef[len(self.points) :]
        out_x = (a[0, 0] + a[1, 0] * xn + a[2, 0] * yn).astype(np.float32)
        out_y = (a[0, 1] + a[1, 1] * xn + a[2, 1] * yn).astype(np.float32)
        for (px, py), (wx, wy) in zip(self.points, self.coef[: len(self.points)], strict=True):
            u = self._kernel((xn - np.float32(px)) ** 2 + (yn - np.float32(py)) ** 2)
            out_x += np.float32(wx) * u
            out_y += np.float32(wy) * u
        return out_x, out_y


def _boundary_points(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct random (x, y) pixels on the boundary of a binary mask (fewer if it is tiny)."""
    mask = mask.astype(np.uint8)
    edge = mask & ~cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    ys, xs = np.nonzero(edge)
    if len(xs) == 0:
        return np.zeros((0, 2))
    pick = rng.choice(len(xs), size=min(count, len(xs)), replace=False)
    return np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)


def _random_tps(
    mask: np.ndarray,
    origin: tuple[float, float],
    box: tuple[float, float, float, float],
    points: int,
    magnitude: float,
    reg: float,
    rng: np.random.Generator,
) -> tuple[_ThinPlateSpline | None, float]:
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
    tps = _ThinPlateSpline(np.vstack([dst, corners]), np.vstack([src, corners]), reg)
    return tps, margin


# ----------------------------------------------------------------------------------------------- imaging


def _illumination(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    """``x' = a·x^b + c`` on HSV saturation and value (params rows: S, V), hue untouched, clipped."""
    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.empty((256, 1, 3), np.uint8)
    lut[:, 0, 0] = np.arange(256)
    for channel, (a, b, c) in ((1, params[0]), (2, params[1])):
        lut[:, 0, channel] = np.rint(np.clip(a * x**b + c, 0.0, 1.0) * 255.0).astype(np.uint8)
    hsv = cv2.LUT(cv2.cvtColor(image, cv2.COLOR_RGB2HSV), lut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _feather_alpha(mask: np.ndarray, width: int) -> np.ndarray:
    """Alpha ramping from ~0.5 at the mask edge to 1 ``width`` px inside; 0 outside (labels stay hard)."""
    alpha = cv2.blur(mask.astype(np.float32), (2 * width + 1, 2 * width + 1), borderType=cv2.BORDER_REFLECT)
    alpha[~mask] = 0.0
    alpha[alpha > 0.999] = 1.0
    return alpha


def _seamless(under: np.ndarray, over: np.ndarray, mask: np.ndarray, width: int) -> np.ndarray:
    """Poisson blending of ``over`` into ``under`` inside ``mask``; feathering where Poisson cannot run."""
    if mask.sum() < 16 or min(mask.shape) < 3:
        return _blend_alpha(under, over, _feather_alpha(mask, width))
    pad = 3
    src = cv2.copyMakeBorder(over, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    dst = cv2.copyMakeBorder(under, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    m = cv2.copyMakeBorder(mask.astype(np.uint8) * 255, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(m)
    try:
        out = cv2.seamlessClone(src, dst, m, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    except cv2.error as exc:  # degenerate shapes: keep the cheap blend
        log.debug("seamlessClone failed (%s); feathering instead", exc)
        return _blend_alpha(under, over, _feather_alpha(mask, width))
    out = out[pad:-pad, pad:-pad]
    return np.where(mask[..., None], out, under)


def _blend_alpha(under: np.ndarray, over: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.rint(over.astype(np.float32) * a + under.astype(np.float32) * (1.0 - a)).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- scene


@dataclass
class _Source:
    """What a source frame yields once: inpainted background, object ids, per-object boxes and areas."""

    background: np.ndarray
    ids: list[int]
    areas: dict[int, int]
    boxes: dict[int, tuple[int, int, int, int]]  # x, y, w, h
    has_void: bool


@dataclass
class _Layer:
    """Objects pasted together: a source crop, a backward map (TPS ∘ scale ∘ placement) and a dest region."""

    image: np.ndarray  # source crop
    labels: np.ndarray  # source crop, 0 outside the layer's objects
    origin: tuple[int, int]  # crop (x, y) in the source
    box: tuple[float, float, float, float]  # layer content (x0, y0, w, h) in the source
    scale: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)  # destination of the box's top-left
    tps: _ThinPlateSpline | None = None
    margin: float = 0.0  # growth of the shape by the TPS (source px)
    moving: bool = False

    def region(self, width: int, height: int, extra: float = 0.0) -> tuple[int, int, int, int]:
        x0, y0, w, h = self.box
        grow = (self.margin + 1.0) * self.scale + extra
        tx, ty = self.offset
        return (
            max(0, math.floor(tx - grow)),
            max(0, math.floor(ty - grow)),
            min(width, math.ceil(tx + w * self.scale + grow)),
            min(height, math.ceil(ty + h * self.scale + grow)),
        )

    def source_coords(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Destination pixel → crop coordinates (pixel centres at integers, exact for scale 1)."""
        x0, y0, _, _ = self.box
        tx, ty = self.offset
        if self.scale == 1.0:
            a, b = u + np.float32(x0 - tx), v + np.float32(y0 - ty)
        else:
            s = np.float32(self.scale)
            a = np.float32(x0 - 0.5) + (u - np.float32(tx - 0.5)) / s
            b = np.float32(y0 - 0.5) + (v - np.float32(ty - 0.5)) / s
        if self.tps is not None:
            a, b = self.tps(a, b)
        return a - np.float32(self.origin[0]), b - np.float32(self.origin[1])


@dataclass
class _Scene:
    """Everything drawn for one sample; rendering it twice (with a motion) gives a consistent pair."""

    background: np.ndarray
    layers: list[_Layer]
    order: list[int]  # back to front
    global_matrix: np.ndarray  # 3x3, scene → output (rotation-zoom and flip)
    illumination: np.ndarray | None  # (2, 3) S and V params


@dataclass
class _Motion:
    """Per-layer backward object motion (frame-1 scene coords → frame-0 scene coords) and its reach (px)."""

    fn: Map
    reach: float


class LucidDreamer:
    """Synthesises training frames and frame pairs from one annotated frame (see the module docstring).

    ``sample(image, labels, rng)`` returns ``(image, labels)``; ``sample_pair`` returns ``(image0, labels0,
    image1, labels1, flow)`` where ``flow`` is the **backward** flow of frame 1: for pixel (x, y) of image1,
    ``(x + flow[y, x, 0], y + flow[y, x, 1])`` is where that scene point is in image0 (channel 0 = x =
    column, channel 1 = y = row), the convention of :func:`ovsnet.inference.flow.warp`. Points that are not
    visible in image0 (occluded or outside) still carry their geometric displacement.
    """

    def __init__(self, config: LucidConfig | None = None) -> None:
        self.config = config or LucidConfig()
        self._cache: OrderedDict[bytes, _Source] = OrderedDict()

    # -------------------------------------------------------------------------------------- public API

    def sample(
        self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One new frame (uint8 HxWx3) and its label map (uint8 HxW) dreamed from ``image``/``labels``."""
        image, labels = self._check(image, labels)
        source = self._source(image, labels)
        need = self._needed_pixels(source)
        for attempt in range(self.config.max_tries):
            scene = self._draw_scene(image, labels, source, rng)
            comp, lab, _ = self._composite(scene, None)
            out, out_lab, _ = self._output_frame(scene, comp, lab, None)
            if self._alive(out_lab, need):
                return out, out_lab
            log.debug("lucid sample %d lost every object; drawing again", attempt)
        log.warning(
            "lucid: every object vanished in %d tries; returning the input frame", self.config.max_tries
        )
        return image.copy(), labels.copy()

    def sample_pair(
        self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Two consecutive frames, their label maps and the backward flow of frame 1 (HxWx2 float32)."""
        image, labels = self._check(image, labels)
        source = self._source(image, labels)
        need = self._needed_pixels(source)
        height, width = labels.shape
        cfg = self.config
        for attempt in range(cfg.max_tries):
            scene = self._draw_scene(image, labels, source, rng)
            kind = cfg.motion_types[int(rng.integers(len(cfg.motion_types)))]
            motions: dict[int, _Motion] = {}
            camera = np.eye(3)
            if kind in ("both", "objects"):
                motions = self._draw_object_motions(scene, rng, width, height)
            if kind in ("both", "camera"):
                camera = _similarity(
                    width,
                    height,
                    rng.uniform(-cfg.camera_rotation_deg, cfg.camera_rotation_deg),
                    rng.uniform(*cfg.camera_scale_range),
                    rng.uniform(*cfg.camera_scale_range),
                    rng.uniform(-cfg.camera_translation, cfg.camera_translation) * width,
                    rng.uniform(-cfg.camera_translation, cfg.camera_translation) * height,
                )
            comp0, lab0, owner0 = self._composite(scene, None)
            comp1, lab1, owner1 = self._composite(scene, motions) if motions else (comp0, lab0, owner0)
            img0, out_lab0, _ = self._output_frame(scene, comp0, lab0, None)
            img1, out_lab1, owner_out = self._output_frame(
                scene, comp1, lab1, owner1 if motions else None, camera
            )
            if not (self._alive(out_lab0, need) and self._alive(out_lab1, need)):
                log.debug("lucid pair %d lost every object; drawing again", attempt)
                continue
            flow = self._flow(scene, camera, owner_out, motions, width, height)
            if np.shares_memory(img0, img1) or np.shares_memory(out_lab0, out_lab1):  # a still pair
                img1, out_lab1 = img1.copy(), out_lab1.copy()
            return img0, out_lab0, img1, out_lab1, flow
        log.warning("lucid: every object vanished in %d tries; returning a still pair", cfg.max_tries)
        return (
            image.copy(),
            labels.copy(),
            image.copy(),
            labels.copy(),
            np.zeros((height, width, 2), np.float32),
        )

    def inpaint_background(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The frame with every object (and void) removed and inpainted; cached per source frame."""
        image, labels = self._check(image, labels)
        return self._source(image, labels).background.copy()

    def clear_cache(self) -> None:
        self._cache.clear()

    # -------------------------------------------------------------------------------------- source

    @staticmethod
    def _check(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image, labels = np.asarray(image), np.asarray(labels)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DataError(f"lucid: image must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        if labels.ndim != 2 or labels.shape != image.shape[:2]:
            raise DataError(f"lucid: label map {labels.shape} does not match image {image.shape[:2]}")
        if labels.dtype != np.uint8:
            if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > VOID_LABEL:
                raise DataError(f"lucid: label map must hold integers in 0..255, got {labels.dtype}")
            labels = labels.astype(np.uint8)
        if min(labels.shape) < 2:
            raise DataError(f"lucid: frame too small {labels.shape}")
        return np.ascontiguousarray(image), np.ascontiguousarray(labels)

    def _source(self, image: np.ndarray, labels: np.ndarray) -> _Source:
        digest = hashlib.blake2b(image.data, digest_size=16)
        digest.update(labels.data)
        digest.update(repr(image.shape).encode())
        key = digest.digest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        counts = np.bincount(labels.ravel(), minlength=256)
        ids = [int(i) for i in np.flatnonzero(counts[1:VOID_LABEL]) + 1]
        boxes = {i: tuple(int(v) for v in cv2.boundingRect((labels == i).view(np.uint8))) for i in ids}
        source = _Source(
            self._inpaint(image, labels),
            ids,
            {i: int(counts[i]) for i in ids},
            boxes,
            bool(counts[VOID_LABEL]),
        )
        if self.config.cache_size > 0:
            self._cache[key] = source
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return source

    def _inpaint(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        cfg = self.config
        mask = (labels != 0).view(np.uint8)
        if not mask.any():
            return image.copy()
        if cfg.inpaint_radius > 0:
            mask = cv2.dilate(mask, _disk(cfg.inpaint_radius))
        flags = cv2.INPAINT_TELEA if cfg.inpaint_method == "telea" else cv2.INPAINT_NS
        return cv2.inpaint(image, mask, cfg.inpaint_cv_radius, flags)

    def _needed_pixels(self, source: _Source) -> int:
        if not source.ids:
            return 0
        return max(1, min(self.config.min_object_pixels, max(source.areas.values())))

    @staticmethod
    def _alive(labels: np.ndarray, need: int) -> bool:
        if need == 0:
            return True
        return int(np.bincount(labels.ravel(), minlength=256)[1:VOID_LABEL].max()) >= need

    # -------------------------------------------------------------------------------------- drawing

    def _draw_scene(
        self, image: np.ndarray, labels: np.ndarray, source: _Source, rng: np.random.Generator
    ) -> _Scene:
        cfg = self.config
        height, width = labels.shape
        background = self._augment_background(source.background, rng)
        layers: list[_Layer] = []
        if source.ids:
            ids = np.asarray(source.ids)
            k = int(rng.integers(1, len(ids) + 1))
            chosen = sorted(int(i) for i in rng.choice(ids, size=k, replace=False))
            for obj in source.ids:
                if obj not in chosen and rng.random() < cfg.keep_unselected_p:
                    layers.append(self._make_layer(image, labels, source, [obj]))
            groups = [[i] for i in chosen] if rng.random() < cfg.independent_p else [chosen]
            for group in groups:
                layer = self._make_layer(image, labels, source, group)
                self._transform_layer(layer, rng, width, height)
                layers.append(layer)
        order = [int(i) for i in rng.permutation(len(layers))]
        matrix = np.eye(3)
        if rng.random() < cfg.rotation_p:
            angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
            matrix = _affine(
                cv2.getRotationMatrix2D(
                    ((width - 1) / 2.0, (height - 1) / 2.0), angle, _inscribed_zoom(width, height, angle)
                )
            )
        if rng.random() < cfg.flip_p:
            matrix = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ matrix
        illumination = self._draw_illumination(rng) if rng.random() < cfg.illumination_p else None
        return _Scene(background, layers, order, matrix, illumination)

    def _draw_illumination(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        return np.array(
            [
                [rng.uniform(*cfg.illum_a), rng.uniform(*cfg.illum_b), rng.uniform(*cfg.illum_c)]
                for _ in range(2)
            ]
        )

    def _augment_background(self, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        height, width = background.shape[:2]
        out = background
        if rng.random() < cfg.bg_flip_p:
            out = out[:, ::-1]
        if rng.random() < cfg.bg_affine_p:
            scale = rng.uniform(*cfg.bg_scale_range)
            m = _similarity(
                width,
                height,
                rng.uniform(-cfg.bg_rotation_deg, cfg.bg_rotation_deg),
                scale,
                scale,
                rng.uniform(-cfg.bg_translation, cfg.bg_translation) * width,
                rng.uniform(-cfg.bg_translation, cfg.bg_translation) * height,
            )
            # the background holds no object any more, so reflected borders cannot duplicate one
            out = cv2.warpAffine(
                np.ascontiguousarray(out),
                m[:2],
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )
        if rng.random() < cfg.bg_illumination_p:
            out = _illumination(np.ascontiguousarray(out), self._draw_illumination(rng))
        return np.ascontiguousarray(out)

    def _make_layer(
        self, image: np.ndarray, labels: np.ndarray, source: _Source, ids: Sequence[int]
    ) -> _Layer:
        """A layer holding ``ids`` (and the void pixels next to them) in place, unscaled."""
        height, width = labels.shape
        xs = [source.boxes[i] for i in ids]
        x0, y0 = min(b[0] for b in xs), min(b[1] for b in xs)
        x1, y1 = max(b[0] + b[2] for b in xs), max(b[1] + b[3] for b in xs)
        pad = self.config.inpaint_radius if source.has_void else 0
        cx0, cy0, cx1, cy1 = max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)
        crop = labels[cy0:cy1, cx0:cx1]
        lut = np.zeros(256, np.uint8)
        lut[list(ids)] = list(ids)
        layer_labels = lut[crop]
        if source.has_void:
            near = cv2.dilate((layer_labels != 0).view(np.uint8), _disk(max(1, self.config.inpaint_radius)))
            layer_labels[(crop == VOID_LABEL) & (near > 0)] = VOID_LABEL
            bx, by, bw, bh = cv2.boundingRect((layer_labels != 0).view(np.uint8))
            x0, y0, x1, y1 = cx0 + bx, cy0 + by, cx0 + bx + bw, cy0 + by + bh
        return _Layer(
            image=image[cy0:cy1, cx0:cx1],
            labels=layer_labels,
            origin=(cx0, cy0),
            box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
            offset=(float(x0), float(y0)),
        )

    def _transform_layer(self, layer: _Layer, rng: np.random.Generator, width: int, height: int) -> None:
        """Deform (TPS), scale uniformly and place the layer somewhere inside the image."""
        cfg = self.config
        layer.moving = True
        if rng.random() < cfg.deform_p:
            layer.tps, layer.margin = _random_tps(
                layer.labels != 0,
                layer.origin,
                layer.box,
                cfg.tps_points,
                cfg.tps_magnitude,
                cfg.tps_regularization,
                rng,
            )
        scale = float(rng.uniform(*cfg.scale_range))
        layer.scale = scale
        x0, y0, w, h = layer.box
        offset = []
        for start, size, extent in ((x0, w, width), (y0, h, height)):
            scaled = size * scale
            lo, hi = min(0.0, extent - scaled), max(0.0, extent - scaled)
            if cfg.max_translation is not None:
                natural = start + (size - scaled) / 2.0
                limit = cfg.max_translation * extent
                lo, hi = max(lo, natural - limit), min(hi, natural + limit)
                if lo > hi:
                    lo = hi = float(np.clip(natural, min(0.0, extent - scaled), max(0.0, extent - scaled)))
            ilo, ihi = math.ceil(lo), math.floor(hi)
            offset.append(float(rng.integers(ilo, ihi + 1)) if ilo <= ihi else float(round(lo)))
        layer.offset = (offset[0], offset[1])

    def _draw_object_motions(
        self, scene: _Scene, rng: np.random.Generator, width: int, height: int
    ) -> dict[int, _Motion]:
        """For each moved layer: a shift up to ``pair_shift`` of its box plus a TPS, as a backward map."""
        cfg = self.config
        motions: dict[int, _Motion] = {}
        for index, layer in enumerate(scene.layers):
            if not layer.moving:
                continue
            region = layer.region(width, height)
            _, mask, _ = self._render_layer(layer, region, None)
            w, h = layer.box[2] * layer.scale, layer.box[3] * layer.scale
            box = (layer.offset[0], layer.offset[1], w, h)
            tps, margin = _random_tps(
                mask != 0,
                (region[0], region[1]),
                box,
                cfg.pair_tps_points,
                cfg.pair_tps_magnitude,
                cfg.tps_regularization,
                rng,
            )
            dx = float(rng.uniform(-cfg.pair_shift, cfg.pair_shift) * w)
            dy = float(rng.uniform(-cfg.pair_shift, cfg.pair_shift) * h)
            motions[index] = _Motion(self._motion_fn(tps, dx, dy), margin + abs(dx) + abs(dy))
        return motions

    @staticmethod
    def _motion_fn(tps: _ThinPlateSpline | None, dx: float, dy: float) -> Map:
        def fn(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            a, b = u - np.float32(dx), v - np.float32(dy)
            return tps(a, b) if tps is not None else (a, b)

        return fn

    # -------------------------------------------------------------------------------------- rendering

    def _render_layer(
        self, layer: _Layer, region: tuple[int, int, int, int], motion: _Motion | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The layer's image, labels and mask over ``region`` (x0, y0, x1, y1) of the scene."""
        rx0, ry0, rx1, ry1 = region
        u = np.arange(rx0, rx1, dtype=np.float32)[None, :].repeat(ry1 - ry0, 0)
        v = np.arange(ry0, ry1, dtype=np.float32)[:, None].repeat(rx1 - rx0, 1)
        if motion is not None:
            u, v = motion.fn(u, v)
        mx, my = layer.source_coords(u, v)
        mx, my = np.ascontiguousarray(mx, np.float32), np.ascontiguousarray(my, np.float32)
        image = cv2.remap(layer.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        labels = cv2.remap(
            layer.labels, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        deformed = layer.tps is not None or motion is not None
        if deformed and self.config.erode_px > 0:
            kernel = np.ones((2 * self.config.erode_px + 1,) * 2, np.uint8)
            keep = cv2.erode((labels != 0).view(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
            eroded = np.where(keep > 0, labels, 0).astype(np.uint8)
            # an object thinner than the erosion would vanish: keep it whole instead
            before, after = (
                np.bincount(labels.ravel(), minlength=256),
                np.bincount(eroded.ravel(), minlength=256),
            )
            lost = np.flatnonzero((before > 0) & (after == 0))
            lost = lost[lost != 0]
            if len(lost):
                restore = np.isin(labels, lost)
                eroded[restore] = labels[restore]
            labels = eroded
        return image, labels, labels != 0

    def _composite(
        self, scene: _Scene, motions: dict[int, _Motion] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Paste the layers back to front over the background; returns image, labels and the top layer index."""
        height, width = scene.background.shape[:2]
        image = scene.background.copy()
        labels = np.zeros((height, width), np.uint8)
        owner = np.full((height, width), -1, np.int16)
        for index in scene.order:
            layer = scene.layers[index]
            motion = (motions or {}).get(index)
            region = layer.region(width, height, motion.reach if motion is not None else 0.0)
            if region[2] <= region[0] or region[3] <= region[1]:
                continue
            over, lab, mask = self._render_layer(layer, region, motion)
            if not mask.any():
                continue
            sl = (slice(region[1], region[3]), slice(region[0], region[2]))
            under = image[sl]
            blend = self.config.blend if self.config.blend_width > 0 else "none"
            if blend == "feather":
                image[sl] = _blend_alpha(under, over, _feather_alpha(mask, self.config.blend_width))
            elif blend == "seamless":
                image[sl] = _seamless(under, over, mask, self.config.blend_width)
            else:
                under[mask] = over[mask]
            labels[sl][mask] = lab[mask]
            owner[sl][mask] = index
        return image, labels, owner

    def _output_frame(
        self,
        scene: _Scene,
        image: np.ndarray,
        labels: np.ndarray,
        owner: np.ndarray | None,
        camera: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Scene → output: global rotation-zoom / flip, then the camera (frame 1), in one warp; illumination.

        Labels are warped as ``labels + 1`` with nearest interpolation so pixels from outside the scene are
        known: they are filled from the warped inpainted background with label 0, never with reflected
        objects. ``owner`` (top layer per pixel, -1 background) follows the labels when given.
        """
        height, width = labels.shape
        m = scene.global_matrix if camera is None else camera @ scene.global_matrix
        flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        if np.allclose(m, np.eye(3), rtol=0.0, atol=1e-9):
            out, out_lab, own = image, labels, owner
        elif np.allclose(m, flip, rtol=0.0, atol=1e-9):
            out, out_lab = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(labels[:, ::-1])
            own = None if owner is None else np.ascontiguousarray(owner[:, ::-1])
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
            own = None
            if owner is not None:
                own = (
                    cv2.warpAffine(
                        (owner + 1).astype(np.uint16),
                        m[:2],
                        size,
                        flags=cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0,
                    ).astype(np.int16)
                    - 1
                )
            uncovered = lab == 0
            if uncovered.any():
                bg = cv2.warpAffine(
                    scene.background, m[:2], size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
                )
                out[uncovered] = bg[uncovered]
            out_lab = np.where(uncovered, 0, lab - 1).astype(np.uint8)
        if scene.illumination is not None:
            out = _illumination(out, scene.illumination)
        return out, out_lab, own

    def _flow(
        self,
        scene: _Scene,
        camera: np.ndarray,
        owner: np.ndarray | None,
        motions: dict[int, _Motion],
        width: int,
        height: int,
    ) -> np.ndarray:
        """Backward flow: output-1 pixel → scene-1 point → (object motion) scene-0 point → output-0 pixel."""
        inverse1 = np.linalg.inv(camera @ scene.global_matrix)
        back = scene.global_matrix @ inverse1  # output 1 → output 0 for points that do not move themselves
        x = np.arange(width, dtype=np.float32)[None, :]
        y = np.arange(height, dtype=np.float32)[:, None]
        flow = np.empty((height, width, 2), np.float32)
        flow[..., 0] = np.float32(back[0, 0] - 1.0) * x + np.float32(back[0, 1]) * y + np.float32(back[0, 2])
        flow[..., 1] = np.float32(back[1, 0]) * x + np.float32(back[1, 1] - 1.0) * y + np.float32(back[1, 2])
        if owner is None:
            return flow
        for index, motion in motions.items():
            ys, xs = np.nonzero(owner == index)
            if len(xs) == 0:
                continue
            qx, qy = xs.astype(np.float64), ys.astype(np.float64)
            px, py = _apply(inverse1, qx, qy)
            mx, my = motion.fn(px.astype(np.float32), py.astype(np.float32))
            x0, y0 = _apply(scene.global_matrix, mx.astype(np.float64), my.astype(np.float64))
            flow[ys, xs, 0] = x0 - qx
            flow[ys, xs, 1] = y0 - qy
        return flow
