"""Re-ID head (128-d appearance embeddings from RoIAligned FPN features) and the batch-hard triplet loss."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

__all__ = ["ReIDHead", "batch_hard_triplet_loss", "select_reid_samples"]


class ReIDHead(nn.Module):
    """RoIAligned features -> fc -> norm -> ReLU -> fc -> ``embed_dim``, dropout after the last fc (3.1.2).

    ``norm="layer"`` (default) puts a LayerNorm on the hidden pre-activations. Without it, a backbone trained
    from scratch shifts its FPN features enough that every hidden ReLU goes dead within ~50 steps. Every
    embedding then equals the last bias, the triplet loss sits at its margin with zero gradient, and the
    Re-ID path matches anything. This was measured on the synthetic ablation run. The LayerNorm is per
    sample, so training and inference behave alike on any batch size. ``norm="none"`` is the bare
    two-fc head.
    """

    def __init__(
        self,
        in_channels: int = 256,
        resolution: int = 7,
        hidden_dim: int = 1024,
        embed_dim: int = 128,
        dropout: float = 0.2,
        norm: str = "layer",
    ) -> None:
        super().__init__()
        if norm not in ("layer", "none"):
            raise ValueError(f"ReIDHead norm must be 'layer' or 'none', got {norm!r}")
        self.resolution = resolution
        self.embed_dim = embed_dim
        self.fc1 = nn.Linear(in_channels * resolution * resolution, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim) if norm == "layer" else nn.Identity()
        self.fc2 = nn.Linear(hidden_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, roi_features: Tensor) -> Tensor:
        """(K, C, R, R) pooled features -> (K, embed_dim) embeddings."""
        x = torch.relu(self.norm(self.fc1(roi_features.flatten(1))))
        return self.dropout(self.fc2(x))


def batch_hard_triplet_loss(embeddings: Tensor, labels: Tensor, margin: float = 1.0) -> Tensor:
    """Eq. 1: mean over anchors of relu(max_pos d - min_neg d + margin), d the squared Euclidean distance.

    Anchors with no positive or no negative in the batch are skipped; with none left the loss is a zero
    that still backpropagates, so a training step never breaks on an unlucky batch.
    """
    if embeddings.ndim != 2 or labels.ndim != 1 or len(labels) != len(embeddings):
        raise ValueError(
            f"expected embeddings (K,D) and labels (K,), got {tuple(embeddings.shape)} and "
            f"{tuple(labels.shape)}"
        )
    emb = embeddings.float()
    dist = (emb[:, None, :] - emb[None, :, :]).pow(2).sum(-1)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask, neg_mask = same & ~eye, ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not bool(valid.any()):
        return embeddings.sum() * 0.0
    hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).amax(1)
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).amin(1)
    return torch.relu(hardest_pos[valid] - hardest_neg[valid] + margin).mean()


def select_reid_samples(
    proposals: Tensor, gt_boxes: Tensor, gt_ids: Tensor, per_gt: int = 2, min_iou: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """The ``per_gt`` proposals with the largest IoU to each GT box -> (boxes, reid ids, gt index).

    Proposals below ``min_iou`` are dropped (an untrained RPN otherwise labels background as the object).
    """
    empty = proposals.new_zeros((0, 4)), gt_ids.new_zeros((0,)), gt_ids.new_zeros((0,), dtype=torch.int64)
    if len(gt_boxes) == 0 or len(proposals) == 0 or per_gt <= 0:
        return empty
    iou = box_iou(gt_boxes.float(), proposals.float())
    top_iou, top_idx = iou.topk(min(per_gt, len(proposals)), dim=1)
    gt_index = torch.arange(len(gt_boxes), device=gt_boxes.device)[:, None].expand_as(top_idx)
    keep = top_iou > min_iou if min_iou > 0 else torch.ones_like(top_iou, dtype=torch.bool)
    gt_index = gt_index[keep]
    return proposals[top_idx[keep]], gt_ids[gt_index], gt_index
