"""The dreamer: new training frames from one annotated frame (Khoreva et al., "Lucid Data Dreaming for Video
Object Segmentation").

The objects are cut out, the hole is inpainted (once per source frame, cached), the background is augmented,
the objects are deformed (thin-plate spline), scaled and re-pasted in a random depth order (so they occlude
each other), and the whole frame gets a global rotation, flip and illumination change.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence

import cv2
import numpy as np

from ovsnet.data.io import VOID_LABEL, DataError
from ovsnet.data.lucid.compositing import illumination
from ovsnet.data.lucid.config import LucidConfig
from ovsnet.data.lucid.geometry import affine, disk, inscribed_zoom, random_tps, similarity
from ovsnet.data.lucid.scene import Layer, Scene, Source, composite, output_frame

log = logging.getLogger(__name__)


class LucidDreamer:
    """Synthesises training frames from one annotated frame: ``sample(image, labels, rng)`` returns
    ``(image, labels)``. All randomness comes from ``rng``, so the same seed gives the same sample.

    The inpainted background of a source frame is cached (LRU of ``config.cache_size`` frames, keyed by the
    frame's content): every later sample of that frame reuses it. ``cache_size=0`` inpaints every time.
    """

    def __init__(self, config: LucidConfig | None = None) -> None:
        self.config = config or LucidConfig()
        self._cache: OrderedDict[bytes, Source] = OrderedDict()

    def sample(
        self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One new frame (uint8 HxWx3) and its label map (uint8 HxW) dreamed from ``image``/``labels``."""
        cfg = self.config
        image, labels = self._check(image, labels)
        source = self._source(image, labels)
        need = self._needed_pixels(source)
        for attempt in range(cfg.max_tries):
            scene = self._draw_scene(image, labels, source, rng)
            comp, lab = composite(scene, cfg.blend, cfg.blend_width, cfg.erode_px)
            out, out_lab = output_frame(scene, comp, lab)
            if self._alive(out_lab, need):
                return out, out_lab
            log.debug("lucid sample %d lost every object; drawing again", attempt)
        log.warning("lucid: every object vanished in %d tries; returning the input frame", cfg.max_tries)
        return image.copy(), labels.copy()

    def inpaint_background(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The frame with every object (and void) removed and inpainted; cached per source frame."""
        image, labels = self._check(image, labels)
        return self._source(image, labels).background.copy()

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

    def _source(self, image: np.ndarray, labels: np.ndarray) -> Source:
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
        source = Source(
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
            mask = cv2.dilate(mask, disk(cfg.inpaint_radius))
        flags = cv2.INPAINT_TELEA if cfg.inpaint_method == "telea" else cv2.INPAINT_NS
        return cv2.inpaint(image, mask, cfg.inpaint_cv_radius, flags)

    def _needed_pixels(self, source: Source) -> int:
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
        self, image: np.ndarray, labels: np.ndarray, source: Source, rng: np.random.Generator
    ) -> Scene:
        cfg = self.config
        height, width = labels.shape
        background = self._augment_background(source.background, rng)
        layers: list[Layer] = []
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
            matrix = affine(
                cv2.getRotationMatrix2D(
                    ((width - 1) / 2.0, (height - 1) / 2.0), angle, inscribed_zoom(width, height, angle)
                )
            )
        if rng.random() < cfg.flip_p:
            matrix = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ matrix
        illumination = self._drawillumination(rng) if rng.random() < cfg.illumination_p else None
        return Scene(background, layers, order, matrix, illumination)

    def _drawillumination(self, rng: np.random.Generator) -> np.ndarray:
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
            m = similarity(
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
            out = illumination(np.ascontiguousarray(out), self._drawillumination(rng))
        return np.ascontiguousarray(out)

    def _make_layer(self, image: np.ndarray, labels: np.ndarray, source: Source, ids: Sequence[int]) -> Layer:
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
            near = cv2.dilate((layer_labels != 0).view(np.uint8), disk(max(1, self.config.inpaint_radius)))
            layer_labels[(crop == VOID_LABEL) & (near > 0)] = VOID_LABEL
            bx, by, bw, bh = cv2.boundingRect((layer_labels != 0).view(np.uint8))
            x0, y0, x1, y1 = cx0 + bx, cy0 + by, cx0 + bx + bw, cy0 + by + bh
        return Layer(
            image=image[cy0:cy1, cx0:cx1],
            labels=layer_labels,
            origin=(cx0, cy0),
            box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
            offset=(float(x0), float(y0)),
        )

    def _transform_layer(self, layer: Layer, rng: np.random.Generator, width: int, height: int) -> None:
        """Deform (TPS), scale uniformly and place the layer somewhere inside the image."""
        cfg = self.config
        if rng.random() < cfg.deform_p:
            layer.tps, layer.margin = random_tps(
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
