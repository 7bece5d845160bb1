"""Procedural DAVIS-layout videos: ovsnet's embedded default dataset.

Real DAVIS cannot be downloaded everywhere (CI, air-gapped machines), yet the demo, the tests, the benchmarks
and the ablations all need videos with the hard cases of semi-supervised VOS. This generator makes them:

* 1-4 target objects with non-convex star/blob outlines (a dominant lobe harmonic plus smooth radial noise)
  that move smoothly, change scale, rotate, stretch and deform non-rigidly;
* each object a saturated colour with its own pattern (stripes, checker, dots, rings, waves) and a thin darker
  outline, on a desaturated, lower-contrast textured background that pans and zooms (camera motion);
* occlusions (a fixed depth order, occluded pixels belong to the front object), objects that leave the frame
  and re-enter many frames later, and unannotated distractors that look like a target (same shape family and
  colour tone, smaller, label 0).

``style="photo"`` swaps the look for real photographs (:mod:`ovsnet.data.photo_videos`: photo backgrounds
and object textures, articulated / holed / thin shapes, camera pan and zoom, lighting drift, motion blur)
while keeping this module's motion planning, occlusions, re-entries, distractors and output layout; its
validation videos use photos the training videos never see.

Every video is planned from ``(seed, index)`` alone, so the same settings give byte-identical PNGs and JPEGs.
A planned :class:`SyntheticVideo` renders any frame on demand (constant memory for the long-video benchmark);
:func:`generate_sequence` renders a whole video in memory; :func:`generate_dataset` writes the DAVIS 2017
layout plus ``meta/<seq>.json`` (per-frame visibility, in-frame flags, occlusion and re-entry events).

    python -m ovsnet.data.synthetic --out data/synthetic --sequences 8 --frames 16 --size 128x160
    ovsnet-synthetic --out data/synthetic_photo --style photo --sequences 10 --frames 40 --size 240x427
"""

from __future__ import annotations

import argparse
import ast
import colorsys
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from ovsnet.data.io import DataError, atomic_path, write_frame, write_label_map

__all__ = [
    "DISTRACTOR_BASE",
    "PATTERNS",
    "STYLES",
    "SyntheticConfig",
    "SyntheticFrame",
    "SyntheticSequence",
    "SyntheticVideo",
    "build_meta",
    "dataset_style",
    "generate_dataset",
    "generate_sequence",
    "main",
    "make_video",
    "sequence_name",
]

log = logging.getLogger(__name__)

PATTERNS: tuple[str, ...] = ("stripes", "checker", "dots", "rings", "waves")
#: ``toy``: procedural stars and blobs on cloudy backgrounds; ``photo``: real photographs, articulated shapes.
STYLES: tuple[str, ...] = ("toy", "photo")
#: Instance-map code of the first distractor; target objects use their label ids 1..K.
DISTRACTOR_BASE = 128
FORMAT_VERSION = 1
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
            value = getattr(self, name)
            if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
                raise DataError(f"SyntheticConfig.{name} must be a (low, high) pair, got {value!r}")
            cast = int if name in ("lobes", "key_spacing") else float
            low, high = cast(value[0]), cast(value[1])
            if low > high or low < 0:
                raise DataError(f"SyntheticConfig.{name} must satisfy 0 <= low <= high, got {value!r}")
            setattr(self, name, (low, high))
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
            self.photo = _plain(self.photo)  # an OmegaConf DictConfig from Hydra: plain, JSON-able values
            if self.style == "photo":
                from ovsnet.data.photo_videos import PhotoConfig

                PhotoConfig.from_mapping(self.photo)  # fail early on unknown keys or bad values


def _plain(value: Any) -> Any:
    """Nested mappings and sequences (OmegaConf containers included) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def _config(config: SyntheticConfig | None, overrides: dict[str, Any]) -> SyntheticConfig:
    """Apply keyword overrides to a config; an unknown key is a :class:`DataError` naming it."""
    config = config or SyntheticConfig()
    known = {f.name for f in fields(SyntheticConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise DataError(f"unknown synthetic config key(s) {unknown}; known keys: {sorted(known)}")
    return replace(config, **overrides) if overrides else config


def _parse_size(size: Any) -> tuple[int, int]:
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


def _check_counts(num_frames: int, seed: int) -> None:
    for key, value in (("num_frames", num_frames), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise DataError(f"{key} must be an integer, got {value!r}")
    if num_frames < 1:
        raise DataError(f"num_frames must be >= 1, got {num_frames}")
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")


def sequence_name(index: int, style: str = "toy") -> str:
    """DAVIS-style folder name of the ``index``-th synthetic sequence (``photo-NNN`` for the photo style)."""
    return f"{'photo' if style == 'photo' else 'synth'}-{index:03d}"


def _spread(index: int, fraction: float) -> bool:
    """True for an evenly spread ``fraction`` of indices (index 0 first), deterministic without an rng."""
    return math.ceil(round((index + 1) * fraction, 9)) > math.ceil(round(index * fraction, 9))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h % 360.0) / 360.0, s, v), np.float32) * 255.0


# ---------------------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Actor:
    """One shape (target or distractor): outline, appearance and per-frame track."""

    code: int  # instance-map code: label id for targets, DISTRACTOR_BASE + j for distractors
    similar_to: int | None
    radius: float  # nominal radius in pixels
    lobes: int
    lobe_amp: float
    lobe_phase: float
    lobe_drift: float
    amp_freq: float
    amp_phase: float
    harm_k: np.ndarray
    harm_amp: np.ndarray
    harm_phase: np.ndarray
    harm_drift: np.ndarray
    pattern: str
    period: float  # pattern period in units of the radius
    pattern_angle: float
    light: np.ndarray  # (2,) light direction in object coordinates
    hue: float
    colour: np.ndarray  # (3,) float RGB of the base colour
    colour2: np.ndarray  # second pattern colour
    outline: np.ndarray
    centre: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (T, 2) x, y
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stretch: np.ndarray = field(default_factory=lambda: np.zeros(0))
    exits: list[tuple[int, int]] = field(default_factory=list)  # scripted fully-outside windows

    @property
    def is_distractor(self) -> bool:
        return self.code >= DISTRACTOR_BASE

    @property
    def label(self) -> int:
        return 0 if self.is_distractor else self.code

    def extent(self, cfg: SyntheticConfig) -> float:
        """Upper bound of the distance from the centre to any outline point over the whole video."""
        radial = 1.0 + self.lobe_amp * (1.0 + cfg.deform_amp) + float(self.harm_amp.sum())
        return self.radius * math.exp(cfg.scale_amp) * math.exp(cfg.stretch_amp) * radial

    def geometry(self, t: int, theta: np.ndarray, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
        """Outline points (N, 2) in frame pixels and the 2x2 object→frame linear map at frame ``t``."""
        amp = self.lobe_amp * (1.0 + cfg.deform_amp * math.sin(self.amp_freq * t + self.amp_phase))
        r = 1.0 + amp * np.cos(self.lobes * theta + self.lobe_phase + self.lobe_drift * t)
        if self.harm_k.size:
            phases = self.harm_phase + self.harm_drift * t
            r = r + (
                self.harm_amp[:, None] * np.cos(self.harm_k[:, None] * theta[None] + phases[:, None])
            ).sum(0)
        s = self.radius * self.scale[t]
        st = self.stretch[t]
        ca, sa = math.cos(self.angle[t]), math.sin(self.angle[t])
        linear = s * np.array([[ca * st, -sa / st], [sa * st, ca / st]])
        local = np.stack([r * np.cos(theta), r * np.sin(theta)])
        return (linear @ local).T + self.centre[t], linear


def _hermite(times: np.ndarray, pos: np.ndarray, zero: np.ndarray, num_frames: int) -> np.ndarray:
    """Smooth (C1) track through keyframes: Catmull-Rom tangents, zero tangent where ``zero`` is set."""
    t = np.arange(num_frames, dtype=np.float64)
    if len(times) == 1:
        return np.repeat(pos[:1], num_frames, axis=0)
    m = np.zeros_like(pos)
    m[1:-1] = (pos[2:] - pos[:-2]) / (times[2:] - times[:-2])[:, None]
    m[0] = (pos[1] - pos[0]) / (times[1] - times[0])
    m[-1] = (pos[-1] - pos[-2]) / (times[-1] - times[-2])
    m[zero] = 0.0
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    t0, dt = times[seg], times[seg + 1] - times[seg]
    s = ((t - t0) / dt)[:, None]
    s2, s3 = s * s, s * s * s
    return (
        (2 * s3 - 3 * s2 + 1) * pos[seg]
        + (s3 - 2 * s2 + s) * dt[:, None] * m[seg]
        + (-2 * s3 + 3 * s2) * pos[seg + 1]
        + (s3 - s2) * dt[:, None] * m[seg + 1]
    )


class _Keys:
    """Motion keyframes of one actor: (time, position, zero tangent, free to move for a scripted crossing)."""

    def __init__(self, t: int, p: np.ndarray) -> None:
        self.items: list[tuple[int, np.ndarray, bool, bool]] = [(t, p, False, False)]

    @property
    def last(self) -> tuple[int, np.ndarray]:
        return self.items[-1][0], self.items[-1][1]

    def add(self, t: int, p: np.ndarray, zero: bool = False, free: bool = True) -> None:
        if t <= self.items[-1][0]:
            raise AssertionError("keyframes must be strictly increasing")  # programming error
        self.items.append((t, np.asarray(p, np.float64), zero, free))

    def track(self, num_frames: int) -> np.ndarray:
        times = np.array([k[0] for k in self.items], np.float64)
        pos = np.array([k[1] for k in self.items], np.float64)
        zero = np.array([k[2] for k in self.items], bool)
        return _hermite(times, pos, zero, num_frames)


class _Planner:
    """Draws one video's actors, tracks, camera and background from a single rng."""

    def __init__(
        self, rng: np.random.Generator, size: tuple[int, int], num_frames: int, cfg: SyntheticConfig
    ):
        self.rng, self.size, self.T, self.cfg = rng, size, num_frames, cfg
        self.theta = np.linspace(0.0, 2.0 * math.pi, cfg.vertices, endpoint=False)

    def uniform(self, bounds: tuple[float, float]) -> float:
        return float(self.rng.uniform(bounds[0], bounds[1]))

    # -- shapes and appearance ----------------------------------------------------------------------------
    def actor(
        self,
        code: int,
        area: float,
        hue: float,
        pattern: str,
        lobes: int | None = None,
        similar_to: int | None = None,
    ) -> _Actor:
        cfg, rng = self.cfg, self.rng
        n = int(rng.integers(cfg.lobes[0], cfg.lobes[1] + 1)) if lobes is None else lobes
        # keep it clearly non-convex (solidity <~ 0.95) even at the smallest amplitude of the modulation
        amp = max(self.uniform(cfg.lobe_amp), (0.1 + 1.3 / (n * n)) / (1.0 - cfg.deform_amp))
        k = rng.integers(2, 9, size=cfg.harmonics).astype(np.float64)
        harm_amp = rng.uniform(0.3, 1.0, size=cfg.harmonics) * cfg.harmonic_amp
        radial_energy = 1.0 + amp * amp / 2.0 + float((harm_amp**2).sum()) / 2.0
        h, w = self.size
        radius = math.sqrt(area * h * w / (math.pi * radial_energy))
        period = self.uniform(cfg.pattern_period)
        period = max(period, cfg.min_pattern_px / (radius * math.exp(-cfg.scale_amp)))
        sat, val = self.uniform(cfg.object_saturation), self.uniform(cfg.object_value)
        hue2 = hue + float(rng.uniform(-15.0, 15.0))
        colour = _hsv(hue, sat, val)
        colour2 = _hsv(hue2, sat * float(rng.uniform(0.8, 1.0)), val * self.uniform(cfg.dark_value))
        light_dir = float(rng.uniform(0, 2 * math.pi))
        return _Actor(
            code=code,
            similar_to=similar_to,
            radius=radius,
            lobes=n,
            lobe_amp=amp,
            lobe_phase=float(rng.uniform(0, 2 * math.pi)),
            lobe_drift=float(rng.uniform(-1, 1)) * cfg.deform_speed,
            amp_freq=2 * math.pi / self.uniform(cfg.scale_period),
            amp_phase=float(rng.uniform(0, 2 * math.pi)),
            harm_k=k,
            harm_amp=harm_amp,
            harm_phase=rng.uniform(0, 2 * math.pi, size=cfg.harmonics),
            harm_drift=rng.uniform(-1, 1, size=cfg.harmonics) * cfg.deform_speed * 1.5,
            pattern=pattern,
            period=period,
            pattern_angle=float(rng.uniform(0, math.pi)),
            light=np.array([math.cos(light_dir), math.sin(light_dir)]),
            hue=hue % 360.0,
            colour=colour,
            colour2=colour2,
            outline=colour * 0.22,
        )

    def transforms(self, actor: _Actor) -> None:
        """Scale change, rotation and anisotropic stretch over time (the non-rigid parts live in geometry)."""
        cfg, rng, t = self.cfg, self.rng, np.arange(self.T, dtype=np.float64)
        actor.scale = np.exp(
            cfg.scale_amp
            * np.sin(2 * math.pi * t / self.uniform(cfg.scale_period) + rng.uniform(0, 2 * math.pi))
        )
        omega = math.radians(cfg.rotation_speed) * float(rng.uniform(-1, 1))
        actor.angle = rng.uniform(0, 2 * math.pi) + omega * t + 0.15 * np.sin(t / 7.0 + rng.uniform(0, 6.3))
        actor.stretch = np.exp(
            cfg.stretch_amp
            * np.sin(2 * math.pi * t / self.uniform(cfg.scale_period) + rng.uniform(0, 2 * math.pi))
        )

    # -- motion ---------------------------------------------------------------------------------------------
    def box(self, actor: _Actor) -> tuple[np.ndarray, np.ndarray]:
        """Allowed range of an inside keyframe's centre: the shape may poke out a little, never leave."""
        h, w = self.size
        margin = 0.7 * actor.radius
        low = np.array([min(margin, w / 2), min(margin, h / 2)])
        return low, np.array([w, h], np.float64) - low

    def wander(self, keys: _Keys, actor: _Actor, t_end: int, others: Sequence[_Actor] = ()) -> None:
        """Random inside keyframes up to ``t_end`` (inclusive), each step bounded by the wander speed.

        Of a few candidate keys the one farthest from the already planned ``others`` wins, so objects do not
        pile up (occlusions still happen, and the scripted crossing makes sure of one).
        """
        low, high = self.box(actor)
        step_max = self.cfg.max_speed * self.size[1]
        while keys.last[0] < t_end:
            t0, p0 = keys.last
            t1 = min(t0 + int(self.rng.integers(self.cfg.key_spacing[0], self.cfg.key_spacing[1] + 1)), t_end)
            delta = self.rng.uniform(low, high, size=(3, 2)) - p0
            dist = np.linalg.norm(delta, axis=1, keepdims=True)
            limit = step_max * (t1 - t0)
            cands = np.clip(p0 + delta * np.minimum(1.0, limit / np.maximum(dist, 1e-9)), low, high)
            if others:
                clearance = np.min(
                    [
                        np.linalg.norm(cands - o.centre[t1], axis=1) / (actor.radius + o.radius)
                        for o in others
                    ],
                    axis=0,
                )
                keys.add(t1, cands[int(np.argmax(clearance))])
            else:
                keys.add(t1, cands[0])

    def exit_cycles(self, keys: _Keys, actor: _Actor, others: Sequence[_Actor] = ()) -> None:
        """Leave the frame, stay fully outside for a gap, come back; repeated every ``reentry_cycle`` frames."""
        cfg, rng, T = self.cfg, self.rng, self.T
        h, w = self.size
        out = actor.extent(cfg) + 2.0
        low, high = self.box(actor)
        cycles = max(1, T // cfg.reentry_cycle)
        length = T // cycles
        for c in range(cycles):
            base = c * length
            end = T - 1 if c == cycles - 1 else (c + 1) * length - 1
            span = end - base + 1
            exit_frames = max(2, round(span * float(rng.uniform(0.08, 0.15))))
            entry_frames = max(2, round(span * float(rng.uniform(0.08, 0.15))))
            gap = max(2, round(span * self.uniform(cfg.reentry_gap)))
            budget = span - 1 - (exit_frames + gap + entry_frames)
            if budget < 0:
                gap = max(1, gap + budget)
                budget = span - 1 - (exit_frames + gap + entry_frames)
                if budget < 0:
                    continue
            start = (
                base + int(rng.integers(0, budget // 2 + 1)) if c else int(rng.integers(0, budget // 3 + 1))
            )
            start = max(start, keys.last[0])
            if start > keys.last[0]:
                self.wander(keys, actor, start, others)
            _, pa = keys.last
            # the nearest border; both outside keys lie on that side, so the straight path between them
            # (zero tangents: a smoothstep along the segment) never touches the frame
            side = int(np.argmin([pa[0], w - pa[0], pa[1], h - pa[1]]))
            t_out, t_back, t_in = (
                start + exit_frames,
                start + exit_frames + gap,
                start + exit_frames + gap + entry_frames,
            )

            def outside(along: float, side: int = side) -> np.ndarray:
                if side == 0:
                    return np.array([-out, along])
                if side == 1:
                    return np.array([w + out, along])
                if side == 2:
                    return np.array([along, -out])
                return np.array([along, h + out])

            horizontal = side < 2
            extent_along = h if horizontal else w
            along_a = pa[1] if horizontal else pa[0]
            along_b = float(np.clip(along_a + rng.uniform(-0.2, 0.2) * extent_along, 0, extent_along))
            along_c = float(rng.uniform(0.15, 0.85) * extent_along)
            keys.add(t_out, outside(along_b), zero=True, free=False)
            keys.add(t_back, outside(along_c), zero=True, free=False)
            inward = float(rng.uniform(1.0, 1.6)) * actor.radius
            along_d = along_c + float(rng.uniform(-0.15, 0.15)) * extent_along
            if side == 0:
                pd = np.array([inward, along_d])
            elif side == 1:
                pd = np.array([w - inward, along_d])
            elif side == 2:
                pd = np.array([along_d, inward])
            else:
                pd = np.array([along_d, h - inward])
            keys.add(t_in, np.clip(pd, low, high))
            actor.exits.append((t_out, t_back))
        if keys.last[0] < T - 1:
            self.wander(keys, actor, T - 1, others)

    def initial_positions(self, actors: list[_Actor]) -> list[np.ndarray]:
        """Frame-0 centres, spread apart by rejection sampling so the first-frame masks are representative."""
        placed: list[np.ndarray] = []
        for actor in actors:
            low, high = self.box(actor)
            best, best_gap = None, -np.inf
            for _ in range(60):
                p = self.rng.uniform(low, high)
                gap = min(
                    (
                        float(np.linalg.norm(p - q)) - 0.9 * (actor.radius + other.radius)
                        for q, other in zip(placed, actors, strict=False)
                    ),
                    default=np.inf,
                )
                if gap > best_gap:
                    best, best_gap = p, gap
                if gap >= 0:
                    break
            placed.append(best)
        return placed


def _camera(
    rng: np.random.Generator, size: tuple[int, int], num_frames: int, cfg: SyntheticConfig
) -> np.ndarray:
    """(T, 3) pan x, pan y (pixels) and zoom (>= 1): smooth periodic camera motion."""
    h, w = size
    t = np.arange(num_frames, dtype=np.float64)
    periods = rng.uniform(cfg.camera_period[0], cfg.camera_period[1], size=3)
    phases = rng.uniform(0, 2 * math.pi, size=3)
    amps = rng.uniform(0.5, 1.0, size=3)
    pan_x = cfg.camera_pan * w * amps[0] * np.sin(2 * math.pi * t / periods[0] + phases[0])
    pan_y = cfg.camera_pan * h * amps[1] * np.sin(2 * math.pi * t / periods[1] + phases[1])
    zoom = 1.0 + cfg.camera_zoom * amps[2] * 0.5 * (1 + np.sin(2 * math.pi * t / periods[2] + phases[2]))
    return np.stack([pan_x, pan_y, zoom], axis=1)


def _background(rng: np.random.Generator, height: int, width: int, cfg: SyntheticConfig) -> np.ndarray:
    """A desaturated, lower-contrast multi-octave noise texture with faint clutter shapes (uint8 RGB)."""
    base = min(height, width)

    def noise(cells: Sequence[tuple[float, float]]) -> np.ndarray:
        acc = np.zeros((height, width), np.float32)
        for cell, weight in cells:
            gh, gw = max(2, round(height / cell) + 1), max(2, round(width / cell) + 1)
            grid = rng.random((gh, gw), dtype=np.float32)
            acc += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        return (acc - acc.mean()) / (acc.std() + 1e-6)

    value = noise(((base / 2, 1.0), (base / 6, 0.6), (base / 16, 0.45), (max(2.0, base / 48), 0.3)))
    value = float(rng.uniform(*cfg.background_value)) + cfg.background_contrast * value
    tint = noise(((base / 2, 1.0),))
    hue = (float(rng.uniform(0, 360)) + 25.0 * tint) % 360.0
    sat = np.clip(float(rng.uniform(*cfg.background_saturation)) * (1.0 + 0.3 * tint), 0.0, 1.0)
    hsv = np.dstack([hue, sat, np.clip(value, 0.0, 1.0)]).astype(np.float32)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    for _ in range(cfg.background_clutter):
        mask = np.zeros((height, width), np.uint8)
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.uniform(0.05, 0.25) * base) + 1, int(rng.uniform(0.03, 0.15) * base) + 1)
        if rng.random() < 0.5:
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            box = cv2.boxPoints((centre, (2.0 * axes[0], 2.0 * axes[1]), float(rng.uniform(0, 180))))
            cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
        grey = float(np.clip(value.mean() + rng.uniform(-0.15, 0.15), 0, 1))
        shade = np.array(
            colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(0, 0.15)), grey), np.float32
        )
        sel = mask.astype(bool)
        rgb[sel] = 0.65 * rgb[sel] + 0.35 * shade
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SyntheticFrame:
    """One rendered frame: the RGB image, the label map (0 = background, 1..K) and the instance map.

    ``instances`` equals ``labels`` on targets and holds ``DISTRACTOR_BASE + j`` on distractor ``j``.
    ``objects`` maps each target id to its pixel statistics: ``visible`` (pixels in the label map),
    ``in_frame`` (pixels the shape would cover inside the frame if nothing occluded it), ``area`` (polygon
    area of the whole shape, inside the frame or not), ``occluded_by`` (ids of targets in front of it) and
    ``by_distractor``; ``distractors`` lists the visible pixels of each distractor.
    """

    index: int
    image: np.ndarray | None
    labels: np.ndarray
    instances: np.ndarray
    objects: dict[int, dict[str, Any]]
    distractors: list[int]

    @property
    def distractor_mask(self) -> np.ndarray:
        return self.instances >= DISTRACTOR_BASE


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """A periodic signal in [-1, 1]-ish over object coordinates; its sign picks the pattern colour."""
    f = 2.0 * math.pi / period
    if kind == "stripes":
        return np.sin(f * u)
    if kind == "checker":
        return 2.0 * np.sin(f * u) * np.sin(f * v)
    if kind == "dots":
        return 1.5 * (np.cos(f * u) + np.cos(f * v) - 0.8)
    if kind == "rings":
        return np.sin(f * np.sqrt(u * u + v * v))
    return np.sin(f * (u + 0.35 * period * np.sin(0.5 * f * v)))  # waves


class SyntheticVideo:
    """A planned synthetic video; :meth:`render` draws any frame on demand (random access, O(1) memory)."""

    def __init__(
        self,
        name: str,
        size: tuple[int, int],
        num_frames: int,
        seed: int,
        index: int,
        config: SyntheticConfig,
        actors: list[_Actor],
        background: np.ndarray,
        camera: np.ndarray,
        illumination: np.ndarray,
        scripted: dict[str, Any],
    ) -> None:
        self.name, self.size, self.num_frames, self.seed, self.index = name, size, num_frames, seed, index
        self.config = config
        self.actors = actors  # back to front
        self.background = background
        self.camera = camera
        self.illumination = illumination
        self.scripted = scripted
        self._theta = np.linspace(0.0, 2.0 * math.pi, config.vertices, endpoint=False)
        h, w = size
        self._outline = (
            config.outline_width if config.outline_width is not None else max(1, round(min(h, w) / 160))
        )
        self._kernel = np.ones((3, 3), np.uint8)

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (
            f"SyntheticVideo(name={self.name!r}, frames={self.num_frames}, size={self.size}, "
            f"objects={self.object_ids}, distractors={len(self.actors) - len(self.object_ids)})"
        )

    @property
    def object_ids(self) -> list[int]:
        return sorted(a.code for a in self.actors if not a.is_distractor)

    def __iter__(self) -> Iterator[SyntheticFrame]:
        for t in range(self.num_frames):
            yield self.render(t)

    def _background_frame(self, t: int) -> np.ndarray:
        h, w = self.size
        pan_x, pan_y, zoom = self.camera[t]
        bh, bw = self.background.shape[:2]
        # frame pixel (x, y) samples the canvas at centre + pan + ((x, y) - frame centre) / zoom
        inv = np.array(
            [
                [1.0 / zoom, 0.0, bw / 2.0 + pan_x - w / (2.0 * zoom)],
                [0.0, 1.0 / zoom, bh / 2.0 + pan_y - h / (2.0 * zoom)],
            ]
        )
        return cv2.warpAffine(
            self.background,
            inv,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )

    def _paint(
        self,
        roi: np.ndarray,
        mask: np.ndarray,
        sel: np.ndarray,
        actor: _Actor,
        linear: np.ndarray,
        origin: np.ndarray,
    ) -> None:
        """Texture one shape into ``roi`` (a view of the frame): pattern, shading and the darker outline."""
        h, w = mask.shape
        inv = np.linalg.inv(linear).astype(np.float32)
        xs = np.arange(w, dtype=np.float32) + np.float32(origin[0])
        ys = np.arange(h, dtype=np.float32) + np.float32(origin[1])
        u = inv[0, 0] * xs[None, :] + inv[0, 1] * ys[:, None]
        v = inv[1, 0] * xs[None, :] + inv[1, 1] * ys[:, None]
        ca, sa = math.cos(actor.pattern_angle), math.sin(actor.pattern_angle)
        pu, pv = ca * u + sa * v, -sa * u + ca * v
        weight = np.clip(0.5 + 1.5 * _pattern(actor.pattern, pu, pv, actor.period), 0.0, 1.0)
        shade = 1.0 + self.config.shading * (actor.light[0] * u + actor.light[1] * v).astype(np.float32)
        colour = actor.colour + weight[..., None] * (actor.colour2 - actor.colour)
        colour *= shade[..., None]
        if self._outline > 0:
            inner = cv2.erode(mask, self._kernel, iterations=self._outline)
            colour[sel & (inner == 0)] = actor.outline
        np.clip(colour, 0.0, 255.0, out=colour)
        np.copyto(roi, colour.astype(np.uint8), where=sel[..., None])

    def _draw(
        self, actor: Any, t: int, image: np.ndarray | None, instances: np.ndarray
    ) -> tuple[tuple[slice, slice] | None, np.ndarray | None, float, int]:
        """Draw one shape over what is already drawn: its code into ``instances``, its look into ``image``.

        Returns the frame window it covers, its mask there, its whole area (inside the frame or not) and its
        in-frame pixels when nothing occludes it; subclasses draw other shape families the same way.
        """
        h, w = self.size
        pts, linear = actor.geometry(t, self._theta, self.config)
        area = abs(float(cv2.contourArea(pts.astype(np.float32))))
        pad = self._outline + 1
        x0, y0 = (
            max(int(math.floor(pts[:, 0].min())) - pad, 0),
            max(int(math.floor(pts[:, 1].min())) - pad, 0),
        )
        x1, y1 = (
            min(int(math.ceil(pts[:, 0].max())) + pad + 1, w),
            min(int(math.ceil(pts[:, 1].max())) + pad + 1, h),
        )
        if x0 >= x1 or y0 >= y1:
            return None, None, area, 0
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        fixed = np.round((pts - (x0, y0)) * 16.0).astype(np.int32)
        cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=4)
        sel = mask.astype(bool)
        in_frame = int(np.count_nonzero(sel))
        if in_frame == 0:
            return None, None, area, 0
        window = (slice(y0, y1), slice(x0, x1))
        instances[window][sel] = actor.code
        if image is not None:
            origin = np.array([x0, y0], np.float64) - actor.centre[t]
            self._paint(image[window], mask, sel, actor, linear, origin)
        return window, sel, area, in_frame

    def render(self, t: int, texture: bool = True) -> SyntheticFrame:
        """Frame ``t``: shapes drawn back to front, so occluded pixels belong to the front object."""
        if not 0 <= t < self.num_frames:
            raise DataError(f"{self.name}: frame {t} out of range 0..{self.num_frames - 1}")
        h, w = self.size
        image = self._background_frame(t) if texture else None
        instances = np.zeros((h, w), np.uint8)
        drawn = [(actor, *self._draw(actor, t, image, instances)) for actor in self.actors]
        counts = np.bincount(instances.ravel(), minlength=256)
        objects: dict[int, dict[str, Any]] = {}
        distractors: list[int] = []
        for actor, window, sel, area, in_frame in drawn:
            if actor.is_distractor:
                distractors.append(int(counts[actor.code]))
                continue
            occluders: list[int] = []
            if window is not None and counts[actor.code] < in_frame:
                covering = np.unique(instances[window][sel])
                occluders = [int(c) for c in covering if c != actor.code]
            objects[actor.code] = {
                "visible": int(counts[actor.code]),
                "in_frame": in_frame,
                "area": area,
                "occluded_by": sorted(c for c in occluders if c < DISTRACTOR_BASE),
                "by_distractor": any(c >= DISTRACTOR_BASE for c in occluders),
            }
        labels = instances.copy()
        labels[labels >= DISTRACTOR_BASE] = 0
        if image is not None:
            image = self._finish(image, t)
        return SyntheticFrame(
            index=t,
            image=image,
            labels=labels,
            instances=instances,
            objects=dict(sorted(objects.items())),
            distractors=distractors,
        )

    def _finish(self, image: np.ndarray, t: int) -> np.ndarray:
        """Global illumination change and sensor noise (per-frame rng, so any frame renders on its own)."""
        gain = float(self.illumination[t])
        if gain == 1.0 and self.config.noise_std <= 0:
            return image
        out = image.astype(np.float32)
        if gain != 1.0:
            out *= gain
        if self.config.noise_std > 0:
            rng = np.random.default_rng((self.seed, self.index, 1, t))
            out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(self.config.noise_std)
        np.clip(out + 0.5, 0.0, 255.0, out=out)
        return out.astype(np.uint8)

    # -- metadata -------------------------------------------------------------------------------------------
    def _actor_info(self, actor: Any) -> dict[str, Any]:
        """What ``meta`` records of one actor's look (subclasses record their own)."""
        return {
            "pattern": actor.pattern,
            "colour": [int(round(c)) for c in actor.colour],
            "hue": round(actor.hue, 2),
            "lobes": actor.lobes,
            "radius_px": round(actor.radius, 2),
        }

    def describe(self) -> dict[str, Any]:
        """Static description of the video (everything in ``meta/<seq>.json`` except the per-frame stats)."""
        objects, distractors = [], []
        for depth, actor in enumerate(self.actors):
            info = {**self._actor_info(actor), "depth": depth}
            if actor.is_distractor:
                distractors.append({"similar_to": actor.similar_to, **info})
            else:
                objects.append({"id": actor.code, **info, "scripted_exits": [list(e) for e in actor.exits]})
        return {
            "name": self.name,
            "generator": "ovsnet.data.synthetic",
            "style": self.config.style,
            "format_version": FORMAT_VERSION,
            "seed": self.seed,
            "index": self.index,
            "num_frames": self.num_frames,
            "size": list(self.size),
            "scripted": self.scripted,
            "objects": sorted(objects, key=lambda o: o["id"]),
            "distractors": distractors,
            "config": _jsonable(asdict(self.config)),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Inclusive (start, end) of each maximal run of True."""
    runs, start = [], None
    for t, flag in enumerate(flags):
        if flag and start is None:
            start = t
        elif not flag and start is not None:
            runs.append((start, t - 1))
            start = None
    if start is not None:
        runs.append((start, len(flags) - 1))
    return runs


def build_meta(video: SyntheticVideo, frames: Sequence[SyntheticFrame]) -> dict[str, Any]:
    """``meta/<seq>.json`` content: per-frame per-object visibility plus occlusion and re-entry events.

    ``visibility`` = visible pixels / pixels the shape covers inside the frame when nothing occludes it
    (0 when outside); ``in_frame_fraction`` = those in-frame pixels / the whole shape's area.
    """
    meta = video.describe()
    threshold = video.config.occlusion_threshold
    occlusions, reentries = [], []
    for obj in meta["objects"]:
        oid = obj["id"]
        stats = [f.objects[oid] for f in frames]
        visible = [s["visible"] for s in stats]
        in_frame_px = [s["in_frame"] for s in stats]
        visibility = [round(v / p, 4) if p else 0.0 for v, p in zip(visible, in_frame_px, strict=True)]
        in_frame = [p > 0 for p in in_frame_px]
        obj.update(
            {
                "visible_pixels": visible,
                "in_frame_pixels": in_frame_px,
                "visibility": visibility,
                "in_frame": in_frame,
                "in_frame_fraction": [
                    round(min(1.0, p / s["area"]), 4) if s["area"] > 0 else 0.0
                    for p, s in zip(in_frame_px, stats, strict=True)
                ],
                "occluded_by": [s["occluded_by"] for s in stats],
                "occluded_by_distractor": [s["by_distractor"] for s in stats],
            }
        )
        occluded = [f and v < threshold for f, v in zip(in_frame, visibility, strict=True)]
        for start, end in _runs(occluded):
            occlusions.append(
                {
                    "object": oid,
                    "start": start,
                    "end": end,
                    "min_visibility": min(visibility[start : end + 1]),
                    "occluders": sorted({o for s in stats[start : end + 1] for o in s["occluded_by"]}),
                    "by_distractor": any(s["by_distractor"] for s in stats[start : end + 1]),
                }
            )
        absent = [v == 0 for v in visible]
        for start, end in _runs(absent):
            if start == 0 or end == len(absent) - 1:
                continue  # not a leave-and-come-back
            reentries.append(
                {
                    "object": oid,
                    "exit": start,
                    "reenter": end + 1,
                    "absent_frames": end - start + 1,
                    "cause": "left_frame" if not all(in_frame[start : end + 1]) else "occluded",
                }
            )
    meta["distractor_visible_pixels"] = [
        [f.distractors[j] for f in frames] for j in range(len(meta["distractors"]))
    ]
    meta["occlusion_events"] = sorted(occlusions, key=lambda e: (e["start"], e["object"]))
    meta["reentry_events"] = sorted(reentries, key=lambda e: (e["exit"], e["object"]))
    return meta


# ---------------------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------------------


def _plan(
    rng: np.random.Generator,
    size: tuple[int, int],
    num_frames: int,
    index: int,
    num_objects: int,
    cfg: SyntheticConfig,
) -> tuple[list[_Actor], dict[str, Any]]:
    planner = _Planner(rng, size, num_frames, cfg)
    hi = min(cfg.object_area[1], cfg.max_total_area / num_objects)
    area_range = (min(cfg.object_area[0], hi), hi)
    step = 360.0 / num_objects
    hue0 = float(rng.uniform(0, 360))
    patterns = [
        cfg.patterns[i % len(cfg.patterns)] for i in rng.permutation(max(len(cfg.patterns), num_objects))
    ]
    targets = [
        planner.actor(
            k + 1,
            planner.uniform(area_range),
            hue0 + k * step + float(rng.uniform(-0.15, 0.15)) * step,
            patterns[k],
        )
        for k in range(num_objects)
    ]
    distractors: list[_Actor] = []
    if cfg.max_distractors and rng.random() < cfg.distractor_prob:
        for j in range(int(rng.integers(1, cfg.max_distractors + 1))):
            ref = targets[int(rng.integers(0, num_objects))]
            area = (ref.radius**2) * math.pi / (size[0] * size[1]) * planner.uniform(cfg.distractor_area)
            distractors.append(
                planner.actor(
                    DISTRACTOR_BASE + j,
                    area,
                    ref.hue + float(rng.uniform(-8, 8)),
                    ref.pattern,
                    lobes=ref.lobes,
                    similar_to=ref.code,
                )
            )
    return _animate(planner, targets, distractors, index)


def _animate(
    planner: _Planner, targets: list[Any], distractors: list[Any], index: int
) -> tuple[list[Any], dict[str, Any]]:
    """Plan every actor's track: transforms, frame-0 spread, wander, scripted exit + re-entry and crossing.

    Shared by every style: an actor only needs ``code``, ``radius``, ``extent(cfg)`` and the track fields of
    :class:`_Actor` (``centre``, ``scale``, ``angle``, ``stretch``, ``exits``). Returns the actors back to front
    and the scripted events.
    """
    rng, cfg, num_frames, num_objects = planner.rng, planner.cfg, planner.T, len(targets)
    actors = targets + distractors
    for actor in actors:
        planner.transforms(actor)
    starts = planner.initial_positions(actors)

    reentry = num_frames >= cfg.reentry_min_frames and _spread(index, cfg.reentry_fraction)
    exit_actor = targets[int(rng.integers(0, num_objects))] if reentry else None
    order = [int(i) for i in rng.permutation(len(actors))]
    depth = [actors[i] for i in order if actors[i] is not exit_actor]
    if exit_actor is not None:
        depth.append(exit_actor)  # front-most: once back inside it is always visible
    keys: dict[int, _Keys] = {}
    for k, (actor, start) in enumerate(zip(actors, starts, strict=True)):
        keys[actor.code] = _Keys(0, start)
        if actor is exit_actor:
            planner.exit_cycles(keys[actor.code], actor, actors[:k])
        else:
            planner.wander(keys[actor.code], actor, num_frames - 1, actors[:k])
        actor.centre = keys[actor.code].track(num_frames)

    crossing = None
    if num_objects >= 2 and num_frames >= 3 and _spread(index, cfg.occlusion_fraction):
        ranked = [a for a in depth if not a.is_distractor]
        pairs = [(f, b) for i, b in enumerate(ranked) for f in ranked[i + 1 :]]
        front, back = pairs[int(rng.integers(0, len(pairs)))]
        free = [i for i, item in enumerate(keys[front.code].items) if item[3] and item[0] > 0]
        if free:
            goal = float(rng.uniform(0.4, 0.9)) * (num_frames - 1)
            i = min(free, key=lambda i: abs(keys[front.code].items[i][0] - goal))
            t_key = keys[front.code].items[i][0]
            direction = rng.uniform(0, 2 * math.pi)
            offset = 0.3 * (front.radius + back.radius) * np.array([math.cos(direction), math.sin(direction)])
            low, high = planner.box(front)
            pos = np.clip(back.centre[t_key] + offset, low, high)
            keys[front.code].items[i] = (t_key, pos, False, True)
            front.centre = keys[front.code].track(num_frames)
            crossing = {"front": front.code, "back": back.code, "frame": int(t_key)}
    scripted = {"reentry_object": exit_actor.code if exit_actor else None, "crossing": crossing}
    return depth, scripted


def _first_frame_ok(video: SyntheticVideo) -> bool:
    """Every target visible in frame 0 with a reasonable, mostly unoccluded, mostly in-frame area."""
    cfg = video.config
    frame = video.render(0, texture=False)
    min_pixels = cfg.min_first_area * video.size[0] * video.size[1]
    for stats in frame.objects.values():
        if stats["visible"] < max(min_pixels, 1) or stats["in_frame"] < 0.75 * stats["area"]:
            return False
        if stats["visible"] < cfg.min_first_visibility * stats["in_frame"]:
            return False
    return True


def _first_valid(
    build: Callable[[int], SyntheticVideo], num_objects: int, index: int, size: tuple[int, int], attempts: int
) -> SyntheticVideo:
    """Re-plan until frame 0 shows every target well (``_first_frame_ok``), dropping objects if they do not fit."""
    while True:
        for _ in range(attempts):
            video = build(num_objects)
            if _first_frame_ok(video):
                return video
        if num_objects == 1:
            raise DataError(
                f"synthetic video {index}: could not place an object visibly in frame 0 at size {size}"
            )
        num_objects -= 1
        log.debug("video %d: reducing to %d objects to fit frame 0", index, num_objects)


def _check_split(split: str) -> str:
    if split not in ("train", "val"):
        raise DataError(f"split must be 'train' or 'val', got {split!r}")
    return split


def make_video(
    num_frames: int = 16,
    size: Any = (128, 160),
    seed: int = 0,
    index: int = 0,
    name: str | None = None,
    config: SyntheticConfig | None = None,
    split: str = "train",
    **config_overrides: Any,
) -> SyntheticVideo:
    """Plan video ``index`` of a dataset seeded with ``seed`` (cheap); render frames with ``render``/iteration.

    ``split`` only matters for ``style="photo"``: it picks the photo set (validation photos never appear in a
    training video), as :func:`generate_dataset` does for the sequences it lists in ``val.txt``.
    """
    cfg = _config(config, config_overrides)
    size = _parse_size(size)
    _check_counts(num_frames, seed)
    _check_split(split)
    num_frames, seed, index = int(num_frames), int(seed), int(index)
    if cfg.style == "photo":
        from ovsnet.data.photo_videos import make_photo_video

        return make_photo_video(
            num_frames, size, seed, index, name or sequence_name(index, cfg.style), cfg, split
        )
    rng = np.random.default_rng((seed, index, 0))
    h, w = size
    margin_y, margin_x = int(math.ceil(cfg.camera_pan * h)) + 2, int(math.ceil(cfg.camera_pan * w)) + 2
    background = _background(rng, h + 2 * margin_y, w + 2 * margin_x, cfg)
    camera = _camera(rng, size, num_frames, cfg)
    t = np.arange(num_frames, dtype=np.float64)
    illumination = 1.0 + cfg.illumination * np.sin(
        2 * math.pi * t / float(rng.uniform(20, 60)) + rng.uniform(0, 6.3)
    )
    num_objects = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))

    def build(count: int) -> SyntheticVideo:
        actors, scripted = _plan(rng, size, num_frames, index, count, cfg)
        return SyntheticVideo(
            name or sequence_name(index),
            size,
            num_frames,
            seed,
            index,
            cfg,
            actors,
            background,
            camera,
            illumination,
            scripted,
        )

    return _first_valid(build, num_objects, index, size, cfg.max_attempts)


@dataclass
class SyntheticSequence:
    """A whole synthetic video in memory: RGB frames, label maps, distractor masks and its metadata."""

    name: str
    frames: list[np.ndarray]
    labels: list[np.ndarray]
    distractor_masks: list[np.ndarray]
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def object_ids(self) -> list[int]:
        return [o["id"] for o in self.meta["objects"]]


def generate_sequence(
    num_frames: int = 16,
    size: Any = (128, 160),
    seed: int = 0,
    index: int = 0,
    name: str | None = None,
    config: SyntheticConfig | None = None,
    split: str = "train",
    **config_overrides: Any,
) -> SyntheticSequence:
    """Render one synthetic video in memory (identical to sequence ``index`` of ``generate_dataset(seed=seed)``;
    for ``style="photo"`` pass the ``split`` that sequence is listed in)."""
    video = make_video(num_frames, size, seed, index, name, config, split, **config_overrides)
    frames = list(video)
    return SyntheticSequence(
        name=video.name,
        frames=[f.image for f in frames],
        labels=[f.labels for f in frames],  # type: ignore[misc]
        distractor_masks=[f.distractor_mask for f in frames],
        meta=build_meta(video, frames),
    )


def _splits(names: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """The last ``val_fraction`` of the sequences go to val; one sequence serves both splits."""
    if not 0.0 <= val_fraction <= 1.0:
        raise DataError(f"val_fraction must be in [0, 1], got {val_fraction}")
    n = len(names)
    if val_fraction == 0:
        return names, []
    if n == 1:
        return names, names
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return names[: n - n_val], names[n - n_val :]


_INNER_LIST = re.compile(r"\[\s+([^\[\]{}\"]*?)\s+\]")


def _dumps(data: dict[str, Any]) -> str:
    """Indented JSON with flat lists of numbers on one line each (readable, and small for long videos)."""
    return _INNER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(data, indent=1))


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def generate_dataset(
    out_dir: str | Path,
    num_sequences: int = 8,
    num_frames: int = 16,
    size: Any = (128, 160),
    seed: int = 0,
    val_fraction: float = 0.25,
    *,
    config: SyntheticConfig | None = None,
    progress: bool = True,
    **config_overrides: Any,
) -> Path:
    """Write ``num_sequences`` synthetic videos in the DAVIS 2017 layout under ``out_dir``; returns it.

    ``JPEGImages/480p/<seq>/00000.jpg``, ``Annotations/480p/<seq>/00000.png`` (indexed, DAVIS palette),
    ``ImageSets/2017/{train,val}.txt``, ``meta/<seq>.json`` and ``meta/dataset.json`` (written last: its
    presence marks a complete folder). Files are written atomically, so re-running over a folder is safe.
    A folder that already holds videos of the other ``style`` is refused (:class:`DataError`), so toy and
    photo videos never mix in one folder; photo validation videos use only validation photos.
    """
    cfg = _config(config, config_overrides)
    size = _parse_size(size)
    _check_counts(num_frames, seed)
    if (
        isinstance(num_sequences, bool)
        or not isinstance(num_sequences, (int, np.integer))
        or num_sequences < 1
    ):
        raise DataError(f"num_sequences must be an integer >= 1, got {num_sequences!r}")
    root = Path(out_dir)
    _check_style(root, cfg.style)
    names = [sequence_name(i, cfg.style) for i in range(int(num_sequences))]
    train, val = _splits(names, float(val_fraction))
    val_only = set(val) - set(train)  # a lone sequence serving both splits is a training video
    log.info(
        "writing %d synthetic sequences of %d frames at %dx%d to %s", len(names), num_frames, *size, root
    )
    for index in tqdm(range(len(names)), desc="synthetic videos", unit="video", disable=not progress):
        split = "val" if names[index] in val_only else "train"
        video = make_video(num_frames, size, seed, index, names[index], cfg, split)
        image_dir = root / "JPEGImages" / "480p" / video.name
        label_dir = root / "Annotations" / "480p" / video.name
        frames = []
        for frame in video:
            write_frame(image_dir / f"{frame.index:05d}.jpg", frame.image, quality=cfg.jpeg_quality)
            write_label_map(label_dir / f"{frame.index:05d}.png", frame.labels)
            frame.image = None  # keep only the statistics: constant memory per frame
            frame.instances = frame.labels = np.empty((0, 0), np.uint8)
            frames.append(frame)
        _remove_stale(image_dir, ".jpg", num_frames)
        _remove_stale(label_dir, ".png", num_frames)
        _write_text(root / "meta" / f"{video.name}.json", _dumps(build_meta(video, frames)))
    _write_text(root / "ImageSets" / "2017" / "train.txt", "".join(f"{n}\n" for n in train))
    _write_text(root / "ImageSets" / "2017" / "val.txt", "".join(f"{n}\n" for n in val))
    summary = {
        "generator": "ovsnet.data.synthetic",
        "style": cfg.style,
        "format_version": FORMAT_VERSION,
        "num_sequences": len(names),
        "num_frames": int(num_frames),
        "size": list(size),
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "train": train,
        "val": val,
        "config": _jsonable(asdict(cfg)),
    }
    if cfg.style == "photo":
        from ovsnet.data.photo_videos import PHOTO_SPLITS

        summary["photo_splits"] = {k: list(v) for k, v in PHOTO_SPLITS.items()}
    _write_text(root / "meta" / "dataset.json", _dumps(summary))
    return root


def dataset_style(root: str | Path) -> str | None:
    """The ``style`` of the synthetic videos already in ``root`` (``None``: no synthetic videos there).

    Read from ``meta/dataset.json``, else from any ``meta/<seq>.json`` (an interrupted run); folders written
    before the style existed hold toy videos.
    """
    meta = Path(root) / "meta"
    candidates = [meta / "dataset.json", *sorted(meta.glob("*.json"))] if meta.is_dir() else []
    for path in candidates:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("generator") == "ovsnet.data.synthetic":
            return str(data.get("style") or "toy")
    return None


def _check_style(root: Path, style: str) -> None:
    found = dataset_style(root)
    if found is not None and found != style:
        raise DataError(
            f"{root} already holds {found!r} synthetic videos; refusing to write {style!r} videos there "
            f"(use another folder, e.g. data.root=.../synthetic_{style}, or delete it)"
        )


def _remove_stale(folder: Path, suffix: str, num_frames: int) -> None:
    """Drop frames a previous, longer run left behind, so the folder matches this run's settings."""
    for path in folder.glob(f"*{suffix}"):
        if path.stem.isdigit() and int(path.stem) >= num_frames:
            path.unlink()


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------


def _size_arg(text: str) -> tuple[int, int]:
    try:
        return _parse_size(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (expected HxW, e.g. 480x854)") from None


def _override_arg(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ovsnet.data.synthetic --out DIR --sequences N --frames T --size HxW --seed S``."""
    parser = argparse.ArgumentParser(
        prog="ovsnet-synthetic",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (DAVIS 2017 layout)")
    parser.add_argument("--sequences", type=int, default=8, help="number of videos")
    parser.add_argument("--frames", type=int, default=16, help="frames per video")
    parser.add_argument("--size", type=_size_arg, default=(128, 160), help="frame size HxW, e.g. 480x854")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.25, help="fraction of videos in val.txt")
    parser.add_argument(
        "--style",
        choices=STYLES,
        default=None,
        help="toy: procedural shapes (default); photo: real photographs and articulated shapes",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        type=_override_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="SyntheticConfig override, e.g. --set distractor_prob=0.5",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.sequences < 1 or args.frames < 1 or args.seed < 0:
        parser.error("--sequences and --frames must be >= 1 and --seed >= 0")
    if not 0.0 <= args.val_fraction <= 1.0:
        parser.error(f"--val-fraction must be in [0, 1], got {args.val_fraction}")
    overrides = dict(args.overrides)
    if args.style is not None:
        overrides["style"] = args.style
    try:
        root = generate_dataset(
            args.out,
            args.sequences,
            args.frames,
            args.size,
            args.seed,
            args.val_fraction,
            progress=not args.no_progress,
            **overrides,
        )
    except DataError as exc:
        parser.error(str(exc))
    style = overrides.get("style", "toy")
    print(
        f"wrote {args.sequences} {style} synthetic videos ({args.frames} frames, "
        f"{args.size[0]}x{args.size[1]}) to {root}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
