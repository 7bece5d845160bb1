"""Mask-Guided Attention (paper 3.1.1): refine one object's mask from its box, a probability map and FPN features.

The box is enlarged by 20%; the attention (a box-relative Mask R-CNN probability padded with 0.5, or a
full-image probability such as a flow-warped mask) multiplies the fused multi-level FPN crop; a dilated
bottleneck stage and Advanced ASPP (DeepLabv3 ASPP + PSPNet pyramid pooling) predict fg/bg at 100x100.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.resnet import Bottleneck
from torchvision.ops import roi_align

from ovsnet.models.detector import group_norm

__all__ = [
    "MGA_PRESETS",
    "AdvancedASPP",
    "MaskGuidedAttention",
    "box_attention",
    "crop_attention",
    "crop_mask_targets",
    "enlarge_boxes",
    "paste_probs",
    "refine_loss",
]

# "fast" meets the real-time budget on CPU; "paper" is a wide ResNet-stage-like head (costly at 100x100).
MGA_PRESETS: dict[str, dict[str, int]] = {
    "fast": {"channels": 64, "stage_planes": 16, "stage_blocks": 2, "aspp_channels": 64},
    "paper": {"channels": 256, "stage_planes": 128, "stage_blocks": 3, "aspp_channels": 256},
}


def enlarge_boxes(boxes: Tensor, scale: float = 1.2) -> Tensor:
    """Scale xyxy boxes' width and height by ``scale`` about their centres (20% context by default)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * (scale / 2)
    return torch.cat([centre - half, centre + half], dim=1)


def box_attention(mask_probs: Tensor, size: int, scale: float = 1.2, pad_value: float = 0.5) -> Tensor:
    """(K,M,M) box-relative probabilities -> (K,1,size,size) in the enlarged-box frame, border = ``pad_value``.

    Sampling ``p - pad`` with zero padding and adding ``pad`` back places the map in the central 1/scale.
    """
    k = len(mask_probs)
    theta = mask_probs.new_zeros((k, 2, 3), dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    grid = F.affine_grid(theta, [k, 1, size, size], align_corners=False)
    shifted = mask_probs.float()[:, None] - pad_value
    return (
        F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + pad_value
    )


def crop_attention(full_probs: Tensor, boxes: Tensor, size: int) -> Tensor:
    """(K,H,W) full-image probabilities cropped by (K,4) boxes in the same pixels -> (K,1,size,size)."""
    rois = torch.cat(
        [torch.arange(len(boxes), device=boxes.device, dtype=torch.float32)[:, None], boxes.float()], dim=1
    )
    return roi_align(full_probs.float()[:, None], rois, size, 1.0, 2, aligned=True)


def crop_mask_targets(masks: Tensor, boxes: Tensor, gt_index: Tensor, size: int = 100) -> Tensor:
    """GT masks (N,H,W) cropped by enlarged boxes (K,4) -> (K,size,size) int64 fg/bg targets (> 0.5)."""
    rois = torch.cat([gt_index.float()[:, None], boxes.float()], dim=1)
    crops = roi_align(masks.float()[:, None], rois, size, 1.0, 2, aligned=True)
    return (crops[:, 0] > 0.5).long()


def refine_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Pixel-wise cross-entropy of the fg/bg logits; a zero that backpropagates when nothing was refined."""
    if len(logits) == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), targets)


def paste_probs(logits: Tensor, enlarged_boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Foreground probabilities of (K,2,S,S) logits pasted into (K,H,W) with the enlarged boxes."""
    h, w = int(size[0]), int(size[1])
    if len(logits) == 0:
        return logits.new_zeros((0, h, w), dtype=torch.float32)
    fg = logits.float().softmax(1)[:, 1:2]
    return paste_masks_in_image(fg, enlarged_boxes.float(), (h, w), padding=1)[:, 0]


def _conv_gn(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        group_norm(cout),
        nn.ReLU(inplace=True),
    )


class _Pooled(nn.Module):
    """Average-pool to ``bins`` x ``bins``, 1x1 conv + ReLU (no norm: 1x1 maps), upsample back."""

    def __init__(self, cin: int, cout: int, bins: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(bins)
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.conv(self.pool(x)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class AdvancedASPP(nn.Module):
    """DeepLabv3 ASPP branches (1x1, atrous 3x3, image pooling) concatenated with PSPNet pyramid pooling."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        atrous_rates: Sequence[int] = (6, 12, 18),
        pyramid_bins: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        ppm = max(out_channels // 4, 1)
        self.branches = nn.ModuleList(
            [_conv_gn(in_channels, out_channels, 1)]
            + [_conv_gn(in_channels, out_channels, 3, r) for r in atrous_rates]
            + [_Pooled(in_channels, out_channels, 1)]
            + [_Pooled(in_channels, ppm, b) for b in pyramid_bins]
        )
        total = out_channels * (len(atrous_rates) + 2) + ppm * len(pyramid_bins)
        self.project = nn.Sequential(_conv_gn(total, out_channels, 1), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


class MaskGuidedAttention(nn.Module):
    """Attention-weighted multi-level FPN crop -> dilated bottleneck stage -> Advanced ASPP -> fg/bg logits."""

    def __init__(
        self,
        in_channels: int = 256,
        num_levels: int = 4,
        crop_size: int = 32,
        out_size: int = 100,
        channels: int = 64,
        stage_planes: int = 16,
        stage_blocks: int = 2,
        dilation: int = 2,
        aspp_channels: int = 64,
        atrous_rates: Sequence[int] = (6, 12, 18),
        pyramid_bins: Sequence[int] = (1, 2, 3, 6),
        enlarge: float = 1.2,
        pad_value: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_levels, self.crop_size, self.out_size = num_levels, crop_size, out_size
        self.enlarge, self.pad_value = enlarge, pad_value
        self.fuse = _conv_gn(in_channels * num_levels, channels, 1)
        self.stage = self._stage(channels, stage_planes, stage_blocks, dilation)
        self.aspp = AdvancedASPP(
            stage_planes * Bottleneck.expansion, aspp_channels, atrous_rates, pyramid_bins
        )
        self.classifier = nn.Conv2d(aspp_channels, 2, 1)

    @staticmethod
    def _stage(cin: int, planes: int, blocks: int, dilation: int) -> nn.Sequential:
        """layer4-style stage with stride 1 and dilation (keeps 100x100), GroupNorm for tiny batches."""
        cout = planes * Bottleneck.expansion
        down = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), group_norm(cout))
        layers = [Bottleneck(cin, planes, downsample=down, dilation=dilation, norm_layer=group_norm)]
        layers += [
            Bottleneck(cout, planes, dilation=dilation, norm_layer=group_norm) for _ in range(blocks - 1)
        ]
        return nn.Sequential(*layers)

    def crop_features(self, features: Sequence[Tensor], rois: Tensor, image_shape: tuple[int, int]) -> Tensor:
        """RoIAlign every FPN level by the (enlarged) rois (K,5) given in padded-image pixels; concatenate."""
        if len(features) != self.num_levels:
            raise ValueError(f"MGA expects {self.num_levels} FPN levels, got {len(features)}")
        crops = [
            roi_align(f, rois.to(f.dtype), self.crop_size, f.shape[-1] / image_shape[1], 2, aligned=True)
            for f in features
        ]
        return torch.cat(crops, dim=1)

    def forward(
        self, features: Sequence[Tensor], rois: Tensor, image_shape: tuple[int, int], attention: Tensor
    ) -> Tensor:
        """Logits (K,2,out,out) for enlarged rois (K,5) and their attention (K,1,S',S') in the same frame."""
        if len(rois) == 0:
            return features[0].new_zeros((0, 2, self.out_size, self.out_size))
        x = self.fuse(self.crop_features(features, rois, image_shape))
        att = attention.to(x.dtype)
        if att.shape[-2:] != x.shape[-2:]:
            att = F.interpolate(att, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = F.interpolate(x * att, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)
        return self.classifier(self.aspp(self.stage(x)))
