"""Drifted masks for training MGA as a corrector of propagated masks.

At inference MGA refines two kinds of guidance: the detector's own mask of a box (the paper), and the
previous mask warped by optical flow (the flow path). A warped mask is the right object with the wrong
outline: shifted by flow error, grown or shrunk, its thin parts lost. Training MGA only on the detector's
masks never shows it that error, so it cannot remove it; a fraction of its samples therefore take a ground-truth
mask distorted like a warped one, and MGA learns to pull it back onto the object.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import masks_to_boxes

__all__ = ["drift_masks"]


def _morph(masks: Tensor, radius: Tensor) -> Tensor:
    """Per-mask dilation (radius > 0) or erosion (radius < 0) by a square of ``|radius|`` pixels."""
    out = masks.clone()
    for r in radius.unique().tolist():
        if r == 0:
            continue
        idx = (radius == r).nonzero().flatten()
        k = 2 * abs(int(r)) + 1
        chosen = masks[idx]
        grown = F.max_pool2d(chosen if r > 0 else -chosen, k, stride=1, padding=abs(int(r)))
        out[idx] = grown if r > 0 else -grown
    return out


def drift_masks(
    masks: Tensor,
    generator: torch.Generator | None = None,
    max_shift: float = 0.15,
    max_scale: float = 0.15,
    max_radius: int = 2,
) -> Tensor:
    """(K,H,W) binary masks -> (K,H,W) float masks distorted like a flow-propagated mask.

    Each mask is shifted by up to ``max_shift`` of its box size, scaled about its centre by up to
    ``max_scale`` and dilated or eroded by up to ``max_radius`` pixels. Masks that vanish are returned as
    they were (an empty guide teaches nothing).
    """
    k, h, w = masks.shape
    if k == 0:
        return masks.float()
    masks = masks.float()
    dev = masks.device
    boxes = masks_to_boxes(masks > 0.5)
    size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)  # (K,2) box width, height in pixels
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator, device="cpu").to(dev) * 2 - 1

    shift = uniform(k, 2) * max_shift * size  # pixels
    scale = 1 + uniform(k) * max_scale
    # output pixel p samples input (p - c - shift) / scale + c, written in normalised coordinates
    norm = torch.tensor([w / 2, h / 2], device=dev)
    c = centre / norm - 1
    t = shift / norm
    theta = torch.zeros(k, 2, 3, device=dev)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = c - (c + t) / scale[:, None]
    grid = F.affine_grid(theta, [k, 1, h, w], align_corners=False)
    moved = F.grid_sample(masks[:, None], grid, mode="bilinear", align_corners=False)
    radius = torch.randint(-max_radius, max_radius + 1, (k,), generator=generator).to(dev)
    drifted = (_morph(moved, radius)[:, 0] > 0.5).float()
    empty = drifted.flatten(1).sum(1) == 0
    return torch.where(empty[:, None, None], masks, drifted)
