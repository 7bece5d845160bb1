"""COCO instances from a generated COCO json: polygons, RLE (compressed and not), crowd, degenerate boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ovsnet.data.coco import COCOInstances
from ovsnet.data.io import DataError
from ovsnet.lightning.datamodules import COCODataModule
from tests.coco_fixtures import H, W, make_coco


def test_polygon_rle_crowd_degenerate(tmp_path: Path) -> None:
    images, ann_file = make_coco(tmp_path)
    ds = COCOInstances(images, ann_file)
    assert len(ds) == 4 and ds.num_classes == 3
    image, target = ds[0]
    assert image.shape == (3, H, W) and image.dtype == torch.float32
    assert target["labels"].tolist() == [1, 2]  # crowd (id 3) and the 0.5-px box (id 4) dropped
    assert target["reid_ids"].tolist() == [1, 2]
    assert target["masks"].shape == (2, H, W) and target["masks"].dtype == torch.uint8
    assert int(target["masks"][1].sum()) == 20 * 30
    torch.testing.assert_close(target["boxes"][1], torch.tensor([40.0, 30.0, 70.0, 50.0]))
    _, target_b = ds[1]
    assert int(target_b["masks"][0].sum()) == 10 * 20  # uncompressed RLE
    _, empty = ds[2]
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, H, W)


def test_class_agnostic_labels(tmp_path: Path) -> None:
    images, ann_file = make_coco(tmp_path)
    ds = COCOInstances(images, ann_file, class_agnostic=True)
    assert ds.num_classes == 2 and ds[0][1]["labels"].tolist() == [1, 1]


def test_missing_image_skipped_or_raised(tmp_path: Path) -> None:
    images, ann_file = make_coco(tmp_path)
    ds = COCOInstances(images, ann_file)
    assert ds[3] is None and ds.skipped == 1
    strict = COCOInstances(images, ann_file, on_error="raise")
    with pytest.raises(DataError, match="missing.jpg"):
        strict[3]


def test_missing_or_bad_annotation_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothere.json"):
        COCOInstances(tmp_path, tmp_path / "nothere.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1}], "annotations": [{"id": 1}]}))
    with pytest.raises(DataError, match="bad.json"):
        COCOInstances(tmp_path, bad)


def test_datamodule_multiscale(tmp_path: Path) -> None:
    images, ann_file = make_coco(tmp_path)
    dm = COCODataModule(
        str(images),
        str(ann_file),
        val_ann_file=str(ann_file),
        min_sizes=(30, 40),
        max_size=64,
        batch_size=4,
        num_workers=0,
        persistent_workers=False,
    )
    dm.setup("fit")
    shorter = set()
    for _ in range(4):
        imgs, targets, skipped = next(iter(dm.train_dataloader()))
        assert skipped == 1 and len(imgs) == 3
        for img, tgt in zip(imgs, targets, strict=True):
            shorter.add(min(img.shape[1:]))
            assert max(img.shape[1:]) <= 64 and tgt["masks"].shape[1:] == img.shape[1:]
    assert shorter <= {30, 40} and len(shorter) == 2
    val_imgs, _, _ = next(iter(dm.val_dataloader()))
    assert {min(i.shape[1:]) for i in val_imgs} == {30}
