"""Training transforms: image + instance masks augmented together, then detection targets built from masks.

Boxes are always recomputed from the (augmented) masks with :func:`torchvision.ops.masks_to_boxes`, so an
affine or crop augmentation can never leave a box that disagrees with its mask.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch
from torchvision.ops import masks_to_boxes

from ovsnet.data.sequence import object_ids_of

__all__ = [
    "AugmentConfig",
    "SampleTransform",
    "build_augment",
    "build_targets",
    "image_to_tensor",
    "label_map_to_masks",
]

log = logging.getLogger(__name__)


@dataclass
class AugmentConfig:
    """Photometric/geometric augmentation strengths (all probabilities in [0, 1])."""

    hflip: float = 0.5
    scale_limit: float = 0.15
    rotate_limit: float = 10.0
    shift_limit: float = 0.05
    affine_p: float = 0.5
    color_jitter_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02


def build_augment(config: AugmentConfig | None = None) -> A.Compose:
    """Albumentations pipeline applied jointly to the image and its instance masks (nearest for masks)."""
    cfg = config or AugmentConfig()
    return A.Compose(
        [
            A.HorizontalFlip(p=cfg.hflip),
            A.Affine(
                scale=(1.0 - cfg.scale_limit, 1.0 + cfg.scale_limit),
                translate_percent=(-cfg.shift_limit, cfg.shift_limit),
                rotate=(-cfg.rotate_limit, cfg.rotate_limit),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                p=cfg.affine_p,
            ),
            A.ColorJitter(
                brightness=cfg.brightness,
                contrast=cfg.contrast,
                saturation=cfg.saturation,
                hue=cfg.hue,
                p=cfg.color_jitter_p,
            ),
        ]
    )


def _resize(image: np.ndarray, masks: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize by ``scale`` (bilinear image, nearest masks); a no-op at scale 1."""
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image, masks
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    if len(masks):
        masks = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in masks])
    else:
        masks = np.zeros((0, size[1], size[0]), dtype=np.uint8)
    return image, masks


class SampleTransform:
    """Resize (optional) then augment (optional) an ``uint8`` image and its ``(N, H, W)`` masks.

    ``image_size`` caps the longest edge (small images for CPU runs); ``min_sizes`` draws a random shortest
    edge per sample (multi-scale training) capped by ``max_size`` on the longest edge.

    Every random draw (the scale and the albumentations pipeline) comes from one generator per call: ``rng``
    when given, else one seeded from torch's generator. PyTorch seeds that generator in each DataLoader worker
    from the loader's base seed, which ``seed_everything`` fixes, so a seeded run repeats its augmentations and
    no two workers repeat each other's (albumentations' own state would be copied into every worker unseeded).
    """

    def __init__(
        self,
        image_size: int | None = None,
        augment: bool | AugmentConfig = False,
        min_sizes: Sequence[int] | None = None,
        max_size: int | None = None,
    ) -> None:
        self.image_size = image_size
        self.min_sizes = [int(s) for s in min_sizes] if min_sizes else []
        self.max_size = max_size
        aug_cfg = augment if isinstance(augment, AugmentConfig) else AugmentConfig()
        self.pipeline = build_augment(aug_cfg) if augment else None

    def scale_for(self, height: int, width: int, rng: np.random.Generator | None = None) -> float:
        """torchvision-style: shortest edge to a random ``min_sizes`` entry unless the longest would exceed
        ``max_size``; ``image_size`` then only ever shrinks the longest edge."""
        scale = 1.0
        if self.min_sizes:
            rng = rng if rng is not None else torch_seeded_rng()
            scale = float(self.min_sizes[int(rng.integers(len(self.min_sizes)))]) / min(height, width)
            if self.max_size:
                scale = min(scale, float(self.max_size) / max(height, width))
        if self.image_size:
            scale = min(scale, float(self.image_size) / max(height, width))
        return scale

    def __call__(
        self, image: np.ndarray, masks: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if rng is None and (self.min_sizes or self.pipeline is not None):
            rng = torch_seeded_rng()
        image, masks = _resize(image, masks, self.scale_for(*image.shape[:2], rng))
        if self.pipeline is None:
            return image, masks
        self.pipeline.set_random_seed(int(rng.integers(2**32)))  # type: ignore[union-attr]
        if len(masks) == 0:
            out = self.pipeline(image=image)
            h, w = out["image"].shape[:2]
            return out["image"], np.zeros((0, h, w), dtype=np.uint8)
        out = self.pipeline(image=image, masks=list(masks))
        return out["image"], np.stack([np.asarray(m, dtype=np.uint8) for m in out["masks"]])


def torch_seeded_rng() -> np.random.Generator:
    """A numpy generator seeded from torch's global generator (one draw from it)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def label_map_to_masks(label_map: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Split an H×W label map into ``(N, H, W)`` binary masks (void 255 and background excluded)."""
    ids = object_ids_of(label_map)
    if not ids:
        return np.zeros((0, *label_map.shape), dtype=np.uint8), []
    masks = np.stack([(label_map == i).astype(np.uint8) for i in ids])
    return masks, ids


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``uint8`` H×W×3 → float C×H×W in [0, 1] (the library's internal image convention)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def build_targets(
    masks: np.ndarray,
    labels: Sequence[int],
    reid_ids: Sequence[int],
    min_area: int = 1,
    min_box_side: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Detection targets from instance masks; empty/tiny masks and degenerate boxes are dropped.

    A frame with no object left yields empty tensors of the right shapes, which the detector trains on as
    pure background.
    """
    h, w = masks.shape[-2:]
    mask_t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.uint8)).reshape(-1, h, w)
    keep = mask_t.flatten(1).sum(1) >= max(min_area, 1) if len(mask_t) else torch.zeros(0, dtype=torch.bool)
    mask_t = mask_t[keep]
    labels_t = torch.as_tensor(list(labels), dtype=torch.int64).reshape(-1)[keep]
    reid_t = torch.as_tensor(list(reid_ids), dtype=torch.int64).reshape(-1)[keep]
    if len(mask_t):
        boxes = masks_to_boxes(mask_t)
        # masks_to_boxes gives inclusive pixel indices; +1 makes a one-pixel object a 1x1 box
        boxes[:, 2:] += 1.0
        ok = ((boxes[:, 2] - boxes[:, 0]) >= min_box_side) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_side)
        boxes, mask_t, labels_t, reid_t = boxes[ok], mask_t[ok], labels_t[ok], reid_t[ok]
    else:
        boxes = torch.zeros((0, 4), dtype=torch.float32)
    return {"boxes": boxes.float(), "labels": labels_t, "masks": mask_t, "reid_ids": reid_t}
