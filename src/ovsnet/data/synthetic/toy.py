"""The toy style: star / blob outlines with saturated patterns and a darker rim, on a cloudy background that
pans and zooms. Cheap to render at any size, and every hard case of the motion planner shows plainly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ovsnet.data.procedural.config import SyntheticConfig, sequence_name
from ovsnet.data.procedural.motion import (
    Actor,
    Planner,
    camera_track,
    cast,
    illumination_track,
)
from ovsnet.data.procedural.outlines import StarOutline, concave_amp
from ovsnet.data.procedural.render import Drawn, SyntheticVideo, first_valid
from ovsnet.data.synthetic.textures import background_canvas, hsv, pattern


@dataclass(kw_only=True)
class ToyActor(Actor):
    """A star / blob outline with its pattern, colours and light direction."""

    star: StarOutline
    pattern: str
    period: float  # pattern period in units of the radius
    pattern_angle: float
    light: np.ndarray  # (2,) light direction in object coordinates
    hue: float
    colour: np.ndarray  # (3,) float RGB of the base colour
    colour2: np.ndarray  # second pattern colour
    outline: np.ndarray

    def extent(self, cfg: SyntheticConfig) -> float:
        return self.radius * math.exp(cfg.scale_amp) * math.exp(cfg.stretch_amp) * self.star.reach()

    def geometry(self, t: int, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outline points (N, 2) in frame pixels and the 2x2 object→frame linear map at frame ``t``."""
        r = self.star.radius(theta, t)
        s = self.radius * self.scale[t]
        st = self.stretch[t]
        ca, sa = math.cos(self.angle[t]), math.sin(self.angle[t])
        linear = s * np.array([[ca * st, -sa / st], [sa * st, ca / st]])
        local = np.stack([r * np.cos(theta), r * np.sin(theta)])
        return (linear @ local).T + self.centre[t], linear


def toy_actor(
    planner: Planner,
    code: int,
    area: float,
    hue: float,
    pattern_name: str,
    lobes: int | None = None,
    similar_to: int | None = None,
) -> ToyActor:
    """One toy shape covering about ``area`` of the frame (the draws keep a fixed order: reproducibility)."""
    cfg, rng = planner.cfg, planner.rng
    n = int(rng.integers(cfg.lobes[0], cfg.lobes[1] + 1)) if lobes is None else lobes
    amp = concave_amp(planner.uniform(cfg.lobe_amp), n, cfg.deform_amp)
    k = rng.integers(2, 9, size=cfg.harmonics).astype(np.float64)
    harm_amp = rng.uniform(0.3, 1.0, size=cfg.harmonics) * cfg.harmonic_amp
    radial_energy = 1.0 + amp * amp / 2.0 + float((harm_amp**2).sum()) / 2.0
    h, w = planner.size
    radius = math.sqrt(area * h * w / (math.pi * radial_energy))
    period = planner.uniform(cfg.pattern_period)
    period = max(period, cfg.min_pattern_px / (radius * math.exp(-cfg.scale_amp)))
    sat, val = planner.uniform(cfg.object_saturation), planner.uniform(cfg.object_value)
    hue2 = hue + float(rng.uniform(-15.0, 15.0))
    colour = hsv(hue, sat, val)
    colour2 = hsv(hue2, sat * float(rng.uniform(0.8, 1.0)), val * planner.uniform(cfg.dark_value))
    light_dir = float(rng.uniform(0, 2 * math.pi))
    phase = float(rng.uniform(0, 2 * math.pi))
    drift = float(rng.uniform(-1, 1)) * cfg.deform_speed
    amp_freq = 2 * math.pi / planner.uniform(cfg.scale_period)
    amp_phase = float(rng.uniform(0, 2 * math.pi))
    harm_phase = rng.uniform(0, 2 * math.pi, size=cfg.harmonics)
    harm_drift = rng.uniform(-1, 1, size=cfg.harmonics) * cfg.deform_speed * 1.5
    star = StarOutline(
        n, amp, phase, drift, amp_freq, amp_phase, cfg.deform_amp, k, harm_amp, harm_phase, harm_drift
    )
    return ToyActor(
        code=code,
        similar_to=similar_to,
        radius=radius,
        star=star,
        pattern=pattern_name,
        period=period,
        pattern_angle=float(rng.uniform(0, math.pi)),
        light=np.array([math.cos(light_dir), math.sin(light_dir)]),
        hue=hue % 360.0,
        colour=colour,
        colour2=colour2,
        outline=colour * 0.22,
    )


def _plan(planner: Planner, index: int, num_objects: int) -> tuple[list[ToyActor], dict[str, Any]]:
    """Targets with hues spread around the colour wheel and distinct patterns; distractors copy a target's
    hue, pattern and lobe count at a smaller size."""
    rng, cfg, (h, w) = planner.rng, planner.cfg, planner.size
    step = 360.0 / num_objects
    hue0 = float(rng.uniform(0, 360))
    patterns = [
        cfg.patterns[i % len(cfg.patterns)] for i in rng.permutation(max(len(cfg.patterns), num_objects))
    ]

    def target(code: int, area: float) -> ToyActor:
        k = code - 1
        return toy_actor(
            planner, code, area, hue0 + k * step + float(rng.uniform(-0.15, 0.15)) * step, patterns[k]
        )

    def distractor(code: int, ref: ToyActor, ratio: float) -> ToyActor:
        area = (ref.radius**2) * math.pi / (h * w) * ratio
        hue = ref.hue + float(rng.uniform(-8, 8))
        return toy_actor(planner, code, area, hue, ref.pattern, lobes=ref.star.lobes, similar_to=ref.code)

    return cast(planner, index, num_objects, target, distractor)


class ToyVideo(SyntheticVideo):
    """A planned toy-style video."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        h, w = self.size
        self._theta = np.linspace(0.0, 2.0 * math.pi, self.config.vertices, endpoint=False)
        width = self.config.outline_width
        self._outline = width if width is not None else max(1, round(min(h, w) / 160))
        self._kernel = np.ones((3, 3), np.uint8)

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
        actor: ToyActor,
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
        weight = np.clip(0.5 + 1.5 * pattern(actor.pattern, pu, pv, actor.period), 0.0, 1.0)
        shade = 1.0 + self.config.shading * (actor.light[0] * u + actor.light[1] * v).astype(np.float32)
        colour = actor.colour + weight[..., None] * (actor.colour2 - actor.colour)
        colour *= shade[..., None]
        if self._outline > 0:
            inner = cv2.erode(mask, self._kernel, iterations=self._outline)
            colour[sel & (inner == 0)] = actor.outline
        np.clip(colour, 0.0, 255.0, out=colour)
        np.copyto(roi, colour.astype(np.uint8), where=sel[..., None])

    def _draw(self, actor: Any, t: int, image: np.ndarray | None, instances: np.ndarray) -> Drawn:
        h, w = self.size
        pts, linear = actor.geometry(t, self._theta)
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

    def _finish(self, image: np.ndarray, t: int) -> np.ndarray:
        """Global illumination change and sensor noise (per-frame rng, so any frame renders on its own)."""
        gain = float(self.illumination[t])
        if gain == 1.0 and self.config.noise_std <= 0:
            return image
        out = image.astype(np.float32)
        if gain != 1.0:
            out *= gain
        self._add_noise(out, t)
        np.clip(out + 0.5, 0.0, 255.0, out=out)
        return out.astype(np.uint8)

    def _actor_info(self, actor: Any) -> dict[str, Any]:
        return {
            "pattern": actor.pattern,
            "colour": [int(round(c)) for c in actor.colour],
            "hue": round(actor.hue, 2),
            "lobes": actor.star.lobes,
            "radius_px": round(actor.radius, 2),
        }


def make_toy_video(
    num_frames: int, size: tuple[int, int], seed: int, index: int, name: str | None, cfg: SyntheticConfig
) -> ToyVideo:
    """Plan toy video ``index`` of a dataset seeded with ``seed``; arguments are validated by the caller."""
    rng = np.random.default_rng((seed, index, 0))
    h, w = size
    margin_y, margin_x = int(math.ceil(cfg.camera_pan * h)) + 2, int(math.ceil(cfg.camera_pan * w)) + 2
    background = background_canvas(rng, h + 2 * margin_y, w + 2 * margin_x, cfg)
    camera = camera_track(rng, size, num_frames, cfg)
    illumination = illumination_track(rng, cfg, num_frames)
    num_objects = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))

    def build(count: int) -> ToyVideo:
        actors, scripted = _plan(Planner(rng, size, num_frames, cfg), index, count)
        return ToyVideo(
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

    return first_valid(build, num_objects, index, size, cfg.max_attempts)
