"""OVS-Net: torchvision Mask R-CNN parts called explicitly, plus the Re-ID head and Mask-Guided Attention.

Training returns torchvision's five losses plus ``loss_reid`` and ``loss_refine``; inference exposes the
per-image FPN features (``FeatureContext``) so that the video segmenter can embed and refine chosen boxes
without a second backbone pass. The inference methods are the segmenter's protocol
(``ovsnet.inference.protocol.SegmenterModel``); they keep no state between calls.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import MultiScaleRoIAlign, masks_to_boxes

from ovsnet.data.io import DataError
from ovsnet.models.checkpoint import read_checkpoint, strip_prefix
from ovsnet.models.detector import build_maskrcnn
from ovsnet.models.guidance import drift_masks
from ovsnet.models.mga import (
    MGA_PRESETS,
    MaskGuidedAttention,
    box_attention,
    crop_attention,
    crop_mask_targets,
    enlarge_boxes,
    paste_probs,
    refine_loss,
)
from ovsnet.models.reid import ReIDHead, batch_hard_triplet_loss, select_reid_samples

__all__ = ["Detections", "FeatureContext", "OVSNet", "build_ovsnet", "group_losses"]

log = logging.getLogger(__name__)
DETECTOR_LOSSES = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")


@dataclass
class FeatureContext:
    """One image's FPN features (batch of 1) and the geometry needed to map original-pixel boxes onto them."""

    features: OrderedDict[str, Tensor]
    image_size: tuple[int, int]  # after the detector's resize, before padding
    original_size: tuple[int, int]
    padded_size: tuple[int, int]  # the batch tensor the features were computed from

    def to_image(self, boxes: Tensor) -> Tensor:
        """Boxes in original pixels -> pixels of the resized image the features refer to."""
        return resize_boxes(boxes.float(), self.original_size, self.image_size)


@dataclass
class Detections:
    """Detector output for one image; boxes in original pixels, masks box-relative (not pasted)."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    mask_probs: Tensor
    embeddings: Tensor | None
    features: FeatureContext

    def __len__(self) -> int:
        return len(self.boxes)


def group_losses(loss_dict: dict[str, Tensor], lambda_refine: float = 1.3) -> dict[str, Tensor]:
    """Eq. 2 terms: mask, loc (box + RPN box), cls (classifier + objectness), reid, refine and the total."""
    missing = [k for k in (*DETECTOR_LOSSES, "loss_reid", "loss_refine") if k not in loss_dict]
    if missing:
        raise KeyError(f"loss dict lacks {missing}")
    grouped = {
        "mask": loss_dict["loss_mask"],
        "loc": loss_dict["loss_box_reg"] + loss_dict["loss_rpn_box_reg"],
        "cls": loss_dict["loss_classifier"] + loss_dict["loss_objectness"],
        "reid": loss_dict["loss_reid"],
        "refine": loss_dict["loss_refine"],
    }
    grouped["total"] = (
        grouped["mask"]
        + grouped["loc"]
        + grouped["cls"]
        + grouped["reid"]
        + lambda_refine * grouped["refine"]
    )
    return grouped


def _zero_like_params(module: nn.Module, ref: Tensor) -> Tensor:
    """A zero loss connected to ``module``'s parameters (keeps DDP's used-parameter bookkeeping happy)."""
    return sum((p.sum() * 0.0 for p in module.parameters()), ref.new_zeros((), dtype=torch.float32))


class OVSNet(nn.Module):
    """Mask R-CNN + Re-ID head + MGA. Either head may be ``None`` (ablations)."""

    def __init__(
        self,
        detector: MaskRCNN,
        reid_head: ReIDHead | None = None,
        mga: MaskGuidedAttention | None = None,
        proposals_per_gt: int = 2,
        reid_min_iou: float = 0.5,
        reid_margin: float = 1.0,
        refine_per_image: int = 2,
        add_gt_to_reid: bool = True,
        drift_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        self.detector, self.reid_head, self.mga = detector, reid_head, mga
        self.proposals_per_gt, self.reid_min_iou, self.reid_margin = (
            proposals_per_gt,
            reid_min_iou,
            reid_margin,
        )
        self.refine_per_image, self.add_gt_to_reid = refine_per_image, add_gt_to_reid
        if not 0.0 <= drift_fraction <= 1.0:
            raise ValueError(f"drift_fraction must be in [0, 1], got {drift_fraction}")
        self.drift_fraction = drift_fraction
        self.reid_spread: Tensor | None = None  # set by each training forward that has Re-ID samples
        self.level_names = list(detector.roi_heads.mask_roi_pool.featmap_names)
        self.reid_pool = (
            MultiScaleRoIAlign(self.level_names, reid_head.resolution, 2) if reid_head is not None else None
        )
        if mga is not None and mga.num_levels != len(self.level_names):
            raise ValueError(
                f"MGA built for {mga.num_levels} levels, the backbone has {len(self.level_names)}"
            )

    group_losses = staticmethod(group_losses)

    # ------------------------------------------------------------------ training
    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None) -> Any:
        """Training losses (dict) given targets; ``detect`` otherwise."""
        if targets is None:
            return self.detect(images)
        self._check_targets(images, targets)
        image_list, targets = self.detector.transform(images, [dict(t) for t in targets])
        features = self.detector.backbone(image_list.tensors)
        proposals, rpn_losses = self.detector.rpn(image_list, features, targets)
        _, det_losses = self.detector.roi_heads(features, proposals, image_list.image_sizes, targets)
        losses: dict[str, Tensor] = {**det_losses, **rpn_losses}
        ref = image_list.tensors
        losses["loss_reid"] = self._reid_loss(features, proposals, targets, image_list.image_sizes, ref)
        losses["loss_refine"] = self._refine_loss(features, proposals, targets, image_list, ref)
        return losses

    def _check_targets(self, images: list[Tensor], targets: list[dict[str, Tensor]]) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        keys = ["boxes", "labels", "masks"] + (["reid_ids"] if self.reid_head is not None else [])
        for i, t in enumerate(targets):
            for key in keys:
                if key not in t:
                    raise DataError(f"training target {i} lacks key {key!r}")
            n = len(t["boxes"])
            if t["boxes"].shape != (n, 4) or len(t["labels"]) != n or len(t["masks"]) != n:
                raise DataError(
                    f"training target {i}: boxes {tuple(t['boxes'].shape)}, labels "
                    f"{tuple(t['labels'].shape)} and masks {tuple(t['masks'].shape)} disagree"
                )

    def _candidates(self, proposals: Tensor, target: dict[str, Tensor]) -> Tensor:
        return torch.cat([proposals, target["boxes"].to(proposals)]) if self.add_gt_to_reid else proposals

    def _reid_loss(
        self,
        features: OrderedDict[str, Tensor],
        proposals: list[Tensor],
        targets: list[dict[str, Tensor]],
        image_sizes: list[tuple[int, int]],
        ref: Tensor,
    ) -> Tensor:
        self.reid_spread = None
        if self.reid_head is None or self.reid_pool is None:
            return ref.new_zeros((), dtype=torch.float32)
        picked = [
            select_reid_samples(
                self._candidates(p, t), t["boxes"], t["reid_ids"], self.proposals_per_gt, self.reid_min_iou
            )
            for p, t in zip(proposals, targets, strict=True)
        ]
        ids = torch.cat([s[1] for s in picked])
        if ids.numel() == 0:
            return _zero_like_params(self.reid_head, ref)
        pooled = self.reid_pool(features, [s[0] for s in picked], image_sizes)
        embeddings = self.reid_head(pooled)
        # collapse detector: the per-dimension spread of this batch's embeddings (0 = every box looks alike)
        self.reid_spread = embeddings.detach().float().std(0, correction=0).mean()
        return batch_hard_triplet_loss(embeddings, ids, self.reid_margin)

    @torch.no_grad()
    def _mask_probs(
        self,
        features: OrderedDict[str, Tensor],
        boxes: list[Tensor],
        labels: Tensor,
        image_sizes: list[tuple[int, int]],
    ) -> Tensor:
        """Mask R-CNN 28x28 probabilities of the given class for arbitrary boxes (the MGA attention)."""
        heads = self.detector.roi_heads
        logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, boxes, image_sizes)))
        return logits[torch.arange(len(labels), device=labels.device), labels].sigmoid()

    def _refine_loss(
        self,
        features: OrderedDict[str, Tensor],
        proposals: list[Tensor],
        targets: list[dict[str, Tensor]],
        image_list: Any,
        ref: Tensor,
    ) -> Tensor:
        if self.mga is None:
            return ref.new_zeros((), dtype=torch.float32)
        feats = OrderedDict((k, v.detach()) for k, v in features.items())
        boxes, rois, labels, gts, drifted = [], [], [], [], []
        for i, (p, t) in enumerate(zip(proposals, targets, strict=True)):
            chosen, _, gt_index = select_reid_samples(
                self._candidates(p, t), t["boxes"], t["labels"], 1, self.reid_min_iou
            )
            chosen, gt_index = chosen[: self.refine_per_image].detach(), gt_index[: self.refine_per_image]
            # a drifted ground-truth mask (a stand-in for a flow-warped one) guides this share of the samples
            guide = torch.zeros((len(chosen), *t["masks"].shape[-2:]), device=chosen.device)
            use = torch.rand(len(chosen)) < self.drift_fraction
            if use.any():
                guide[use] = drift_masks(t["masks"][gt_index[use]].to(guide))
                chosen = chosen.clone()
                chosen[use] = masks_to_boxes(guide[use] > 0.5).to(chosen)
            enlarged = enlarge_boxes(chosen, self.mga.enlarge)
            boxes.append(chosen)
            rois.append(torch.cat([enlarged.new_full((len(chosen), 1), float(i)), enlarged], dim=1))
            labels.append(t["labels"][gt_index])
            gts.append(crop_mask_targets(t["masks"], enlarged, gt_index, self.mga.out_size))
            drifted.append((use, crop_attention(guide, enlarged, self.mga.crop_size)))
        if sum(len(b) for b in boxes) == 0:
            return _zero_like_params(self.mga, ref)
        probs = self._mask_probs(feats, boxes, torch.cat(labels), image_list.image_sizes)
        attention = box_attention(probs, self.mga.crop_size, self.mga.enlarge, self.mga.pad_value)
        use = torch.cat([u for u, _ in drifted]).to(attention.device)
        attention = torch.where(use[:, None, None, None], torch.cat([a for _, a in drifted]), attention)
        levels = [feats[k] for k in self.level_names]
        logits = self.mga(levels, torch.cat(rois), tuple(image_list.tensors.shape[-2:]), attention.detach())
        return refine_loss(logits, torch.cat(gts))

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def detect(self, images: list[Tensor]) -> list[Detections]:
        """Boxes, scores, labels, box-relative mask probabilities, embeddings and features per image."""
        was_training = self.training
        self.eval()
        try:
            originals = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
            image_list, _ = self.detector.transform(images)
            features = self.detector.backbone(image_list.tensors)
            proposals, _ = self.detector.rpn(image_list, features)
            results, _ = self.detector.roi_heads(features, proposals, image_list.image_sizes)
            padded = (int(image_list.tensors.shape[-2]), int(image_list.tensors.shape[-1]))
            out = []
            for i, (res, orig) in enumerate(zip(results, originals, strict=True)):
                size = (int(image_list.image_sizes[i][0]), int(image_list.image_sizes[i][1]))
                ctx = FeatureContext(
                    OrderedDict((k, v[i : i + 1]) for k, v in features.items()), size, orig, padded
                )
                emb = self._embed_image_boxes(ctx, res["boxes"])
                out.append(
                    Detections(
                        resize_boxes(res["boxes"], size, orig),
                        res["scores"],
                        res["labels"],
                        res["masks"][:, 0],
                        emb,
                        ctx,
                    )
                )
            return out
        finally:
            self.train(was_training)

    def _embed_image_boxes(self, ctx: FeatureContext, boxes: Tensor) -> Tensor | None:
        if self.reid_head is None or self.reid_pool is None:
            return None
        if len(boxes) == 0:
            return boxes.new_zeros((0, self.reid_head.embed_dim))
        return self.reid_head(
            self.reid_pool(
                ctx.features, [boxes.to(ctx.features[self.level_names[0]].dtype)], [ctx.image_size]
            )
        )

    @torch.no_grad()
    def embed(self, features: FeatureContext, boxes: Tensor) -> Tensor | None:
        """(K,embed_dim) embeddings for arbitrary boxes in original pixels (first-frame objects); None if off."""
        return self._embed_image_boxes(features, features.to_image(boxes))

    @torch.no_grad()
    def paste_masks(self, boxes: Tensor, mask_probs: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Paste (N,M,M) box-relative probabilities into (N,h,w) for an image of ``image_size``.

        ``boxes`` are in pixels of that image: to paste at another resolution than the frame's, scale them
        first (the size is an argument, never remembered from an earlier ``detect``).
        """
        h, w = int(image_size[0]), int(image_size[1])
        if len(boxes) == 0:
            return mask_probs.new_zeros((0, h, w), dtype=torch.float32)
        return paste_masks_in_image(mask_probs.float()[:, None], boxes.float(), (h, w), padding=1)[:, 0]

    def _run_mga(self, features: FeatureContext, boxes: Tensor, attention: Tensor) -> Tensor:
        assert self.mga is not None
        enlarged = enlarge_boxes(features.to_image(boxes), self.mga.enlarge)
        rois = torch.cat([enlarged.new_zeros((len(enlarged), 1)), enlarged], dim=1)
        levels = [features.features[k] for k in self.level_names]
        logits = self.mga(levels, rois, features.padded_size, attention)
        return paste_probs(logits, enlarge_boxes(boxes.float(), self.mga.enlarge), features.original_size)

    @torch.no_grad()
    def refine_box_masks(self, features: FeatureContext, boxes: Tensor, mask_probs: Tensor) -> Tensor:
        """Frame-size (K,H,W) probabilities from MGA guided by the detector's box-relative (K,28,28) masks.

        Without MGA: the masks pasted at the frame's size.
        """
        if self.mga is None or len(boxes) == 0:
            return self.paste_masks(boxes, mask_probs, features.original_size)
        attention = box_attention(mask_probs, self.mga.crop_size, self.mga.enlarge, self.mga.pad_value)
        return self._run_mga(features, boxes, attention)

    @torch.no_grad()
    def refine_image_masks(self, features: FeatureContext, boxes: Tensor, image_probs: Tensor) -> Tensor:
        """Frame-size (K,H,W) probabilities from MGA guided by frame-size masks (flow-warped ones).

        Without MGA: ``image_probs`` unchanged.
        """
        if self.mga is None or len(boxes) == 0:
            return image_probs.float()
        if tuple(image_probs.shape[-2:]) != tuple(features.original_size):
            raise ValueError(
                f"image_probs size {tuple(image_probs.shape[-2:])} differs from the image size "
                f"{features.original_size}"
            )
        enlarged = enlarge_boxes(boxes.float(), self.mga.enlarge)
        return self._run_mga(features, boxes, crop_attention(image_probs, enlarged, self.mga.crop_size))


def _load_heads(model: OVSNet, checkpoint: str | os.PathLike) -> None:
    """Load Re-ID/MGA weights from an ovsnet or Lightning checkpoint when it holds them."""
    state = strip_prefix(read_checkpoint(checkpoint))
    for name in ("reid_head", "mga"):
        module = getattr(model, name)
        sub = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(f"{name}.")}
        if module is not None and sub:
            result = module.load_state_dict(sub, strict=False)
            log.info(
                "%s: loaded %s (missing %s, unexpected %s)",
                checkpoint,
                name,
                result.missing_keys,
                result.unexpected_keys,
            )


def build_ovsnet(
    backbone: str = "resnet50",
    num_classes: int = 2,
    reid: bool = True,
    mga: bool = True,
    embed_dim: int = 128,
    reid_hidden_dim: int = 1024,
    reid_dropout: float = 0.2,
    reid_norm: str = "layer",
    mga_preset: str = "fast",
    mga_channels: int | None = None,
    mga_size: int = 100,
    proposals_per_gt: int = 2,
    reid_min_iou: float = 0.5,
    reid_margin: float = 1.0,
    refine_per_image: int = 2,
    mga_drift_fraction: float = 0.0,
    checkpoint: str | os.PathLike | None = None,
    **detector_kwargs: Any,
) -> OVSNet:
    """OVS-Net from config values (the Hydra target). ``mga_channels`` overrides the preset's widths;
    ``mga_size`` is MGA's working resolution (the paper's 100x100; small images need less: MGA's cost grows
    with its square). ``mga_drift_fraction`` of MGA's training samples are guided by a drifted ground-truth
    mask instead of the detector's (``ovsnet.models.guidance``; 0: the paper)."""
    detector = build_maskrcnn(
        backbone=backbone, num_classes=num_classes, checkpoint=checkpoint, **detector_kwargs
    )
    levels = len(detector.roi_heads.mask_roi_pool.featmap_names)
    channels = detector.backbone.out_channels
    head = ReIDHead(channels, 7, reid_hidden_dim, embed_dim, reid_dropout, reid_norm) if reid else None
    refine = None
    if mga:
        if mga_preset not in MGA_PRESETS:
            raise ValueError(f"unknown mga_preset {mga_preset!r}; choose one of {sorted(MGA_PRESETS)}")
        widths = dict(MGA_PRESETS[mga_preset])
        if mga_channels is not None:
            widths.update(
                channels=mga_channels, aspp_channels=mga_channels, stage_planes=max(mga_channels // 4, 1)
            )
        refine = MaskGuidedAttention(in_channels=channels, num_levels=levels, out_size=mga_size, **widths)
    model = OVSNet(
        detector,
        head,
        refine,
        proposals_per_gt,
        reid_min_iou,
        reid_margin,
        refine_per_image,
        drift_fraction=mga_drift_fraction,
    )
    if checkpoint is not None:
        _load_heads(model, checkpoint)
    return model
