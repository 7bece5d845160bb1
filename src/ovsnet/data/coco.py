"""COCO instance segmentation as detection samples for OVS-Net pre-training (pycocotools).

Polygons and RLE (compressed or not) are decoded by pycocotools; crowd regions are skipped; degenerate boxes
and empty masks are dropped. Categories map to contiguous labels 1..K, or all to 1 when class-agnostic.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from ovsnet.data.io import DataError, read_frame
from ovsnet.data.transforms import SampleTransform, build_targets, image_to_tensor

__all__ = ["COCOInstances"]

log = logging.getLogger(__name__)


def _load_coco(ann_file: Path) -> COCO:
    if not ann_file.is_file():
        raise DataError(f"COCO annotation file not found: {ann_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            return COCO(str(ann_file))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"invalid COCO annotation file {ann_file}: {exc}") from exc


class COCOInstances(Dataset):
    """COCO-format instance dataset returning ``(image float CxHxW, target dict)`` or ``None`` when skipped."""

    def __init__(
        self,
        image_dir: str | os.PathLike,
        ann_file: str | os.PathLike,
        class_agnostic: bool = False,
        transform: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
        min_area: int = 1,
        skip_empty_images: bool = False,
        on_error: str = "skip",
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        self.coco = _load_coco(self.ann_file)
        self.class_agnostic = class_agnostic
        self.transform = transform or SampleTransform()
        self.min_area = min_area
        self.on_error = on_error
        self.skipped = 0
        cat_ids = sorted(self.coco.getCatIds())
        self.cat_to_label = {c: (1 if class_agnostic else i + 1) for i, c in enumerate(cat_ids)}
        self.num_classes = 2 if class_agnostic else len(cat_ids) + 1
        ids = sorted(self.coco.getImgIds())
        if skip_empty_images:
            ids = [i for i in ids if self._annotations(i)]
        self.image_ids = ids

    def __len__(self) -> int:
        return len(self.image_ids)

    def _annotations(self, image_id: int) -> list[dict]:
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        return [a for a in anns if not a.get("iscrowd", 0) and self._box_ok(a)]

    @staticmethod
    def _box_ok(ann: dict) -> bool:
        bbox = ann.get("bbox")
        return bbox is not None and len(bbox) == 4 and bbox[2] >= 1 and bbox[3] >= 1

    def _masks(self, anns: list[dict], info: dict) -> np.ndarray:
        h, w = int(info["height"]), int(info["width"])
        if not anns:
            return np.zeros((0, h, w), dtype=np.uint8)
        try:
            return np.stack([self.coco.annToMask(a).astype(np.uint8) for a in anns])
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise DataError(f"{self.ann_file}: bad segmentation for image {info.get('id')}: {exc}") from exc

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """Raw ``uint8`` image, ``(N,H,W)`` masks and the kept annotations of item ``index``."""
        image_id = self.image_ids[index]
        info = self.coco.loadImgs([image_id])[0]
        image = read_frame(self.image_dir / info["file_name"])
        if image.shape[:2] != (int(info["height"]), int(info["width"])):
            raise DataError(
                f"{self.image_dir / info['file_name']}: size {image.shape[:2]} differs from "
                f"{self.ann_file} ({info['height']}, {info['width']})"
            )
        anns = self._annotations(image_id)
        return image, self._masks(anns, info), anns

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | None:
        try:
            image, masks, anns = self.load(index)
        except DataError as exc:
            if self.on_error == "raise":
                raise
            self.skipped += 1
            log.warning("skipping COCO image %s: %s", self.image_ids[index], exc)
            return None
        image, masks = self.transform(image, masks)
        labels = [self.cat_to_label[a["category_id"]] for a in anns]
        target = build_targets(masks, labels, [int(a["id"]) for a in anns], min_area=self.min_area)
        return image_to_tensor(image), target
