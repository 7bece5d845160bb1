"""Rendering a planned video, whatever its style: shapes back to front, occlusion statistics, its description.

A style subclasses :class:`SyntheticVideo` with how its background, its shapes and its finish look; the
depth order, the label / instance maps and the per-object statistics that ``meta`` records are the same for
every style, so they live here once.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ovsnet.data.io import DataError
from ovsnet.data.procedural.config import (
    DISTRACTOR_BASE,
    FORMAT_VERSION,
    GENERATOR,
    SyntheticConfig,
    config_dict,
)
from ovsnet.data.procedural.motion import Actor

log = logging.getLogger(__name__)

#: What a style's ``_draw`` returns: the frame window a shape covers, its mask there, its whole area
#: (inside the frame or not) and its in-frame pixels when nothing occludes it.
Drawn = tuple[tuple[slice, slice] | None, np.ndarray | None, float, int]


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


class SyntheticVideo(ABC):
    """A planned synthetic video; :meth:`render` draws any frame on demand (random access, O(1) memory)."""

    def __init__(
        self,
        name: str,
        size: tuple[int, int],
        num_frames: int,
        seed: int,
        index: int,
        config: SyntheticConfig,
        actors: list[Any],
        background: np.ndarray,
        camera: np.ndarray,
        illumination: np.ndarray,
        scripted: dict[str, Any],
    ) -> None:
        self.name, self.size, self.num_frames, self.seed, self.index = name, size, num_frames, seed, index
        self.config = config
        self.actors: list[Actor] = actors  # back to front
        self.background = background
        self.camera = camera  # (T, 3) pan x, pan y (pixels), zoom
        self.illumination = illumination  # (T,) global gain
        self.scripted = scripted

    # -- what a style draws --------------------------------------------------------------------------------
    @abstractmethod
    def _background_frame(self, t: int) -> np.ndarray:
        """The background of frame ``t`` (uint8 or float RGB), which the shapes are drawn over."""

    @abstractmethod
    def _draw(self, actor: Any, t: int, image: np.ndarray | None, instances: np.ndarray) -> Drawn:
        """Draw one shape over what is already drawn: its code into ``instances``, its look into ``image``."""

    @abstractmethod
    def _finish(self, image: np.ndarray, t: int) -> np.ndarray:
        """Frame-wide lighting and sensor noise; returns uint8 RGB."""

    @abstractmethod
    def _actor_info(self, actor: Any) -> dict[str, Any]:
        """What ``meta`` records of one actor's look."""

    # -- shared ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, frames={self.num_frames}, size={self.size}, "
            f"objects={self.object_ids}, distractors={len(self.actors) - len(self.object_ids)})"
        )

    @property
    def object_ids(self) -> list[int]:
        return sorted(a.code for a in self.actors if not a.is_distractor)

    def __iter__(self) -> Iterator[SyntheticFrame]:
        for t in range(self.num_frames):
            yield self.render(t)

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

    def _add_noise(self, image: np.ndarray, t: int) -> None:
        """Sensor noise in place on a float frame, from a per-frame rng so any frame renders on its own."""
        if self.config.noise_std > 0:
            rng = np.random.default_rng((self.seed, self.index, 1, t))
            image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(self.config.noise_std)

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
            "generator": GENERATOR,
            "style": self.config.style,
            "format_version": FORMAT_VERSION,
            "seed": self.seed,
            "index": self.index,
            "num_frames": self.num_frames,
            "size": list(self.size),
            "scripted": self.scripted,
            "objects": sorted(objects, key=lambda o: o["id"]),
            "distractors": distractors,
            "config": config_dict(self.config),
        }


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


V = TypeVar("V", bound=SyntheticVideo)


def first_valid(
    build: Callable[[int], V], num_objects: int, index: int, size: tuple[int, int], attempts: int
) -> V:
    """Re-plan until frame 0 shows every target well (the semi-supervised protocol needs a usable first
    mask), dropping objects if they do not fit."""
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
