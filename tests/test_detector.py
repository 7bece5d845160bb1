"""Mask R-CNN builder: backbones, norms, weight enums offline, checkpoint loading."""

import logging
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.ops import FrozenBatchNorm2d

from ovsnet.data.io import DataError
from ovsnet.models.detector import build_maskrcnn, load_detector_checkpoint

TINY = {"min_size": 64, "max_size": 96}
PREDICTOR_KEYS = {
    f"roi_heads.{layer}.{p}"
    for layer in ("box_predictor.cls_score", "box_predictor.bbox_pred", "mask_predictor.mask_fcn_logits")
    for p in ("weight", "bias")
}


@pytest.fixture(scope="module")
def coco_like_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A randomly initialised torchvision Mask R-CNN with 91 classes, saved like torchvision's checkpoints."""
    torch.manual_seed(1)
    state = build_maskrcnn("resnet18", num_classes=91, **TINY).state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "maskrcnn_coco.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large"])
def test_builds_and_detects(backbone: str) -> None:
    model = build_maskrcnn(backbone, **TINY, box_detections_per_img=7).eval()
    assert isinstance(model, MaskRCNN)
    with torch.no_grad():
        out = model([torch.rand(3, 64, 80)])[0]
    assert out["boxes"].shape[1] == 4 and len(out["boxes"]) <= 7
    assert out["masks"].shape[1:] == (1, 64, 80)
    assert model.roi_heads.nms_thresh == 0.6 and model.transform.min_size == (64,)


def test_norm_choices() -> None:
    gn = build_maskrcnn("resnet18", norm="gn", **TINY)
    assert any(isinstance(m, nn.GroupNorm) for m in gn.backbone.body.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gn.backbone.body.modules())
    frozen = build_maskrcnn("resnet18", norm="frozen_bn", **TINY)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in frozen.backbone.body.modules())
    bn = build_maskrcnn("resnet18", norm="bn", **TINY)
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.backbone.body.modules())


def test_auto_norm_trains_bn_from_scratch_and_freezes_it_for_checkpoints(tmp_path) -> None:
    scratch = build_maskrcnn("resnet18", **TINY)
    assert any(isinstance(m, nn.BatchNorm2d) for m in scratch.backbone.body.modules())
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in scratch.backbone.body.modules())
    path = tmp_path / "bn.pth"
    torch.save(scratch.state_dict(), path)
    resumed = build_maskrcnn("resnet18", checkpoint=path, **TINY)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in resumed.backbone.body.modules())


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="unknown backbone"):
        build_maskrcnn("vgg16")
    with pytest.raises(ValueError, match="unknown norm"):
        build_maskrcnn("resnet18", norm="ln")
    with pytest.raises(ValueError, match="resnet50 only"):
        build_maskrcnn("resnet18", weights="coco")
    with pytest.raises(ValueError, match="anchor_sizes"):
        build_maskrcnn("resnet18", anchor_sizes=(32, 64), **TINY)


def test_failed_download_tells_where_to_put_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match="checkpoint=") as info:
        build_maskrcnn("resnet18", weights="imagenet", **TINY)
    assert str(tmp_path / "checkpoints" / "resnet18-") in str(info.value)


def test_torchvision_state_dict_with_other_class_count(coco_like_file: tuple[Path, dict]) -> None:
    path, saved = coco_like_file
    model = build_maskrcnn("resnet18", num_classes=2, **TINY)
    report = load_detector_checkpoint(model, path)
    assert set(report.reinitialised) == PREDICTOR_KEYS
    assert report.missing == [] and report.unexpected == []
    own = model.state_dict()
    assert torch.equal(
        own["backbone.body.layer1.0.conv1.weight"], saved["backbone.body.layer1.0.conv1.weight"]
    )
    assert own["roi_heads.box_predictor.cls_score.weight"].shape[0] == 2
    via_builder = build_maskrcnn("resnet18", num_classes=2, checkpoint=path, **TINY)
    assert torch.equal(
        via_builder.state_dict()["rpn.head.conv.0.0.weight"], saved["rpn.head.conv.0.0.weight"]
    )


def test_lightning_prefixed_checkpoint(tmp_path: Path, coco_like_file: tuple[Path, dict]) -> None:
    _, saved = coco_like_file
    state = {f"model.detector.{k}": v for k, v in saved.items()}
    state["model.reid_head.fc1.weight"] = torch.zeros(3, 3)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "epoch": 3, "hyper_parameters": {"lr": 0.04}}, path)
    model = build_maskrcnn("resnet18", num_classes=91, **TINY)
    report = load_detector_checkpoint(model, path)
    assert report.missing == [] and report.unexpected == [] and report.reinitialised == []
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_missing_and_unexpected_keys_are_reported(
    tmp_path: Path, coco_like_file: tuple[Path, dict], caplog: pytest.LogCaptureFixture
) -> None:
    _, saved = coco_like_file
    state = dict(saved)
    del state["rpn.head.cls_logits.weight"]
    state["extra.layer.weight"] = torch.ones(2)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    model = build_maskrcnn("resnet18", num_classes=91, **TINY)
    with caplog.at_level(logging.WARNING, logger="ovsnet.models.detector"):
        report = load_detector_checkpoint(model, path)
    assert report.missing == ["rpn.head.cls_logits.weight"]
    assert report.unexpected == ["extra.layer.weight"]
    assert "rpn.head.cls_logits.weight" in caplog.text and str(path) in caplog.text


def test_checkpoint_errors_name_the_file_or_key(tmp_path: Path, coco_like_file: tuple[Path, dict]) -> None:
    model = build_maskrcnn("resnet18", num_classes=91, **TINY)
    with pytest.raises(DataError, match="nope.pth"):
        load_detector_checkpoint(model, tmp_path / "nope.pth")
    _, saved = coco_like_file
    bad = dict(saved)
    bad["backbone.body.conv1.weight"] = torch.zeros(1, 3, 7, 7)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(DataError, match="backbone.body.conv1.weight"):
        load_detector_checkpoint(model, tmp_path / "bad.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(DataError, match="list.pth"):
        load_detector_checkpoint(model, tmp_path / "list.pth")


def test_narrow_roi_heads_keep_torchvision_key_names(coco_like_file) -> None:
    """Narrow heads (CPU models) build, detect and train; their keys are torchvision's, their shapes smaller."""
    default = build_maskrcnn("resnet18", **TINY)
    narrow = build_maskrcnn("resnet18", **TINY, mask_head_layers=[64, 64], box_head_dim=256)
    assert set(narrow.state_dict()) <= set(default.state_dict())
    assert narrow.roi_heads.box_head.fc7.out_features == 256
    assert narrow.roi_heads.mask_predictor.mask_fcn_logits.in_channels == 64
    assert sum(p.numel() for p in narrow.parameters()) < 0.7 * sum(p.numel() for p in default.parameters())
    narrow.train()
    target = {
        "boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]),
        "labels": torch.tensor([1]),
        "masks": torch.zeros(1, 64, 80, dtype=torch.uint8),
    }
    target["masks"][0, 8:40, 8:40] = 1
    losses = narrow([torch.rand(3, 64, 80)], [target])
    assert torch.isfinite(sum(losses.values()))
    path, _ = coco_like_file  # torchvision-width weights cannot fill narrow heads: the error names the key
    with pytest.raises(DataError, match="box_head"):
        build_maskrcnn("resnet18", num_classes=91, checkpoint=path, **TINY, box_head_dim=256)
    with pytest.raises(ValueError, match="mask_head_layers"):
        build_maskrcnn("resnet18", **TINY, mask_head_layers=[])


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large"])
def test_narrow_fpn_sets_the_width_of_every_later_layer(backbone: str, coco_like_file) -> None:
    """``fpn_channels`` narrows the FPN, RPN head and RoI heads together; keys stay torchvision's."""
    default = build_maskrcnn(backbone, **TINY)
    narrow = build_maskrcnn(backbone, **TINY, fpn_channels=64)
    assert narrow.backbone.out_channels == 64
    assert set(narrow.state_dict()) == set(default.state_dict())
    assert narrow.rpn.head.conv[0][0].in_channels == 64
    assert narrow.roi_heads.mask_head[0][0].in_channels == 64
    features = narrow.backbone(torch.rand(1, 3, 64, 96))
    assert all(f.shape[1] == 64 for f in features.values())
    narrow.eval()
    (out,) = narrow([torch.rand(3, 64, 96)])
    assert out["masks"].shape[-2:] == (64, 96)
    if backbone == "resnet18":  # a 256-wide checkpoint cannot fill a 64-wide FPN: the error names the key
        with pytest.raises(DataError, match="fpn"):
            build_maskrcnn(backbone, num_classes=91, checkpoint=coco_like_file[0], **TINY, fpn_channels=64)
    with pytest.raises(ValueError, match="fpn_channels"):
        build_maskrcnn(backbone, **TINY, fpn_channels=0)
