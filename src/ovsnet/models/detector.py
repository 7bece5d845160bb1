"""torchvision Mask R-CNN builder with configurable backbone/norm and offline-friendly weight initialisation.

The detector is plain torchvision so that its state-dict keys stay compatible with published checkpoints;
OVS-Net (``ovsnet.py``) calls its parts explicitly instead of patching it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ovsnet.models.backbones import EFFICIENTNET_LITE, efficientnet_lite_fpn, input_normalization
from ovsnet.models.checkpoint import CheckpointError, read_checkpoint, strip_prefix

__all__ = ["BACKBONES", "LoadReport", "build_maskrcnn", "load_detector_checkpoint", "make_norm_layer"]

log = logging.getLogger(__name__)

BACKBONES = ("resnet50", "resnet18", "resnet34", "mobilenet_v3_large", *EFFICIENTNET_LITE)
NORMS = ("auto", "frozen_bn", "bn", "gn", "syncbn")
# Layers whose shape depends on the number of classes: re-initialised when the class count differs.
CLASS_SPECIFIC = (
    "roi_heads.box_predictor.cls_score",
    "roi_heads.box_predictor.bbox_pred",
    "roi_heads.mask_predictor.mask_fcn_logits",
)
_CKPT_PREFIXES = ("model.detector.", "detector.", "model.")
# torchvision's head widths (and so its published checkpoints' shapes)
TORCHVISION_MASK_HEAD = (256, 256, 256, 256)
TORCHVISION_BOX_HEAD = 1024


def group_norm(num_channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm whose group count divides the channel count (MobileNet has 16/24/40-channel layers)."""
    return nn.GroupNorm(math.gcd(groups, num_channels), num_channels)


def make_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Norm-layer factory: frozen BN for pretrained starts, BN/GN/SyncBN for training from scratch."""
    factories: dict[str, Callable[[int], nn.Module]] = {
        "frozen_bn": FrozenBatchNorm2d,
        "bn": nn.BatchNorm2d,
        "gn": group_norm,
        "syncbn": nn.SyncBatchNorm,
    }
    if norm not in factories:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
    return factories[norm]


def _download_error(what: str, weights: Any, exc: Exception) -> RuntimeError:
    filename = str(weights.url).rsplit("/", 1)[-1]
    cache = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return RuntimeError(
        f"could not load the {what} weights {weights} ({exc}). This machine may have no internet access: "
        f"download {weights.url} elsewhere and place it at {cache}, or pass checkpoint=<local file>."
    )


def _load_enum_state(what: str, weights: Any) -> dict[str, torch.Tensor]:
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTPError)
        raise _download_error(what, weights, exc) from exc


def _imagenet_backbone(backbone: str, norm_layer: Callable[[int], nn.Module], pretrained: bool) -> nn.Module:
    """torchvision classification network, optionally initialised from its ImageNet weight enum."""
    weights = tvm.get_model_weights(backbone).DEFAULT if pretrained else None
    net = tvm.get_model(backbone, weights=None, norm_layer=norm_layer)
    if weights is not None:
        state = _load_enum_state("ImageNet", weights)
        missing, unexpected = net.load_state_dict(state, strict=False)
        _log_keys("ImageNet backbone", missing, unexpected)
    return net


def _fpn_backbone(
    backbone: str, norm: str, pretrained: bool, trainable_layers: int, fpn_channels: int = 256
) -> nn.Module:
    norm_layer = make_norm_layer(norm)
    if backbone.startswith("resnet"):
        net = _imagenet_backbone(backbone, norm_layer, pretrained)
        fpn_norm = None if norm == "frozen_bn" else norm_layer
        body = _resnet_fpn_extractor(net, min(trainable_layers, 5), norm_layer=fpn_norm)
        return _with_fpn_width(body, fpn_channels, fpn_norm)
    if backbone == "mobilenet_v3_large":
        bn = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01) if norm == "bn" else norm_layer
        if norm == "frozen_bn":
            bn = partial(FrozenBatchNorm2d, eps=0.001)
        net = _imagenet_backbone(backbone, bn, pretrained)
        return _with_fpn_width(_mobilenet_extractor(net, True, min(trainable_layers, 6)), fpn_channels, None)
    if backbone in EFFICIENTNET_LITE:
        fpn_norm = None if norm == "frozen_bn" else norm_layer
        return efficientnet_lite_fpn(backbone, norm, pretrained, trainable_layers, fpn_channels, fpn_norm)
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")


def _with_fpn_width(body: nn.Module, channels: int, norm_layer: Callable[..., nn.Module] | None) -> nn.Module:
    """Swap torchvision's 256-channel FPN for a ``channels``-wide one (same layout and key names).

    Every later conv and RoI pool works at the FPN width: on a CPU a 128-channel FPN roughly halves a small
    model's training step (RPN head, RoIAlign backward, box/mask heads). Weights for 256 channels then no
    longer fit those layers (a shape error says so when a checkpoint is loaded).
    """
    if channels == body.out_channels:
        return body
    if channels < 1:
        raise ValueError(f"fpn_channels must be positive, got {channels}")
    in_channels = [block[0].in_channels for block in body.fpn.inner_blocks]
    body.fpn = FeaturePyramidNetwork(in_channels, channels, LastLevelMaxPool(), norm_layer=norm_layer)
    body.out_channels = channels
    return body


def _feature_names(backbone: nn.Module) -> list[str]:
    """FPN level names excluding the max-pool level (RoI heads pool from P2..P5, or the 2 MobileNet levels)."""
    with torch.no_grad():
        was_training = backbone.training
        backbone.eval()
        names = [k for k in backbone(torch.zeros(1, 3, 64, 64)).keys() if k != "pool"]
        backbone.train(was_training)
    return names


@dataclass
class LoadReport:
    """What a checkpoint load did: logged, and returned so callers/tests can check it."""

    source: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)


def _log_keys(source: str, missing: Sequence[str], unexpected: Sequence[str]) -> None:
    if missing:
        log.warning(
            "%s: %d missing keys (kept at initialisation): %s", source, len(missing), list(missing)[:20]
        )
    if unexpected:
        log.warning("%s: %d unexpected keys (ignored): %s", source, len(unexpected), list(unexpected)[:20])
    if not missing and not unexpected:
        log.info("%s: all keys matched", source)


def load_detector_checkpoint(
    model: nn.Module, state: dict[str, torch.Tensor] | str | os.PathLike, source: str | None = None
) -> LoadReport:
    """Load detector weights, re-initialising class-specific layers whose shapes differ; log the report."""
    if not isinstance(state, dict):
        source = source or str(state)
        state = strip_prefix(read_checkpoint(state), _CKPT_PREFIXES)
    source = source or "state dict"
    own = model.state_dict()
    report = LoadReport(source)
    filtered: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            if key.startswith(CLASS_SPECIFIC):
                report.reinitialised.append(key)
                continue
            raise CheckpointError(
                f"checkpoint {source}: key {key!r} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(own[key].shape)} (different backbone or config?)"
            )
        filtered[key] = value
    result = model.load_state_dict(filtered, strict=False)
    report.missing = [k for k in result.missing_keys if k not in report.reinitialised]
    report.unexpected = list(result.unexpected_keys)
    if report.reinitialised:
        log.warning("%s: class count differs, re-initialised %s", source, report.reinitialised)
    _log_keys(source, report.missing, report.unexpected)
    return report


def _roi_heads(
    channels: int, num_classes: int, mask_layers: tuple[int, ...], box_dim: int
) -> dict[str, nn.Module]:
    """Explicit box/mask heads when their widths differ from torchvision's ({} otherwise: torchvision builds them)."""
    if mask_layers == TORCHVISION_MASK_HEAD and box_dim == TORCHVISION_BOX_HEAD:
        return {}
    if not mask_layers or min(mask_layers) < 1 or box_dim < 1:
        raise ValueError(
            f"mask_head_layers must be positive widths and box_head_dim >= 1, "
            f"got {list(mask_layers)} and {box_dim}"
        )
    return {
        "box_head": TwoMLPHead(channels * 7 * 7, box_dim),
        "box_predictor": FastRCNNPredictor(box_dim, num_classes),
        "mask_head": MaskRCNNHeads(channels, mask_layers, 1),
        "mask_predictor": MaskRCNNPredictor(mask_layers[-1], mask_layers[-1], num_classes),
    }


def build_maskrcnn(
    backbone: str = "resnet50",
    num_classes: int = 2,
    norm: str = "auto",
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trainable_layers: int = 3,
    min_size: int = 800,
    max_size: int = 1333,
    anchor_sizes: Sequence[int] | None = None,
    aspect_ratios: Sequence[float] | None = None,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.6,
    box_detections_per_img: int = 100,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_test: int = 1000,
    box_batch_size_per_image: int = 512,
    rpn_batch_size_per_image: int = 256,
    mask_head_layers: Sequence[int] = TORCHVISION_MASK_HEAD,
    box_head_dim: int = TORCHVISION_BOX_HEAD,
    fpn_channels: int = 256,
) -> MaskRCNN:
    """A torchvision Mask R-CNN with an FPN backbone, initialised from weight enums or a local checkpoint.

    ``weights="coco"`` (resnet50 only) loads torchvision's COCO Mask R-CNN; ``"imagenet"`` the backbone's
    ImageNet weights (``efficientnet_lite0/1/2``: from their installed weight packages, never downloaded; these
    TF-ported weights also set the input scaling to ``(x - 127) / 128``, see ``backbones.input_normalization``).
    ``checkpoint`` (applied last) is a torchvision state dict or an ovsnet/Lightning one.
    ``norm="auto"`` freezes BN when starting from weights and trains BN from scratch: frozen BN with
    identity statistics leaves a random network unnormalised and its gradients explode.
    ``mask_head_layers`` / ``box_head_dim`` narrow the RoI heads for small CPU models: with torchvision's
    widths the 4-conv mask head on every positive RoI costs more than a ResNet-18 backbone in training.
    ``fpn_channels`` narrows the FPN (and so the RPN and every RoI head) the same way.
    Other widths than torchvision's cannot load its checkpoints' head weights (a shape error says so).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
    if weights not in (None, "coco", "imagenet"):
        raise ValueError(f"weights must be None, 'coco' or 'imagenet', got {weights!r}")
    if weights == "coco" and backbone != "resnet50":
        raise ValueError(f"COCO Mask R-CNN weights exist for resnet50 only, not {backbone!r}")
    if norm == "auto":
        norm = "frozen_bn" if weights is not None or checkpoint is not None else "bn"
    if weights is None and checkpoint is None and trainable_layers < 5:
        log.info("no pretrained weights: training all backbone layers instead of %d", trainable_layers)
        trainable_layers = 6
    body = _fpn_backbone(backbone, norm, weights == "imagenet", trainable_layers, fpn_channels)
    names = _feature_names(body)
    levels = len(names) + 1  # + the "pool" level used by the RPN
    sizes = tuple(anchor_sizes) if anchor_sizes else (32, 64, 128, 256, 512)[:levels]
    if backbone.startswith("mobilenet") and not anchor_sizes:
        anchors = AnchorGenerator((sizes,) * levels, (tuple(aspect_ratios or (0.5, 1.0, 2.0)),) * levels)
    else:
        if len(sizes) != levels:
            raise ValueError(f"anchor_sizes needs {levels} entries (one per FPN level), got {len(sizes)}")
        anchors = AnchorGenerator(
            tuple((s,) for s in sizes), (tuple(aspect_ratios or (0.5, 1.0, 2.0)),) * levels
        )
    heads = _roi_heads(body.out_channels, num_classes, tuple(mask_head_layers), box_head_dim)
    # the input scaling belongs to the backbone, also from scratch (its checkpoints must be read the same way)
    image_mean, image_std = input_normalization(backbone) or (None, None)  # None: torchvision's ImageNet ones
    model = MaskRCNN(
        body,
        num_classes=None if heads else num_classes,
        **heads,
        min_size=min_size,
        max_size=max_size,
        image_mean=image_mean,
        image_std=image_std,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
        box_score_thresh=box_score_thresh,
        box_nms_thresh=box_nms_thresh,
        box_detections_per_img=box_detections_per_img,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
        box_batch_size_per_image=box_batch_size_per_image,
        rpn_batch_size_per_image=rpn_batch_size_per_image,
    )
    if weights == "coco":
        enum = tvm.detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1
        load_detector_checkpoint(model, _load_enum_state("COCO Mask R-CNN", enum), source=str(enum))
    if checkpoint is not None:
        load_detector_checkpoint(model, checkpoint)
    return model
