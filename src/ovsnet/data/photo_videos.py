"""Photo-realistic synthetic videos: the ``style="photo"`` mode of :mod:`ovsnet.data.synthetic`.

Models trained only on the toy videos (flat saturated patterns on cloudy backgrounds) fail on videos of real
objects. This mode keeps the toy generator's motion planning, occlusions, leave-and-re-enter events,
distractors and DAVIS output, and changes what the frames look like:

* backgrounds are real photographs (random crops larger than the frame) seen through a camera that pans,
  drifts and zooms across them, with motion blur when the camera moves fast;
* objects are textured with crops of other photographs (each limb carries its own patch of texture, so the
  texture moves with it) and shaded (rim darkening, a directional light, a soft drop shadow, soft edges);
* shapes are articulated and thin, not only stars and blobs: bipeds and quadrupeds (a torso with 2-4 jointed
  limbs swinging in a gait, a head, a tail), branching plant-like shapes with thin swaying twigs, outlines with
  1-3 holes that pulse, crescents whose opening changes, and the toy star outline;
* lighting drifts over time (gain, colour temperature, a moving light gradient, a vignette), objects moving
  fast are motion-blurred (their annotation stays the sharp mask at that frame), and sensor noise is added.

Photos come from scikit-image's sample images shipped inside its wheel (no download; the functions that need
``pooch`` are never called). The split lives in :data:`PHOTO_SPLITS` and nowhere else: validation videos
take their background and every object texture from the validation photos only, so a model is scored on
photographs it never saw in training. Licences, as stated by the docstrings of the ``skimage.data`` functions
in scikit-image 0.26 (the installed package's ``skimage/data/README.txt`` lists no licences):

=====================  ======  ==================================================================  =====
photo (skimage.data)   colour  licence (source)                                                    split
=====================  ======  ==================================================================  =====
astronaut              RGB     public domain, no known copyright restrictions (NASA Great Images)  train
coffee                 RGB     CC0 (photographer Rachel Michetti, Pikolo Espresso Bar)              train
hubble_deep_field      RGB     public domain (NASA / HubbleSite, "may be freely used")              train
immunohistochemistry   RGB     no known copyright restrictions (CMMI)                               train
camera                 grey    CC0 (photographer Lav Varshney)                                      train
grass                  grey    CC0 (DeviantArt "Grass 01" by linolafett)                            train
gravel                 grey    CC0 (CC0Textures "Gravel04")                                         train
coins                  grey    no known copyright restrictions (Brooklyn Museum collection)         train
chelsea                RGB     CC0 (photographer Stefan van der Walt)                               val
rocket                 RGB     public domain (SpaceX photo released into the public domain)         val
retina                 RGB     CC0 1.0 (Mikael Häggström, Wikimedia Commons)                        val
brick                  grey    CC0 (CC0Textures "Bricks25")                                         val
=====================  ======  ==================================================================  =====

Grey photos are tinted (grass green, brick red, ...); ``retina`` is cropped to the inside of the fundus disc.
Left out: ``stereo_motorcycle`` (Middlebury 2014; the docstring states no licence), ``moon``, ``page``,
``colorwheel``, ``logo`` (no licence stated or not photographs), ``clock``, ``cell``, ``text``,
``microaneurysms``, ``horse``, ``checkerboard`` (nearly blank, tiny or not photographs) and every image that
scikit-image downloads on demand.

Use it through the synthetic generator::

    ovsnet-synthetic --out data/synthetic_photo --style photo --sequences 10 --frames 40 --size 240x427
    python train.py data=synthetic_photo
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import cv2
import numpy as np

from ovsnet.data.io import DataError
from ovsnet.data.synthetic import (
    DISTRACTOR_BASE,
    SyntheticConfig,
    SyntheticVideo,
    _animate,
    _camera,
    _first_valid,
    _Planner,
)

__all__ = [
    "KINDS",
    "PHOTOS",
    "PHOTO_SPLITS",
    "Photo",
    "PhotoConfig",
    "PhotoVideo",
    "load_photo",
    "make_photo_video",
    "photo_names",
]

#: Shape families: articulated bodies, branching thin shapes, outlines with holes, crescents, toy stars.
KINDS: tuple[str, ...] = ("limbs", "branch", "holes", "crescent", "star")
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_MIRROR = np.diag([-1.0, 1.0])


@dataclass(frozen=True)
class Photo:
    """One bundled photograph: its ``skimage.data`` function, licence, usable region and tint (grey photos)."""

    name: str  # the skimage.data function that returns it
    file: str  # its file inside the installed skimage/data folder (read directly: no skimage.io import)
    licence: str
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # x0, y0, x1, y1 fractions worth using
    tint: tuple[float, float, float] | None = None  # RGB gains that colour a grey photo


PHOTOS: dict[str, Photo] = {
    p.name: p
    for p in (
        Photo("astronaut", "astronaut.png", "public domain (NASA Great Images)"),
        Photo("rocket", "rocket.jpg", "public domain (SpaceX)"),
        Photo("hubble_deep_field", "hubble_deep_field.jpg", "public domain (NASA / HubbleSite)"),
        Photo("immunohistochemistry", "ihc.png", "no known copyright restrictions (CMMI)"),
        Photo("camera", "camera.png", "CC0 (Lav Varshney)", tint=(1.0, 0.97, 0.92)),
        Photo("grass", "grass.png", "CC0 (linolafett, DeviantArt)", tint=(0.62, 0.86, 0.38)),
        Photo("gravel", "gravel.png", "CC0 (CC0Textures Gravel04)", tint=(0.9, 0.82, 0.7)),
        Photo(
            "coins", "coins.png", "no known copyright restrictions (Brooklyn Museum)", tint=(0.95, 0.78, 0.5)
        ),
        Photo("chelsea", "chelsea.png", "CC0 (Stefan van der Walt)"),
        Photo("coffee", "coffee.png", "CC0 (Rachel Michetti)"),
        Photo(
            "retina", "retina.jpg", "CC0 1.0 (Mikael Häggström, Wikimedia Commons)", box=(0.2, 0.2, 0.8, 0.8)
        ),
        Photo("brick", "brick.png", "CC0 (CC0Textures Bricks25)", tint=(0.86, 0.55, 0.42)),
    )
}
#: The one place the photo split is defined: validation videos never use a training photo, and vice versa.
PHOTO_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut",
        "coffee",
        "hubble_deep_field",
        "immunohistochemistry",
        "camera",
        "grass",
        "gravel",
        "coins",
    ),
    "val": ("chelsea", "rocket", "retina", "brick"),
}


def photo_names(split: str) -> tuple[str, ...]:
    """The photographs a ``train`` or ``val`` video may use (backgrounds and object textures alike)."""
    if split not in PHOTO_SPLITS:
        raise DataError(f"photo split must be one of {sorted(PHOTO_SPLITS)}, got {split!r}")
    return PHOTO_SPLITS[split]


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """The usable region of a bundled photo as read-only uint8 RGB (grey photos as three equal channels).

    Cached per process: a dataset reads each photo once.
    """
    if name not in PHOTOS:
        raise DataError(f"unknown photo {name!r}; bundled photos: {sorted(PHOTOS)}")
    from importlib.resources import files

    from PIL import Image

    try:
        with Image.open(files("skimage.data").joinpath(PHOTOS[name].file)) as photo:
            image = np.asarray(photo.convert("RGB"))
    except (ModuleNotFoundError, OSError) as exc:
        raise DataError(
            f"photo {name!r} not found in scikit-image's bundled data ({exc}); pip install scikit-image"
        ) from exc
    h, w = image.shape[:2]
    x0, y0, x1, y1 = PHOTOS[name].box
    image = np.ascontiguousarray(image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)])
    image.setflags(write=False)
    return image


# ---------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------

_PAIR_FIELDS = ("limbs", "gait_period", "holes", "texture_zoom", "background_zoom")


@dataclass
class PhotoConfig:
    """Knobs of the photo look; objects, motion, camera pan/zoom, events and output come from SyntheticConfig.

    Lengths are relative (to the frame, or to the object's size), so one config works at every frame size.
    """

    # shapes: relative frequency of each family (KINDS); a video draws its objects' kinds without repeats
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {"limbs": 0.4, "branch": 0.15, "holes": 0.2, "crescent": 0.15, "star": 0.1}
    )
    limbs: tuple[int, int] = (2, 4)  # jointed limbs (two segments each) of an articulated body
    limb_swing: float = 0.45  # radians, amplitude of a limb's swing at its root
    gait_period: tuple[float, float] = (10.0, 24.0)  # frames per swing cycle
    holes: tuple[int, int] = (1, 3)
    max_extent: float = 0.5  # farthest shape point from its centre, fraction of the frame's shorter side
    min_width_px: float = 0.9  # thinnest half-width of a limb or twig, in pixels
    # appearance
    texture_zoom: tuple[float, float] = (0.3, 0.7)  # object's rest extent / shorter side of its photo
    background_zoom: tuple[float, float] = (0.5, 1.0)  # of the widest view that keeps the camera inside it
    colour_jitter: float = 0.06  # per-channel gain jitter of a texture or background
    rim_shade: float = 0.3  # darkening at the object's rim (roundness)
    light: float = 0.15  # directional light across the object
    contact_shade: float = 0.25  # darkening where one part overlaps another (a limb over the torso)
    shadow: float = 0.3  # opacity of the drop shadow
    shadow_offset: float = 0.08  # in units of the object's size
    shadow_blur: float = 0.06
    # camera and lighting (the periodic pan / zoom are SyntheticConfig.camera_*)
    pan_drift: float = 0.3  # total camera travel over the video, fraction of the frame width
    zoom_drift: float = 0.3  # largest log-zoom change over the video (a slow zoom in or out)
    motion_blur: float = 0.6  # fraction of the frame time the shutter is open
    min_blur_px: float = 1.5  # shorter blur streaks are not drawn
    light_colour: float = 0.05  # colour-temperature drift amplitude
    light_gradient: float = 0.12  # amplitude of a slowly turning brightness gradient
    vignette: float = 0.2

    def __post_init__(self) -> None:
        for name in _PAIR_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
                raise DataError(f"PhotoConfig.{name} must be a (low, high) pair, got {value!r}")
            cast = int if name in ("limbs", "holes") else float
            low, high = cast(value[0]), cast(value[1])
            if not 0 < low <= high:
                raise DataError(f"PhotoConfig.{name} must satisfy 0 < low <= high, got {value!r}")
            setattr(self, name, (low, high))
        if not 2 <= self.limbs[0] <= self.limbs[1] <= 4:
            raise DataError(f"PhotoConfig.limbs must lie in 2..4, got {self.limbs}")
        if self.holes[1] > 3:
            raise DataError(f"PhotoConfig.holes must lie in 1..3, got {self.holes}")
        try:
            weights = {str(k): float(v) for k, v in dict(self.kind_weights).items()}
        except (TypeError, ValueError):
            raise DataError(
                f"PhotoConfig.kind_weights must map kinds to weights, got {self.kind_weights!r}"
            ) from None
        unknown = sorted(set(weights) - set(KINDS))
        if unknown or any(v < 0 for v in weights.values()) or sum(weights.values()) <= 0:
            raise DataError(
                f"PhotoConfig.kind_weights: kinds from {KINDS} with weights >= 0, not all 0; got {weights}"
            )
        self.kind_weights = weights
        for name in (
            "rim_shade",
            "light",
            "contact_shade",
            "shadow",
            "light_colour",
            "light_gradient",
            "vignette",
        ):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise DataError(f"PhotoConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in (
            "limb_swing",
            "shadow_offset",
            "shadow_blur",
            "pan_drift",
            "zoom_drift",
            "motion_blur",
            "colour_jitter",
        ):
            if float(getattr(self, name)) < 0:
                raise DataError(f"PhotoConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.05 <= self.max_extent <= 1.0 or self.min_width_px < 0 or self.min_blur_px < 0:
            raise DataError("PhotoConfig: max_extent in [0.05, 1], min_width_px >= 0, min_blur_px >= 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> PhotoConfig:
        """Build from a plain or OmegaConf mapping; an unknown key is a :class:`DataError` naming it."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"unknown photo config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)


# ---------------------------------------------------------------------------------------------------------
# shapes (object-local units: about 1 = the body's half-size; x right, y down)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Part:
    """One rigid piece of a shape at a frame: outline, holes, and the map back to its rest pose.

    ``to_rest`` (2x3) maps the part's current object-local coordinates to where they were at rest, so the
    photo texture, sampled in rest coordinates, moves with the part.
    """

    outline: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)
    to_rest: np.ndarray = field(default_factory=lambda: _IDENTITY)


@dataclass
class _Segment:
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


def _ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 28, rot: float = 0.0) -> np.ndarray:
    theta = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    x, y = ax * np.cos(theta), ay * np.sin(theta)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


class _Shape:
    """A deforming shape: rigid body polygons plus a swinging kinematic tree of tapered segments."""

    kind = "shape"

    def __init__(self) -> None:
        self.segments: list[_Segment] = []
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
        self.segments.append(_Segment(-1, anchor, 0.0, angle, length, width, amp, omega, phase))
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
        self.segments.append(_Segment(parent, (0.0, 0.0), at, angle, length, width, amp, omega, phase))
        return len(self.segments) - 1

    # -- to implement ----------------------------------------------------------------------------------------
    def body(self, t: int) -> list[_Part]:
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

    def _segment_parts(self, t: int) -> list[_Part]:
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
        return [_Part(outlines[i], [], maps[i]) for i in range(len(self.segments))]

    def parts(self, t: int) -> list[_Part]:
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
        area = float(np.count_nonzero(_raster(polys, (0, 0), (size, size)))) / (px * px)
        hull = cv2.convexHull(np.concatenate([o for o, _ in polys]).astype(np.float32))
        return area, max(area, float(cv2.contourArea(hull)) / (px * px))


class _Biped(_Shape):
    """A person-like body: torso, head, two jointed legs in a walking gait and 0-2 jointed swinging arms."""

    kind = "limbs"

    def __init__(self, rng: np.random.Generator, limbs: int, swing: float, omega: float) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.tw, self.th = u(0.34, 0.46), u(0.68, 0.82)
        self.hr = u(0.24, 0.32)
        self.upright = True
        phase = u(0, 2 * math.pi)
        amp = swing * u(0.7, 1.0)
        for side in (-1, 1):  # legs, in antiphase; the knee flexes a quarter cycle later
            leg = phase + (0.0 if side < 0 else math.pi)
            hip = (side * 0.55 * self.tw, 0.8 * self.th)
            thigh = self.root(hip, math.pi / 2 - side * 0.08, u(0.62, 0.78), (0.16, 0.12), amp, omega, leg)
            self.child(thigh, 1.0, 0.3, u(0.58, 0.72), (0.12, 0.09), 0.3, omega, leg + math.pi / 2)
        for k, side in enumerate((-1, 1)[: limbs - 2]):  # arms swing against the leg of the same side
            arm = phase + (math.pi if side < 0 else 0.0)
            shoulder = (side * 0.85 * self.tw, -0.72 * self.th)
            angle = math.pi / 2 - side * u(0.2, 0.5)
            upper = self.root(shoulder, angle, u(0.46, 0.58), (0.11, 0.09), 0.8 * amp, omega, arm + 0.3 * k)
            self.child(upper, 1.0, -0.35 * side, u(0.42, 0.52), (0.09, 0.07), 0.25, omega, arm + math.pi / 2)
        self.mirror = bool(rng.random() < 0.5)
        self.info = {"body": "biped", "limbs": limbs, "holes": 0}

    def body(self, t: int) -> list[_Part]:
        head_y = -self.th - 0.85 * self.hr
        return [_Part(_ellipse(0, 0, self.tw, self.th)), _Part(_ellipse(0, head_y, self.hr, self.hr * 1.1))]

    def body_reach(self) -> float:
        return self.th + 1.85 * self.hr * 1.1


class _Quadruped(_Shape):
    """An animal seen from the side: torso, a nodding neck and head, 2-4 jointed legs in a gait, a tail."""

    kind = "limbs"

    def __init__(self, rng: np.random.Generator, limbs: int, swing: float, omega: float) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.bw, self.bh = 1.0, u(0.36, 0.46)
        self.upright = True
        phase = u(0, 2 * math.pi)
        amp = swing * u(0.6, 0.9)
        neck = self.root(
            (0.72, -0.5 * self.bh), -u(0.8, 1.2), u(0.45, 0.6), (0.2, 0.14), 0.12, omega / 2, phase
        )
        self.child(neck, 1.0, u(0.9, 1.3), u(0.32, 0.42), (0.19, 0.08))  # the head, snout tapering
        legs = 4 if limbs == 4 else 2  # diagonal pairs move together
        for x, offset in [(0.62, 0.0), (-0.62, math.pi), (0.48, math.pi), (-0.74, 0.0)][:legs]:
            leg = phase + offset
            upper = self.root((x, 0.55 * self.bh), math.pi / 2, u(0.42, 0.55), (0.15, 0.11), amp, omega, leg)
            self.child(upper, 1.0, 0.0, u(0.38, 0.5), (0.1, 0.07), 0.3, omega, leg - math.pi / 2)
        angle, length = math.pi + u(0.4, 0.9), u(0.4, 0.6)
        tail = self.root(
            (-0.92, -0.2 * self.bh), angle, length, (0.08, 0.04), 0.35, 1.7 * omega, u(0, 2 * math.pi)
        )
        if limbs == 3:  # a jointed tail is the third limb
            self.child(tail, 1.0, -0.4, u(0.3, 0.45), (0.04, 0.025), 0.4, 1.7 * omega, u(0, 2 * math.pi))
        self.mirror = bool(rng.random() < 0.5)
        self.info = {"body": "quadruped", "limbs": limbs, "holes": 0}

    def body(self, t: int) -> list[_Part]:
        return [_Part(_ellipse(0, 0, self.bw, self.bh))]

    def body_reach(self) -> float:
        return self.bw


class _Branch(_Shape):
    """A plant-like shape: a swaying trunk of three segments, thin branches and twigs, leaves at the tips."""

    kind = "branch"

    def __init__(self, rng: np.random.Generator, swing: float, omega: float) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        phase = u(0, 2 * math.pi)
        widths = (0.24, 0.18, 0.13, 0.08)
        trunk = self.root(
            (0.0, 0.9),
            -math.pi / 2 + u(-0.25, 0.25),
            u(0.52, 0.62),
            widths[:2],
            0.125 * swing,
            0.6 * omega,
            phase,
        )
        for k in (1, 2):  # the sway grows and lags towards the top
            trunk = self.child(
                trunk,
                1.0,
                u(-0.3, 0.3),
                u(0.52, 0.62),
                widths[k : k + 2],
                0.25 * swing * (0.5 + k),
                0.6 * omega,
                phase - 0.6 * k,
            )
        side = 1 if rng.random() < 0.5 else -1
        tips = [trunk]
        for j in range(int(rng.integers(2, 6))):
            branch = self.child(
                int(rng.integers(0, 3)),
                u(0.35, 0.95),
                side * u(0.5, 1.05),
                u(0.4, 0.7),
                (0.09, 0.045),
                0.35 * swing,
                omega * u(0.8, 1.3),
                phase - 0.5 * j,
            )
            tips.append(branch)
            if rng.random() < 0.5:
                tips.append(
                    self.child(
                        branch,
                        u(0.45, 0.8),
                        -side * u(0.4, 0.8),
                        u(0.22, 0.35),
                        (0.05, 0.025),
                        0.4 * swing,
                        1.4 * omega,
                        phase - 0.5 * j - 1.0,
                    )
                )
            side = -side
        for tip in tips:  # a leaf: a capsule that swells from its stalk
            size = u(0.28, 0.4)
            self.child(tip, 1.0, u(-0.5, 0.5), size, (0.03, 0.45 * size), 0.3 * swing, 1.6 * omega, u(0, 6.3))
        self.mirror = bool(rng.random() < 0.5)
        self.info = {"body": "branch", "limbs": 0, "holes": 0, "branches": len(tips) - 1}


class _Holed(_Shape):
    """A rounded outline (superellipse with bumps) pierced by 1-3 holes that pulse and drift."""

    kind = "holes"

    def __init__(self, rng: np.random.Generator, holes: int, cfg: SyntheticConfig) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.ey = u(0.65, 1.0)
        self.power = u(2.0, 4.0)
        self.bumps = int(rng.integers(3, 7))
        self.bump_amp, self.bump_phase = u(0.03, 0.08), u(0, 2 * math.pi)
        self.drift = u(-1, 1) * cfg.deform_speed
        self.theta = np.linspace(0.0, 2.0 * math.pi, 72, endpoint=False)
        self.holes: list[tuple[float, float, float, float, float, float, float]] = []
        base = u(0, 2 * math.pi)
        for k in range(holes):
            if holes == 1:
                rho, dist = u(0.35, 0.5), u(0.0, 0.1)
            else:
                rho, dist = u(0.17, 0.24), 0.42
            angle = base + 2 * math.pi * k / holes + u(-0.3, 0.3)
            self.holes.append(
                (
                    dist * math.cos(angle),
                    dist * math.sin(angle) * self.ey,
                    rho * self.ey,
                    u(0.75, 1.0),
                    u(0, math.pi),
                    2 * math.pi / u(*cfg.scale_period),
                    u(0, 2 * math.pi),
                )
            )
        self.info = {"body": "holed", "limbs": 0, "holes": holes}

    def body(self, t: int) -> list[_Part]:
        th, p = self.theta, self.power
        c, s = np.cos(th), np.sin(th)
        r = (np.abs(c) ** p + np.abs(s / self.ey) ** p) ** (-1.0 / p)
        r = r * (1.0 + self.bump_amp * np.cos(self.bumps * th + self.bump_phase + self.drift * t))
        holes = []
        for x, y, rho, ratio, rot, freq, phase in self.holes:
            size = rho * (1.0 + 0.15 * math.sin(freq * t + phase))
            wob = 0.04 * math.sin(0.7 * freq * t + phase)
            holes.append(_ellipse(x + wob, y - wob, size, size * ratio, 24, rot + 0.3 * math.sin(freq * t)))
        return [_Part(np.stack([r * c, r * s], axis=1), holes)]

    def body_reach(self) -> float:
        return 2**0.5 * (1.0 + self.bump_amp)


class _Crescent(_Shape):
    """A thick arc, thinner towards its tips, whose opening widens and narrows (a claw, a bitten ring)."""

    kind = "crescent"

    def __init__(self, rng: np.random.Generator, cfg: SyntheticConfig) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.thick, self.tip = u(0.3, 0.5), u(0.3, 0.9)
        self.centre_angle = u(0, 2 * math.pi)
        self.span, self.span_amp = u(1.9, 2.6), u(0.15, 0.35)
        self.freq, self.phase = 2 * math.pi / u(*cfg.scale_period), u(0, 2 * math.pi)
        self.info = {"body": "crescent", "limbs": 0, "holes": 0}

    def body(self, t: int) -> list[_Part]:
        half = min(self.span + self.span_amp * math.sin(self.freq * t + self.phase), 2.95)
        n = 40
        v = np.linspace(0.0, 1.0, n)
        angle = self.centre_angle - half + 2 * half * v
        width = self.thick * (self.tip + (1.0 - self.tip) * np.sin(math.pi * v) ** 0.7)
        outer = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        inner = (1.0 - width)[:, None] * outer
        caps = []
        for idx, sign in ((-1, 1.0), (0, -1.0)):  # round tips: outer -> inner at the end, back at the start
            mid = (1.0 - width[idx] / 2) * outer[idx]
            tangent = angle[idx] + sign * math.pi / 2
            arc = tangent + np.linspace(-math.pi / 2, math.pi / 2, 7)[1:-1]
            caps.append(mid + width[idx] / 2 * np.stack([np.cos(arc), np.sin(arc)], axis=1))
        outline = np.concatenate([outer, caps[0], inner[::-1], caps[1]])
        return [_Part(outline)]

    def body_reach(self) -> float:
        return 1.0


class _Star(_Shape):
    """The toy generator's outline: a dominant lobe harmonic plus drifting smaller harmonics."""

    kind = "star"

    def __init__(self, rng: np.random.Generator, cfg: SyntheticConfig) -> None:
        super().__init__()
        self.n = int(rng.integers(cfg.lobes[0], cfg.lobes[1] + 1))
        self.amp = max(float(rng.uniform(*cfg.lobe_amp)), (0.1 + 1.3 / self.n**2) / (1.0 - cfg.deform_amp))
        self.deform = cfg.deform_amp
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self.drift = float(rng.uniform(-1, 1)) * cfg.deform_speed
        self.amp_freq = 2 * math.pi / float(rng.uniform(*cfg.scale_period))
        self.amp_phase = float(rng.uniform(0, 2 * math.pi))
        self.k = rng.integers(2, 9, size=cfg.harmonics).astype(np.float64)
        self.k_amp = rng.uniform(0.3, 1.0, size=cfg.harmonics) * cfg.harmonic_amp
        self.k_phase = rng.uniform(0, 2 * math.pi, size=cfg.harmonics)
        self.k_drift = rng.uniform(-1, 1, size=cfg.harmonics) * cfg.deform_speed * 1.5
        self.theta = np.linspace(0.0, 2.0 * math.pi, cfg.vertices, endpoint=False)
        self.info = {"body": "star", "limbs": 0, "holes": 0, "lobes": self.n}

    def body(self, t: int) -> list[_Part]:
        amp = self.amp * (1.0 + self.deform * math.sin(self.amp_freq * t + self.amp_phase))
        r = 1.0 + amp * np.cos(self.n * self.theta + self.phase + self.drift * t)
        if self.k.size:
            phases = self.k_phase + self.k_drift * t
            waves = np.cos(self.k[:, None] * self.theta[None] + phases[:, None])
            r = r + (self.k_amp[:, None] * waves).sum(0)
        return [_Part(np.stack([r * np.cos(self.theta), r * np.sin(self.theta)], axis=1))]

    def body_reach(self) -> float:
        return 1.0 + self.amp * (1.0 + self.deform) + float(self.k_amp.sum())


def _make_shape(kind: str, rng: np.random.Generator, pcfg: PhotoConfig, cfg: SyntheticConfig) -> _Shape:
    omega = 2 * math.pi / float(rng.uniform(*pcfg.gait_period))
    if kind == "limbs":
        limbs = int(rng.integers(pcfg.limbs[0], pcfg.limbs[1] + 1))
        if rng.random() < 0.5:
            return _Biped(rng, limbs, pcfg.limb_swing, omega)
        return _Quadruped(rng, limbs, pcfg.limb_swing, omega)
    if kind == "branch":
        return _Branch(rng, pcfg.limb_swing, omega)
    if kind == "holes":
        return _Holed(rng, int(rng.integers(pcfg.holes[0], pcfg.holes[1] + 1)), cfg)
    if kind == "crescent":
        return _Crescent(rng, cfg)
    return _Star(rng, cfg)


def _fixed(points: np.ndarray, origin: tuple[float, float]) -> np.ndarray:
    return np.round((points - origin) * 16.0).astype(np.int32)


def _raster(
    polys: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]],
    origin: tuple[float, float],
    shape: tuple[int, int],
) -> np.ndarray:
    """Part-id map (1-based, 0 = none) of polygons in pixel coordinates; later parts cover earlier ones."""
    ids = np.zeros(shape, np.uint8)
    for k, (outline, holes) in enumerate(polys):
        cv2.fillPoly(ids, [_fixed(outline, origin)], k + 1, lineType=cv2.LINE_8, shift=4)
        for hole in holes:
            cv2.fillPoly(ids, [_fixed(hole, origin)], 0, lineType=cv2.LINE_8, shift=4)
    return ids


# ---------------------------------------------------------------------------------------------------------
# actors, camera, rendering
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _PhotoActor:
    """A textured shape with the track fields the shared motion planner fills in (see ``_animate``)."""

    code: int
    similar_to: int | None
    shape: _Shape
    unit: float  # pixels per local unit at scale 1
    radius: float  # planner radius in pixels (spacing, margins, crossings)
    area_fraction: float
    photo: str
    source: np.ndarray  # the photo, pre-shrunk so texture sampling never minifies much
    texture: np.ndarray  # (2, 3) rest-local coordinates -> source pixels
    gains: np.ndarray  # (3,) colour gains (tint, jitter)
    tilt: tuple[float, float, float, float]  # upright shapes: angle a0 + amp·sin(omega·t + phase)
    light: np.ndarray  # (2,) light direction in object coordinates
    reach: float  # typical reach of the shape in local units
    effects_px: float  # how far shadow and blur may reach beyond the shape, in pixels
    centre: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stretch: np.ndarray = field(default_factory=lambda: np.zeros(0))
    exits: list[tuple[int, int]] = field(default_factory=list)

    @property
    def is_distractor(self) -> bool:
        return self.code >= DISTRACTOR_BASE

    @property
    def label(self) -> int:
        return 0 if self.is_distractor else self.code

    def extent(self, cfg: SyntheticConfig) -> float:
        """Farthest pixel (with shadow and blur) from the centre over the video, for the planned exits."""
        bound = self.unit * self.shape.reach() * math.exp(cfg.scale_amp) * math.exp(cfg.stretch_amp)
        return bound + self.effects_px

    def linear(self, t: int) -> np.ndarray:
        """2x2 object-local -> frame map: scale, rotation (a gentle tilt when upright) and stretch."""
        if self.shape.upright:
            a0, amp, omega, phase = self.tilt
            angle = a0 + amp * math.sin(omega * t + phase)
        else:
            angle = float(self.angle[t])
        s, st = self.unit * float(self.scale[t]), float(self.stretch[t])
        c, si = math.cos(angle), math.sin(angle)
        return s * np.array([[c * st, -si / st], [si * st, c / st]])


def _shrunk(photo: np.ndarray, minification: float) -> tuple[np.ndarray, float]:
    """The photo shrunk (area filter) when it would be sampled at more than ~1.4 source pixels per pixel."""
    if minification <= 1.4:
        return photo, 1.0
    factor = minification / 1.1
    h, w = photo.shape[:2]
    size = (max(8, round(w / factor)), max(8, round(h / factor)))
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA), w / size[0]


def _gains(rng: np.random.Generator, name: str, jitter: float) -> np.ndarray:
    tint = np.array(PHOTOS[name].tint or (1.0, 1.0, 1.0), np.float32)
    return (tint * (1.0 + jitter * rng.standard_normal(3)).astype(np.float32) * rng.uniform(0.9, 1.1)).astype(
        np.float32
    )


def _texture_map(
    rng: np.random.Generator, photo: np.ndarray, reach: float, unit: float, pcfg: PhotoConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Shrunk source and the (2, 3) map rest-local -> source pixels of a random, rotated crop of ``photo``."""
    ph, pw = photo.shape[:2]
    scale = float(rng.uniform(*pcfg.texture_zoom)) * min(ph, pw) / (2.0 * reach)  # source px per local unit
    source, factor = _shrunk(photo, scale / unit)
    scale /= factor
    sh, sw = source.shape[:2]
    half = min(reach * scale, 0.5 * min(sh, sw))
    cx, cy = rng.uniform(half, sw - half), rng.uniform(half, sh - half)
    angle = float(rng.uniform(0, 2 * math.pi))
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    flip = -1.0 if rng.random() < 0.5 else 1.0
    return source, np.array([[flip * c, -s, cx], [flip * s, c, cy]])


def _line_kernel(motion: np.ndarray) -> np.ndarray:
    """Normalised kernel of a straight streak of the given (dx, dy) length in pixels."""
    length = float(np.hypot(*motion))
    size = 2 * int(math.ceil(length / 2)) + 3
    kernel = np.zeros((size, size), np.float32)
    steps = max(2, int(math.ceil(length * 2)))
    pts = np.linspace(-0.5, 0.5, steps)[:, None] * motion[None] + size // 2
    x0, y0 = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
    fx, fy = pts[:, 0] - x0, pts[:, 1] - y0
    for dx, dy, wgt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        np.add.at(kernel, (y0 + dy, x0 + dx), wgt)
    return kernel / kernel.sum()


def _velocity(track: np.ndarray, t: int) -> np.ndarray:
    """Central difference of a (T, 2) track at ``t`` (one-sided at the ends), in pixels per frame."""
    a, b = max(t - 1, 0), min(t + 1, len(track) - 1)
    return (track[b] - track[a]) / max(b - a, 1)


class PhotoVideo(SyntheticVideo):
    """A planned photo-style video: same frames/labels/meta interface as :class:`SyntheticVideo`."""

    def __init__(
        self,
        *args: Any,
        photo_config: PhotoConfig,
        split: str,
        background_photo: str,
        view: np.ndarray,
        offsets: np.ndarray,
        background_gains: np.ndarray,
        lighting: dict[str, Any],
        shadow_dir: np.ndarray,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.photo_config = photo_config
        self.split = split
        self.background_photo = background_photo
        self.view = view  # (T, 2, 3) frame pixels -> background source pixels
        self.offsets = offsets  # (T, 2) camera offset in frame pixels (for the motion blur)
        self.background_gains = background_gains
        self.lighting = lighting
        self.shadow_dir = shadow_dir
        self._grids: tuple[np.ndarray, np.ndarray, np.ndarray] | None = (
            None  # built on the first textured frame
        )

    # -- frames ---------------------------------------------------------------------------------------------
    def _background_frame(self, t: int) -> np.ndarray:
        h, w = self.size
        image = cv2.warpAffine(
            self.background,
            self.view[t],
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        ).astype(np.float32)
        image *= self.background_gains
        streak = self.photo_config.motion_blur * _velocity(self.offsets, t)
        if np.hypot(*streak) >= max(self.photo_config.min_blur_px, 1e-6):
            image = cv2.filter2D(image, -1, _line_kernel(streak), borderType=cv2.BORDER_REFLECT_101)
        return image

    def _draw(
        self, actor: Any, t: int, image: np.ndarray | None, instances: np.ndarray
    ) -> tuple[tuple[slice, slice] | None, np.ndarray | None, float, int]:
        h, w = self.size
        lin, centre = actor.linear(t), actor.centre[t]
        parts = actor.shape.parts(t)
        polys = [(p.outline @ lin.T + centre, [hole @ lin.T + centre for hole in p.holes]) for p in parts]
        pts = np.concatenate([o for o, _ in polys])
        bx0, by0 = int(math.floor(pts[:, 0].min())) - 1, int(math.floor(pts[:, 1].min())) - 1
        bx1, by1 = int(math.ceil(pts[:, 0].max())) + 2, int(math.ceil(pts[:, 1].max())) + 2
        ids = _raster(polys, (bx0, by0), (by1 - by0, bx1 - bx0))
        area = float(np.count_nonzero(ids))
        x0, y0, x1, y1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
        if x0 >= x1 or y0 >= y1:
            return None, None, area, 0
        sel = ids[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] > 0
        in_frame = int(np.count_nonzero(sel))
        if in_frame == 0:
            return None, None, area, 0
        window = (slice(y0, y1), slice(x0, x1))
        instances[window][sel] = actor.code
        if image is not None:
            self._paint_actor(image, actor, t, parts, polys, ids, (bx0, by0), lin, centre)
        return window, sel, area, in_frame

    def _paint_actor(
        self,
        image: np.ndarray,
        actor: _PhotoActor,
        t: int,
        parts: list[_Part],
        polys: list[tuple[np.ndarray, list[np.ndarray]]],
        ids: np.ndarray,
        box_origin: tuple[int, int],
        lin: np.ndarray,
        centre: np.ndarray,
    ) -> None:
        """Texture, shade, shadow, blur and composite one shape into the float frame."""
        pcfg = self.photo_config
        h, w = self.size
        size_px = actor.unit * float(actor.scale[t])
        streak = pcfg.motion_blur * _velocity(actor.centre, t)
        blur = float(np.hypot(*streak)) >= max(pcfg.min_blur_px, 1e-6)
        shadow_px = (pcfg.shadow_offset + 3 * pcfg.shadow_blur) * size_px if pcfg.shadow > 0 else 0.0
        pad = int(math.ceil(shadow_px + (float(np.hypot(*streak)) if blur else 0.0))) + 2
        bx0, by0 = box_origin
        rx0, ry0 = max(bx0 - pad, 0), max(by0 - pad, 0)
        rx1, ry1 = min(bx0 + ids.shape[1] + pad, w), min(by0 + ids.shape[0] + pad, h)
        if rx0 >= rx1 or ry0 >= ry1:
            return
        rh, rw = ry1 - ry0, rx1 - rx0
        part_ids = np.zeros((rh, rw), np.uint8)
        sy0, sx0 = max(by0, ry0), max(bx0, rx0)
        sy1, sx1 = min(by0 + ids.shape[0], ry1), min(bx0 + ids.shape[1], rx1)
        if sy0 < sy1 and sx0 < sx1:
            part_ids[sy0 - ry0 : sy1 - ry0, sx0 - rx0 : sx1 - rx0] = ids[
                sy0 - by0 : sy1 - by0, sx0 - bx0 : sx1 - bx0
            ]
        mask = (part_ids > 0).astype(np.uint8)
        if not mask.any():
            return
        inv = np.linalg.inv(lin)
        layer = np.zeros((rh, rw, 3), np.float32)
        for k, (part, (outline, _)) in enumerate(zip(parts, polys, strict=True)):
            px0 = max(int(math.floor(outline[:, 0].min())) - 1, rx0)
            py0 = max(int(math.floor(outline[:, 1].min())) - 1, ry0)
            px1 = min(int(math.ceil(outline[:, 0].max())) + 2, rx1)
            py1 = min(int(math.ceil(outline[:, 1].max())) + 2, ry1)
            if px0 >= px1 or py0 >= py1:
                continue
            sub = part_ids[py0 - ry0 : py1 - ry0, px0 - rx0 : px1 - rx0] == k + 1
            if not sub.any():
                continue
            # region pixel -> object-local (current) -> rest pose -> source photo pixel
            rest_lin = part.to_rest[:, :2] @ inv
            rest_off = (
                part.to_rest[:, :2] @ (inv @ (np.array([px0, py0], np.float64) - centre)) + part.to_rest[:, 2]
            )
            matrix = np.hstack(
                [
                    actor.texture[:, :2] @ rest_lin,
                    (actor.texture[:, :2] @ rest_off + actor.texture[:, 2])[:, None],
                ]
            )
            tex = cv2.warpAffine(
                actor.source,
                matrix,
                (px1 - px0, py1 - py0),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REFLECT_101,
            )
            np.copyto(layer[py0 - ry0 : py1 - ry0, px0 - rx0 : px1 - rx0], tex, where=sub[..., None])
        layer *= actor.gains
        # shading: darker rim (roundness), a directional light, darker seams where a part overlaps another
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        rim = max(1.0, 0.12 * size_px)
        shade = 1.0 - pcfg.rim_shade * np.exp(-(dist - 1.0) / rim)
        # the light term is linear in the pixel position: light · inv · (p - centre) / reach
        gx, gy = (actor.light @ inv) * (pcfg.light / actor.reach)
        xs = np.arange(rx0, rx1, dtype=np.float32) - np.float32(centre[0])
        ys = np.arange(ry0, ry1, dtype=np.float32) - np.float32(centre[1])
        shade *= 1.0 + (np.float32(gx) * xs[None, :] + np.float32(gy) * ys[:, None])
        if len(parts) > 1 and pcfg.contact_shade > 0:
            kernel = np.ones((3, 3), np.uint8)
            lo, hi = cv2.erode(part_ids, kernel), cv2.dilate(part_ids, kernel)
            shade[(lo > 0) & (lo != hi)] *= 1.0 - pcfg.contact_shade
        layer *= shade[..., None]
        alpha = np.clip(0.6 + 0.4 * (dist - 1.0), 0.0, 1.0).astype(np.float32) * mask
        region = image[ry0:ry1, rx0:rx1]
        if pcfg.shadow > 0:
            offset = self.shadow_dir * pcfg.shadow_offset * size_px
            moved = cv2.warpAffine(
                mask.astype(np.float32),
                np.array([[1, 0, offset[0]], [0, 1, offset[1]]], np.float64),
                (rw, rh),
            )
            soft = cv2.GaussianBlur(moved, (0, 0), max(0.8, pcfg.shadow_blur * size_px))
            region *= (1.0 - pcfg.shadow * soft)[..., None]
        premultiplied = layer * alpha[..., None]
        if blur:
            kernel = _line_kernel(streak)
            premultiplied = cv2.filter2D(premultiplied, -1, kernel, borderType=cv2.BORDER_CONSTANT)
            alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        region *= (1.0 - alpha)[..., None]
        region += premultiplied

    def _finish(self, image: np.ndarray, t: int) -> np.ndarray:
        """Lighting drift (gain, colour temperature, a turning gradient), vignette, sensor noise; to uint8."""
        light = self.lighting
        gains = float(self.illumination[t]) * light["colour"][t]
        angle = float(light["gradient_angle"][t])
        if self._grids is None:
            h, w = self.size
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            xn, yn = (xs - w / 2) / (w / 2), (ys - h / 2) / (h / 2)
            self._grids = xn, yn, 1.0 - self.photo_config.vignette * 0.5 * (xn * xn + yn * yn)
        xn, yn, vignette = self._grids
        g = self.photo_config.light_gradient
        spatial = cv2.multiply(
            cv2.addWeighted(xn, g * math.cos(angle), yn, g * math.sin(angle), 1.0), vignette
        )
        out = cv2.multiply(image, cv2.merge([spatial * np.float32(gain) for gain in gains]))
        if self.config.noise_std > 0:
            rng = np.random.default_rng((self.seed, self.index, 1, t))
            out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(self.config.noise_std)
        return np.clip(out + 0.5, 0.0, 255.0).astype(np.uint8)

    # -- metadata -------------------------------------------------------------------------------------------
    def _actor_info(self, actor: Any) -> dict[str, Any]:
        return {
            "kind": actor.shape.kind,
            **actor.shape.info,
            "photo": actor.photo,
            "radius_px": round(actor.radius, 2),
        }

    def describe(self) -> dict[str, Any]:
        meta = super().describe()
        objects = {str(a.code): a.photo for a in self.actors if not a.is_distractor}
        used = sorted({self.background_photo, *(a.photo for a in self.actors)})
        meta["photos"] = {
            "split": self.split,
            "background": self.background_photo,
            "objects": dict(sorted(objects.items(), key=lambda kv: int(kv[0]))),
            "distractors": [a.photo for a in self.actors if a.is_distractor],
            "all": used,
            "licences": {name: PHOTOS[name].licence for name in used},
        }
        meta["photo_config"] = asdict(self.photo_config)
        return meta


# ---------------------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------------------


def _view(
    rng: np.random.Generator,
    photo: np.ndarray,
    size: tuple[int, int],
    camera: np.ndarray,
    pcfg: PhotoConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background source, (T, 2, 3) frame -> source maps, and the camera offsets in frame pixels.

    The periodic pan / zoom of the toy camera plus a slow drift across the photo and a slow zoom in or out;
    the view is the widest the photo allows (scaled by ``background_zoom``), so the camera never leaves it.
    """
    h, w = size
    T = len(camera)
    direction = float(rng.uniform(0, 2 * math.pi))
    travel = pcfg.pan_drift * w * float(rng.uniform(0.5, 1.0))
    s = np.linspace(0.0, 1.0, T) if T > 1 else np.zeros(1)
    ease = s * s * (3 - 2 * s) - 0.5
    zoom = camera[:, 2] * np.exp(pcfg.zoom_drift * float(rng.uniform(-1.0, 1.0)) * ease)
    zoom /= zoom.min()  # never wider than the widest view that fits
    offsets = camera[:, :2] + travel * ease[:, None] * np.array([math.cos(direction), math.sin(direction)])
    ox, oy = float(np.abs(offsets[:, 0]).max()), float(np.abs(offsets[:, 1]).max())
    ph, pw = photo.shape[:2]
    k = min((pw - 2) / (w + 2 * ox), (ph - 2) / (h + 2 * oy)) * float(rng.uniform(*pcfg.background_zoom))
    source, factor = _shrunk(photo, k)
    k /= factor
    sh, sw = source.shape[:2]
    half_x, half_y = k * (w / 2 + ox), k * (h / 2 + oy)
    cx = float(rng.uniform(half_x, max(half_x, sw - half_x)))
    cy = float(rng.uniform(half_y, max(half_y, sh - half_y)))
    flip = -1.0 if rng.random() < 0.5 else 1.0
    view = np.zeros((T, 2, 3))
    for t in range(T):
        step = k / float(zoom[t])
        view[t] = [
            [flip * step, 0.0, cx + k * offsets[t, 0] - flip * step * w / 2],
            [0.0, step, cy + k * offsets[t, 1] - step * h / 2],
        ]
    return source, view, offsets


def _photo_actor(
    planner: _Planner,
    code: int,
    area: float,
    kind: str,
    photo: str,
    pcfg: PhotoConfig,
    similar_to: int | None = None,
) -> _PhotoActor:
    """One textured shape of ``kind`` covering about ``area`` of the frame, textured with ``photo``."""
    rng, cfg, (h, w) = planner.rng, planner.cfg, planner.size
    shape = _make_shape(kind, rng, pcfg, cfg)
    reach = shape.typical_reach()
    unit_area, hull_area = shape.unit_area()
    # thin shapes cover few pixels for their size: size them by the mean of their area and their hull's
    unit = math.sqrt(area * h * w / max(math.sqrt(unit_area * hull_area), 1e-6))
    unit = min(unit, pcfg.max_extent * min(h, w) / (reach * math.exp(cfg.scale_amp)))
    shape.min_width = pcfg.min_width_px / unit
    source, texture = _texture_map(rng, load_photo(photo), reach, unit, pcfg)
    radius = max(math.sqrt(unit_area / math.pi), 0.6 * reach) * unit
    light = float(rng.uniform(0, 2 * math.pi))
    tilt = (
        float(rng.uniform(-0.25, 0.25)),
        float(rng.uniform(0.03, 0.12)),
        2 * math.pi / float(rng.uniform(*cfg.scale_period)),
        float(rng.uniform(0, 2 * math.pi)),
    )
    shadow_px = (pcfg.shadow_offset + 3 * pcfg.shadow_blur) * unit * math.exp(cfg.scale_amp)
    blur_px = pcfg.motion_blur * 2.0 * cfg.max_speed * w  # twice the wander speed: the tracks may overshoot
    effects = shadow_px + blur_px
    return _PhotoActor(
        code=code,
        similar_to=similar_to,
        shape=shape,
        unit=unit,
        radius=radius,
        area_fraction=area,
        photo=photo,
        source=source,
        texture=texture,
        gains=_gains(rng, photo, pcfg.colour_jitter),
        tilt=tilt,
        light=np.array([math.cos(light), math.sin(light)]),
        reach=reach,
        effects_px=effects,
    )


def _kinds(rng: np.random.Generator, count: int, pcfg: PhotoConfig) -> list[str]:
    """``count`` kinds by weight, without repeats while the families last (a video mixes shape families)."""
    names = [k for k in KINDS if pcfg.kind_weights.get(k, 0.0) > 0]
    weights = np.array([pcfg.kind_weights[k] for k in names], np.float64)
    out: list[str] = []
    while len(out) < count:
        take = min(count - len(out), len(names))
        picks = rng.choice(len(names), size=take, replace=False, p=weights / weights.sum())
        out.extend(names[int(i)] for i in picks)
    return out


def _plan_photo(
    planner: _Planner, index: int, num_objects: int, pool: Sequence[str], background: str, pcfg: PhotoConfig
) -> tuple[list[Any], dict[str, Any]]:
    rng, cfg = planner.rng, planner.cfg
    hi = min(cfg.object_area[1], cfg.max_total_area / num_objects)
    area_range = (min(cfg.object_area[0], hi), hi)
    others = [p for p in pool if p != background] or list(pool)
    order = [others[int(i)] for i in rng.permutation(len(others))]
    kinds = _kinds(rng, num_objects, pcfg)
    targets = [
        _photo_actor(planner, k + 1, planner.uniform(area_range), kinds[k], order[k % len(order)], pcfg)
        for k in range(num_objects)
    ]
    distractors: list[_PhotoActor] = []
    if cfg.max_distractors and rng.random() < cfg.distractor_prob:
        for j in range(int(rng.integers(1, cfg.max_distractors + 1))):
            ref = targets[int(rng.integers(0, num_objects))]
            area = ref.area_fraction * planner.uniform(cfg.distractor_area)
            distractors.append(
                _photo_actor(planner, DISTRACTOR_BASE + j, area, ref.shape.kind, ref.photo, pcfg, ref.code)
            )
    return _animate(planner, targets, distractors, index)


def make_photo_video(
    num_frames: int,
    size: tuple[int, int],
    seed: int,
    index: int,
    name: str,
    cfg: SyntheticConfig,
    split: str,
) -> PhotoVideo:
    """Plan photo-style video ``index`` of a dataset seeded with ``seed``, with ``split``'s photos only.

    Called by :func:`ovsnet.data.synthetic.make_video` when ``config.style == "photo"``; arguments are
    already validated there.
    """
    pcfg = PhotoConfig.from_mapping(cfg.photo)
    pool = photo_names(split)
    rng = np.random.default_rng((seed, index, 0))
    background = pool[int(rng.integers(0, len(pool)))]
    camera = _camera(rng, size, num_frames, cfg)
    source, view, offsets = _view(rng, load_photo(background), size, camera, pcfg)
    background_gains = _gains(rng, background, pcfg.colour_jitter)
    t = np.arange(num_frames, dtype=np.float64)
    illumination = 1.0 + cfg.illumination * np.sin(
        2 * math.pi * t / float(rng.uniform(20, 60)) + rng.uniform(0, 6.3)
    )
    temperature = pcfg.light_colour * np.sin(
        2 * math.pi * t / float(rng.uniform(30, 90)) + rng.uniform(0, 6.3)
    )
    lighting = {
        "colour": np.stack([1.0 + temperature, np.ones_like(t), 1.0 - temperature], axis=1),
        "gradient_angle": rng.uniform(0, 2 * math.pi) + t * float(rng.uniform(-0.03, 0.03)),
    }
    shadow_angle = float(rng.uniform(0.25, 0.75) * math.pi)  # light from above: shadows fall downwards
    shadow_dir = np.array([math.cos(shadow_angle), math.sin(shadow_angle)])
    num_objects = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))

    def build(count: int) -> PhotoVideo:
        planner = _Planner(rng, size, num_frames, cfg)
        actors, scripted = _plan_photo(planner, index, count, pool, background, pcfg)
        return PhotoVideo(
            name,
            size,
            num_frames,
            seed,
            index,
            cfg,
            actors,
            source,
            camera,
            illumination,
            scripted,
            photo_config=pcfg,
            split=split,
            background_photo=background,
            view=view,
            offsets=offsets,
            background_gains=background_gains,
            lighting=lighting,
            shadow_dir=shadow_dir,
        )

    return _first_valid(build, num_objects, index, size, cfg.max_attempts)
