"""ρ_reid for a trained model, measured on annotated videos instead of copied from the paper.

The Re-ID path takes a candidate closer than ρ_reid to enough of an object's stored embeddings, and the IoU
path checks the same rule (``cascade.iou_reid_check``). The paper's value (the default ``reid.rho``) fits the
paper's embeddings; the scale of
another model's embeddings depends on its head and its training, so a fixed number can close both paths or
open them to every look-alike. Here: embed each object's first-frame box as its bank would, then measure
its distance to the later detections of the same object (positives: box IoU with the ground truth above
``positive_iou``) and to every other detection in the same frames (negatives: below ``negative_iou``); ρ_reid
is the distance that separates the two best (Youden's J: true-positive rate minus false-positive rate).
Calibrate on training videos, never on the videos you report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou, masks_to_boxes

from ovsnet.data.sequence import VideoSequence
from ovsnet.inference.protocol import SegmenterModel

__all__ = ["ReIDCalibration", "calibrate_rho_reid", "reid_distances"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReIDCalibration:
    """The chosen threshold and the evidence behind it."""

    rho_reid: float
    positives: int
    negatives: int
    true_positive_rate: float  # of positives closer than rho_reid
    false_positive_rate: float  # of negatives closer than rho_reid

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def _image(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div_(255.0)


@torch.no_grad()
def reid_distances(
    model: SegmenterModel,
    sequences: Sequence[VideoSequence],
    frame_stride: int = 5,
    min_score: float = 0.5,
    positive_iou: float = 0.5,
    negative_iou: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (positives, negatives) from each object's first-frame embedding to the detections of every
    ``frame_stride``-th annotated frame (detections scoring below ``min_score`` are left out, as the cascade
    leaves them out)."""
    positives: list[float] = []
    negatives: list[float] = []
    for seq in sequences:
        first = seq.first_frame_mask
        ids = [i for i in np.unique(first).tolist() if i not in (0, 255)]
        if not ids:
            continue
        frames = iter(seq.frames())
        features = model.detect([_image(next(frames))])[0].features
        masks = torch.stack([torch.from_numpy(first == i) for i in ids])
        reference = model.embed(features, masks_to_boxes(masks))
        if reference is None:
            raise ValueError("reid_distances: the model has no Re-ID head (embed returned None)")
        for index, frame in enumerate(frames, start=1):
            if index % frame_stride or not seq.has_label(index):
                continue
            det = model.detect([_image(frame)])[0]
            keep = det.scores >= min_score
            if not bool(keep.any()) or det.embeddings is None:
                continue
            labels = seq.label_map(index)
            distances = torch.cdist(det.embeddings[keep].float(), reference.float())  # (N, K)
            for k, obj in enumerate(ids):
                gt = torch.from_numpy(labels == obj)
                if not bool(gt.any()):
                    continue
                overlap = box_iou(det.boxes[keep].float(), masks_to_boxes(gt[None]).float())[:, 0]
                positives += distances[overlap > positive_iou, k].tolist()
                negatives += distances[overlap < negative_iou, k].tolist()
    return np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)


def calibrate_rho_reid(positives: np.ndarray, negatives: np.ndarray) -> ReIDCalibration:
    """The distance that best separates positives from negatives (largest TPR - FPR; on a tie the larger),
    placed halfway to the next observed distance.

    Without negatives (a detector that only ever finds the objects) the 95th percentile of the positives.
    """
    positives, negatives = np.asarray(positives, float), np.asarray(negatives, float)
    if not len(positives):
        raise ValueError("calibrate_rho_reid: no positive distance (the detector never found an object)")
    if not len(negatives):
        rho = float(np.percentile(positives, 95))
        return ReIDCalibration(rho, len(positives), 0, float((positives < rho).mean()), 0.0)
    candidates = np.unique(np.concatenate([positives, negatives]))
    # a threshold just above each observed distance: "closer than rho" then includes that distance
    thresholds = np.nextafter(candidates, np.inf)
    tpr = (positives[None] < thresholds[:, None]).mean(axis=1)
    fpr = (negatives[None] < thresholds[:, None]).mean(axis=1)
    score = tpr - fpr
    best = int(np.flatnonzero(score == score.max())[-1])
    # halfway to the next observed distance: the same rates, with a margin on both sides
    rho = (candidates[best] + candidates[best + 1]) / 2 if best + 1 < len(candidates) else thresholds[best]
    result = ReIDCalibration(float(rho), len(positives), len(negatives), float(tpr[best]), float(fpr[best]))
    log.info("rho_reid calibrated: %s", result)
    return result
