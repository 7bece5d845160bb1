"""A tiny COCO-format dataset written into a test's folder: 3 random images, polygons, RLE (compressed and
not), a crowd region and a degenerate box (used by the COCO reader and the COCO training tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from ovsnet.data.io import write_frame

H, W = 60, 80


def _rle(mask: np.ndarray, compressed: bool) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    if compressed:
        rle["counts"] = rle["counts"].decode("ascii")
        return rle
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return {"size": [H, W], "counts": [int(c) for c in counts]}


def make_coco(root: Path) -> tuple[Path, Path]:
    images = root / "images"
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_frame(images / name, rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    rle_mask = np.zeros((H, W), np.uint8)
    rle_mask[30:50, 40:70] = 1
    uncompressed = np.zeros((H, W), np.uint8)
    uncompressed[5:15, 5:25] = 1
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 3,
            "iscrowd": 0,
            "bbox": [10, 10, 20, 10],
            "area": 200,
            "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]],
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 7,
            "iscrowd": 0,
            "bbox": [40, 30, 30, 20],
            "area": 600,
            "segmentation": _rle(rle_mask, compressed=True),
        },
        {
            "id": 3,
            "image_id": 1,
            "category_id": 3,
            "iscrowd": 1,
            "bbox": [0, 0, 80, 60],
            "area": 4800,
            "segmentation": _rle(np.ones((H, W), np.uint8), compressed=True),
        },
        {
            "id": 4,
            "image_id": 1,
            "category_id": 7,
            "iscrowd": 0,
            "bbox": [50, 5, 0.5, 10],
            "area": 1,
            "segmentation": [[50, 5, 50.5, 5, 50.5, 15, 50, 15]],
        },
        {
            "id": 5,
            "image_id": 2,
            "category_id": 7,
            "iscrowd": 0,
            "bbox": [5, 5, 20, 10],
            "area": 200,
            "segmentation": _rle(uncompressed, compressed=False),
        },
        {
            "id": 6,
            "image_id": 4,
            "category_id": 3,
            "iscrowd": 0,
            "bbox": [1, 1, 5, 5],
            "area": 25,
            "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]],
        },
    ]
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": H, "width": W},
            {"id": 2, "file_name": "b.jpg", "height": H, "width": W},
            {"id": 3, "file_name": "c.jpg", "height": H, "width": W},
            {"id": 4, "file_name": "missing.jpg", "height": H, "width": W},
        ],
        "annotations": anns,
        "categories": [{"id": 3, "name": "car"}, {"id": 7, "name": "train"}],
    }
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps(data))
    return images, ann_file
