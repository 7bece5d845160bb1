"""Planning a photo-style video: the background photo and camera view, textured shapes of mixed families,
and the shared motion planner for their tracks, exits, crossings and distractors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ovsnet.data.photo_videos.bodies import make_shape
from ovsnet.data.photo_videos.photos import gains, load_photo, photo_names, shrunk
from ovsnet.data.photo_videos.render import PhotoActor, PhotoVideo
from ovsnet.data.procedural.config import KINDS, PhotoConfig, SyntheticConfig
from ovsnet.data.procedural.motion import Planner, camera_track, cast, illumination_track
from ovsnet.data.procedural.render import first_valid


def _texture_map(
    rng: np.random.Generator, photo: np.ndarray, reach: float, unit: float, pcfg: PhotoConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Shrunk source and the (2, 3) map rest-local -> source pixels of a random, rotated crop of ``photo``."""
    ph, pw = photo.shape[:2]
    scale = float(rng.uniform(*pcfg.texture_zoom)) * min(ph, pw) / (2.0 * reach)  # source px per local unit
    source, factor = shrunk(photo, scale / unit)
    scale /= factor
    sh, sw = source.shape[:2]
    half = min(reach * scale, 0.5 * min(sh, sw))
    cx, cy = rng.uniform(half, sw - half), rng.uniform(half, sh - half)
    angle = float(rng.uniform(0, 2 * math.pi))
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    flip = -1.0 if rng.random() < 0.5 else 1.0
    return source, np.array([[flip * c, -s, cx], [flip * s, c, cy]])


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
    source, factor = shrunk(photo, k)
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
    planner: Planner,
    code: int,
    area: float,
    kind: str,
    photo: str,
    pcfg: PhotoConfig,
    similar_to: int | None = None,
) -> PhotoActor:
    """One textured shape of ``kind`` covering about ``area`` of the frame, textured with ``photo``."""
    rng, cfg, (h, w) = planner.rng, planner.cfg, planner.size
    shape = make_shape(kind, rng, pcfg, cfg)
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
    return PhotoActor(
        code=code,
        similar_to=similar_to,
        shape=shape,
        unit=unit,
        radius=radius,
        area_fraction=area,
        photo=photo,
        source=source,
        texture=texture,
        gains=gains(rng, photo, pcfg.colour_jitter),
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


def _plan(
    planner: Planner, index: int, num_objects: int, pool: Sequence[str], background: str, pcfg: PhotoConfig
) -> tuple[list[PhotoActor], dict[str, Any]]:
    """Targets of mixed families textured with photos other than the background; distractors copy a
    target's family and photo at a smaller size."""
    rng = planner.rng
    others = [p for p in pool if p != background] or list(pool)
    order = [others[int(i)] for i in rng.permutation(len(others))]
    kinds = _kinds(rng, num_objects, pcfg)

    def target(code: int, area: float) -> PhotoActor:
        k = code - 1
        return _photo_actor(planner, code, area, kinds[k], order[k % len(order)], pcfg)

    def distractor(code: int, ref: PhotoActor, ratio: float) -> PhotoActor:
        return _photo_actor(
            planner, code, ref.area_fraction * ratio, ref.shape.kind, ref.photo, pcfg, ref.code
        )

    return cast(planner, index, num_objects, target, distractor)


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
    camera = camera_track(rng, size, num_frames, cfg)
    source, view, offsets = _view(rng, load_photo(background), size, camera, pcfg)
    background_gains = gains(rng, background, pcfg.colour_jitter)
    illumination = illumination_track(rng, cfg, num_frames)
    t = np.arange(num_frames, dtype=np.float64)
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
        planner = Planner(rng, size, num_frames, cfg)
        actors, scripted = _plan(planner, index, count, pool, background, pcfg)
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

    return first_valid(build, num_objects, index, size, cfg.max_attempts)
