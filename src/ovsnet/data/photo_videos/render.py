"""Rendering a photo-style video: photo backgrounds seen through a moving camera, textured and shaded shapes
with soft edges, drop shadows and motion blur, lighting drift and sensor noise."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from ovsnet.data.photo_videos.photos import PHOTOS
from ovsnet.data.photo_videos.shapes import Part, Shape, raster
from ovsnet.data.procedural.config import PhotoConfig, SyntheticConfig
from ovsnet.data.procedural.motion import Actor
from ovsnet.data.procedural.render import Drawn, SyntheticVideo


@dataclass(kw_only=True)
class PhotoActor(Actor):
    """A textured shape; the shared motion planner fills in its track (:class:`Actor`)."""

    shape: Shape
    unit: float  # pixels per local unit at scale 1
    area_fraction: float
    photo: str
    source: np.ndarray  # the photo, pre-shrunk so texture sampling never minifies much
    texture: np.ndarray  # (2, 3) rest-local coordinates -> source pixels
    gains: np.ndarray  # (3,) colour gains (tint, jitter)
    tilt: tuple[float, float, float, float]  # upright shapes: angle a0 + amp·sin(omega·t + phase)
    light: np.ndarray  # (2,) light direction in object coordinates
    reach: float  # typical reach of the shape in local units
    effects_px: float  # how far shadow and blur may reach beyond the shape, in pixels

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


def line_kernel(motion: np.ndarray) -> np.ndarray:
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


def velocity(track: np.ndarray, t: int) -> np.ndarray:
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
        streak = self.photo_config.motion_blur * velocity(self.offsets, t)
        if np.hypot(*streak) >= max(self.photo_config.min_blur_px, 1e-6):
            image = cv2.filter2D(image, -1, line_kernel(streak), borderType=cv2.BORDER_REFLECT_101)
        return image

    def _draw(self, actor: Any, t: int, image: np.ndarray | None, instances: np.ndarray) -> Drawn:
        h, w = self.size
        lin, centre = actor.linear(t), actor.centre[t]
        parts = actor.shape.parts(t)
        polys = [(p.outline @ lin.T + centre, [hole @ lin.T + centre for hole in p.holes]) for p in parts]
        pts = np.concatenate([o for o, _ in polys])
        bx0, by0 = int(math.floor(pts[:, 0].min())) - 1, int(math.floor(pts[:, 1].min())) - 1
        bx1, by1 = int(math.ceil(pts[:, 0].max())) + 2, int(math.ceil(pts[:, 1].max())) + 2
        ids = raster(polys, (bx0, by0), (by1 - by0, bx1 - bx0))
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
        actor: PhotoActor,
        t: int,
        parts: list[Part],
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
        streak = pcfg.motion_blur * velocity(actor.centre, t)
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
            kernel = line_kernel(streak)
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
        self._add_noise(out, t)
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
