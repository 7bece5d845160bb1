"""The generator's settings and the checks on its arguments: one place that says what a valid video is.

:class:`SyntheticConfig` holds what every look shares (objects, motion, camera, events, output);
:class:`PhotoConfig` the photo look's own knobs (``SyntheticConfig.photo``), checked here with the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from ovsnet.data.io import DataError

PATTERNS: tuple[str, ...] = ("stripes", "checker", "dots", "rings", "waves")
#: ``toy``: procedural stars and blobs on cloudy backgrounds; ``photo``: real photographs, articulated shapes.
STYLES: tuple[str, ...] = ("toy", "photo")
#: Instance-map code of the first distractor; target objects use their label ids 1..K.
DISTRACTOR_BASE = 128
FORMAT_VERSION = 1
GENERATOR = "ovsnet.data.synthetic"  # recorded in every meta file: marks a folder as written by this package
_MIN_SIZE = 32
_RANGE_FIELDS = (
    "object_area",
    "lobes",
    "lobe_amp",
    "scale_period",
    "key_spacing",
    "pattern_period",
    "object_saturation",
    "object_value",
    "dark_value",
    "background_saturation",
    "background_value",
    "camera_period",
    "reentry_gap",
    "distractor_area",
)
_FRACTION_FIELDS = (
    "max_total_area",
    "min_first_area",
    "min_first_visibility",
    "reentry_fraction",
    "occlusion_fraction",
    "occlusion_threshold",
    "distractor_prob",
)


def range_pair(
    owner: str, name: str, value: Any, integer: bool, positive: bool
) -> tuple[int, int] | tuple[float, float]:
    """A config's ``(low, high)`` range, cast to int or float and checked: ``0 <= low <= high``, or
    ``0 < low <= high`` when ``positive``; anything else is a :class:`DataError` naming ``owner.name``."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise DataError(f"{owner}.{name} must be a (low, high) pair, got {value!r}")
    cast = int if integer else float
    low, high = cast(value[0]), cast(value[1])
    if positive and not 0 < low <= high:
        raise DataError(f"{owner}.{name} must satisfy 0 < low <= high, got {value!r}")
    if not positive and (low > high or low < 0):
        raise DataError(f"{owner}.{name} must satisfy 0 <= low <= high, got {value!r}")
    return low, high


@dataclass
class SyntheticConfig:
    """Every knob of the scene generator; ranges are ``(low, high)`` and sampled uniformly per video/object.

    Sizes and speeds are relative to the frame so one config works from 64x80 to 480x854.
    ``style="photo"`` uses the object, motion, camera, lighting, event and output knobs below but not the toy
    look (patterns, colours, outline, background); its own knobs are the fields of
    :class:`ovsnet.data.photo_videos.PhotoConfig`, given as the ``photo`` mapping.
    """

    style: str = "toy"  # one of STYLES
    # objects
    min_objects: int = 1
    max_objects: int = 4
    object_area: tuple[float, float] = (0.08, 0.2)  # nominal area per object, fraction of the frame
    max_total_area: float = 0.42  # caps the per-object area at max_total_area / num_objects
    min_first_area: float = 0.015  # every object covers at least this much of frame 0 (visible pixels)
    min_first_visibility: float = 0.7  # and at least this fraction of it is unoccluded in frame 0
    # shape: r(θ) = 1 + a(t)·cos(nθ + φ(t)) + Σ b_j·cos(k_j θ + ψ_j(t)); a > 1/(n²+1) makes it non-convex,
    # the generator raises a to a clearly concave minimum for the drawn n
    vertices: int = 96
    lobes: tuple[int, int] = (3, 6)
    lobe_amp: tuple[float, float] = (0.18, 0.3)
    harmonics: int = 3
    harmonic_amp: float = 0.05
    deform_speed: float = 0.08  # radians per frame of the lobe / harmonic phase drift (non-rigid deformation)
    deform_amp: float = 0.3  # relative modulation of the lobe amplitude over time
    scale_amp: float = 0.2  # log-scale amplitude of the periodic scale change
    scale_period: tuple[float, float] = (16.0, 48.0)  # frames
    stretch_amp: float = 0.12  # log-amplitude of the anisotropic stretch
    rotation_speed: float = 3.0  # degrees per frame (maximum)
    # motion
    max_speed: float = 0.03  # wander speed, fraction of the frame width per frame
    key_spacing: tuple[int, int] = (5, 10)  # frames between motion keyframes
    # appearance
    patterns: tuple[str, ...] = PATTERNS
    pattern_period: tuple[float, float] = (0.28, 0.5)  # in units of the object radius
    min_pattern_px: float = 4.0
    object_saturation: tuple[float, float] = (0.7, 1.0)
    object_value: tuple[float, float] = (0.8, 1.0)
    dark_value: tuple[float, float] = (0.3, 0.5)  # value factor of the pattern's second colour
    outline_width: int | None = None  # None: max(1, round(min(H, W) / 160))
    shading: float = 0.15
    background_saturation: tuple[float, float] = (0.02, 0.22)
    background_value: tuple[float, float] = (0.35, 0.6)
    background_contrast: float = 0.1
    background_clutter: int = 8  # faint desaturated shapes in the background (edges that are not objects)
    camera_pan: float = 0.08  # fraction of the frame
    camera_zoom: float = 0.12
    camera_period: tuple[float, float] = (40.0, 120.0)  # frames
    illumination: float = 0.04
    noise_std: float = 2.0
    # events
    reentry_fraction: float = (
        0.5  # fraction of videos (with >= reentry_min_frames) with a scripted exit+re-entry
    )
    reentry_min_frames: int = 12
    reentry_gap: tuple[float, float] = (0.2, 0.35)  # frames fully outside, fraction of the cycle length
    reentry_cycle: int = 150  # long videos repeat the exit / re-entry every ~cycle frames
    occlusion_fraction: float = 0.5  # fraction of multi-object videos with a scripted crossing
    occlusion_threshold: float = 0.95  # visibility below which meta records an occlusion event
    distractor_prob: float = 0.3
    max_distractors: int = 1
    distractor_area: tuple[float, float] = (0.35, 0.6)  # relative to the target it imitates
    # output
    jpeg_quality: int = 90
    max_attempts: int = 40
    # style="photo" only: PhotoConfig overrides, e.g. {"motion_blur": 0.8}
    photo: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in _RANGE_FIELDS:
            integer = name in ("lobes", "key_spacing")
            setattr(
                self, name, range_pair("SyntheticConfig", name, getattr(self, name), integer, positive=False)
            )
        for name in _FRACTION_FIELDS:
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise DataError(f"SyntheticConfig.{name} must be in [0, 1], got {value}")
        self.patterns = tuple(str(p) for p in self.patterns)
        unknown = [p for p in self.patterns if p not in PATTERNS]
        if unknown or not self.patterns:
            raise DataError(
                f"SyntheticConfig.patterns must be a non-empty subset of {PATTERNS}, got {self.patterns}"
            )
        if not 1 <= self.min_objects <= self.max_objects:
            raise DataError(
                f"SyntheticConfig needs 1 <= min_objects <= max_objects, got "
                f"{self.min_objects}..{self.max_objects}"
            )
        if self.max_objects >= DISTRACTOR_BASE or self.max_distractors > 255 - DISTRACTOR_BASE:
            raise DataError("SyntheticConfig: too many objects or distractors")
        if self.max_distractors < 0 or self.vertices < 8 or self.harmonics < 0 or self.lobes[0] < 2:
            raise DataError(
                "SyntheticConfig: max_distractors >= 0, vertices >= 8, harmonics >= 0, lobes >= 2"
            )
        if self.key_spacing[0] < 1 or self.reentry_cycle < 8 or self.reentry_min_frames < 6:
            raise DataError("SyntheticConfig: key_spacing >= 1, reentry_cycle >= 8, reentry_min_frames >= 6")
        if not 1 <= self.jpeg_quality <= 100 or self.max_attempts < 1:
            raise DataError("SyntheticConfig: jpeg_quality in 1..100 and max_attempts >= 1")
        if not 0.0 <= self.deform_amp <= 0.9:
            raise DataError(f"SyntheticConfig.deform_amp must be in [0, 0.9], got {self.deform_amp}")
        if self.outline_width is not None and self.outline_width < 0:
            raise DataError(f"SyntheticConfig.outline_width must be >= 0, got {self.outline_width}")
        self.style = str(self.style)
        if self.style not in STYLES:
            raise DataError(f"SyntheticConfig.style must be one of {STYLES}, got {self.style!r}")
        if self.photo is not None:
            if not isinstance(self.photo, Mapping):
                raise DataError(f"SyntheticConfig.photo must be a mapping, got {self.photo!r}")
            # an OmegaConf DictConfig from Hydra: plain, JSON-able values
            self.photo = OmegaConf.to_container(OmegaConf.create(dict(self.photo)), resolve=True)
            if self.style == "photo":
                PhotoConfig.from_mapping(self.photo)  # fail early on unknown keys or bad values


def with_overrides(config: SyntheticConfig | None, overrides: Mapping[str, Any]) -> SyntheticConfig:
    """Apply keyword overrides to a config; an unknown key is a :class:`DataError` naming it."""
    config = config or SyntheticConfig()
    known = {f.name for f in fields(SyntheticConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise DataError(f"unknown synthetic config key(s) {unknown}; known keys: {sorted(known)}")
    return replace(config, **overrides) if overrides else config


def parse_size(size: Any) -> tuple[int, int]:
    """(H, W) from a pair, an int (square) or an ``"HxW"`` string."""
    try:
        if isinstance(size, str):
            parts = size.lower().replace(",", "x").split("x")
            if len(parts) != 2:
                raise ValueError
            h, w = int(parts[0]), int(parts[1])
        elif isinstance(size, (int, np.integer)):
            h = w = int(size)
        else:
            h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DataError(f"size must be (H, W) or 'HxW', got {size!r}") from None
    if h < _MIN_SIZE or w < _MIN_SIZE:
        raise DataError(f"size must be at least {_MIN_SIZE}x{_MIN_SIZE}, got {h}x{w}")
    return h, w


def check_counts(num_frames: int, seed: int) -> None:
    """Integers in range, so a bad Hydra override fails here with its name rather than deep in numpy."""
    for key, value in (("num_frames", num_frames), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise DataError(f"{key} must be an integer, got {value!r}")
    if num_frames < 1:
        raise DataError(f"num_frames must be >= 1, got {num_frames}")
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")


def check_split(split: str) -> str:
    if split not in ("train", "val"):
        raise DataError(f"split must be 'train' or 'val', got {split!r}")
    return split


def sequence_name(index: int, style: str = "toy") -> str:
    """DAVIS-style folder name of the ``index``-th synthetic sequence (``photo-NNN`` for the photo style)."""
    return f"{'photo' if style == 'photo' else 'synth'}-{index:03d}"


def config_dict(cfg: SyntheticConfig) -> dict[str, Any]:
    """The config as nested JSON-able dicts and lists (tuples become lists), as the meta files record it."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(asdict(cfg))


#: Shape families: articulated bodies, branching thin shapes, outlines with holes, crescents, toy stars.
KINDS: tuple[str, ...] = ("limbs", "branch", "holes", "crescent", "star")
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
            integer = name in ("limbs", "holes")
            setattr(self, name, range_pair("PhotoConfig", name, getattr(self, name), integer, positive=True))
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
