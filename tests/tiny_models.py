"""Models and videos shared by the tests (imported as ``from tests.tiny_models import ...``).

- ``TINY_MODEL`` / ``TINY_TRAIN_MODEL``: the real OVSNet at a tiny size. An untrained head scores every
  proposal near 0.5, so the detection and proposal caps keep 64-96 px tests from pushing a hundred boxes per
  frame through the mask and MGA heads.
- ``FakeModel``: a scripted stand-in that implements only the segmenter's protocol (``SegmenterModel``);
  its candidates are the bright connected components of a frame.
- ``make_video``: two textured squares moving over a textured background, and their label maps.
- ``paper_config``: the paper's cascade rules, for tests that pin the path mechanics.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from ovsnet.hydra_utils import compose_config
from ovsnet.inference.settings import InferenceSettings, resolve
from ovsnet.utils import plain

TINY_MODEL: dict[str, object] = {
    "backbone": "resnet18",
    "norm": "bn",
    "weights": None,
    "min_size": 64,
    "max_size": 96,
    "mga_channels": 16,
    "reid_hidden_dim": 32,
    "box_detections_per_img": 10,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 30,
}

# the same network with small training-time proposal and RoI batches (2-step fits)
TINY_TRAIN_MODEL: dict[str, object] = {
    **TINY_MODEL,
    "rpn_pre_nms_top_n_train": 100,
    "rpn_post_nms_top_n_train": 50,
    "box_batch_size_per_image": 32,
}

VIDEO_H, VIDEO_W, SQUARE = 96, 128, 24


def paper_config(overrides: Mapping[str, Any] | None = None) -> InferenceSettings:
    """The paper's cascade (``conf/inference/paper.yaml``: no switch guard) with ``overrides`` (dotted keys):
    tests pin its path mechanics on perfect detections.

    The default guard (``cascade.switch_iou`` 0.8 at quarter resolution) keeps flow on ``make_video``'s
    24-pixel squares, whose warped masks overlap the detections by 0.68-0.84; tests/test_cascade.py covers
    the guard.
    """
    return resolve(_paper_preset(), overrides=overrides)


@functools.cache
def _paper_preset() -> dict[str, Any]:
    return plain(compose_config("evaluate.yaml", ["inference=paper"]).inference)


def make_video(
    num_frames: int = 5,
    seed: int = 0,
    hidden: dict[int, set[int]] | None = None,
    jump: dict[int, dict[int, tuple[int, int]]] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two textured squares (1 red, 2 green) moving over a static textured background, 96x128.

    ``hidden[t]`` lists objects not drawn at frame t; ``jump[t][obj]`` overrides an object's (y, x).
    """
    h, w, side = VIDEO_H, VIDEO_W, SQUARE
    rng = np.random.default_rng(seed)
    background = cv2.resize(rng.integers(0, 70, (h // 4, w // 4, 3), dtype=np.uint8), (w, h))
    textures = {}
    for obj, channel in ((1, 0), (2, 1)):
        tex = rng.integers(0, 40, (side, side, 3), dtype=np.uint8)
        tex[..., channel] = rng.integers(170, 255, (side, side), dtype=np.uint8)
        textures[obj] = tex
    frames, labels = [], []
    for t in range(num_frames):
        frame, label = background.copy(), np.zeros((h, w), np.uint8)
        for obj, (y, x) in {1: (10 + 3 * t, 10 + 4 * t), 2: (55, 90 - 3 * t)}.items():
            y, x = (jump or {}).get(t, {}).get(obj, (y, x))
            if obj in (hidden or {}).get(t, set()):
                continue
            frame[y : y + side, x : x + side] = textures[obj]
            label[y : y + side, x : x + side] = obj
        frames.append(frame)
        labels.append(label)
    return frames, labels


@dataclass
class FakeDetections:
    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    mask_probs: torch.Tensor
    embeddings: torch.Tensor | None
    features: torch.Tensor  # the frame itself: what embed and refine need


class FakeModel:
    """The segmenter's protocol and nothing else (no ``nn.Module``, no ``eval``/``to``).

    Candidates are the bright connected components of the frame, embeddings the (scaled) mean colour in the
    box, refinement is pasting. ``blind_calls`` are detect calls (1-based) that return nothing; the call and
    size lists record what the segmenter asked for.
    """

    def __init__(self, blind_calls: set[int] | None = None) -> None:
        self.blind_calls = blind_calls or set()
        self.detect_calls = 0
        self.refine_sizes: list[int] = []
        self.refine_image_sizes: list[int] = []
        self.pasted: list[int] = []

    def detect(self, images: list[torch.Tensor]) -> list[FakeDetections]:
        self.detect_calls += 1
        return [self._detect_one(img, self.detect_calls in self.blind_calls) for img in images]

    def _detect_one(self, img: torch.Tensor, blind: bool) -> FakeDetections:
        fg = (img.max(0).values > 0.6).cpu().numpy().astype(np.uint8)
        count, comp, stats, _ = cv2.connectedComponentsWithStats(fg)
        boxes, masks = [], []
        for i in range(1, 0 if blind else count):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area >= 16:
                boxes.append([x, y, x + w, y + h])
                crop = (comp[y : y + h, x : x + w] == i).astype(np.float32)
                masks.append(cv2.resize(crop, (28, 28), interpolation=cv2.INTER_LINEAR))
        dev = img.device
        box_t = torch.tensor(boxes, dtype=torch.float32, device=dev).reshape(-1, 4)
        mask_t = torch.from_numpy(np.stack(masks)).to(dev) if masks else torch.zeros(0, 28, 28, device=dev)
        n = len(box_t)
        return FakeDetections(
            box_t,
            torch.full((n,), 0.9, device=dev),
            torch.ones(n, dtype=torch.int64),
            mask_t,
            self.embed(img, box_t),
            img,
        )

    def embed(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(boxes), 128, device=features.device)
        for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
            out[i, :3] = features[:, y0:y1, x0:x1].reshape(3, -1).float().mean(1) * 10.0
        return out

    def paste_masks(
        self, boxes: torch.Tensor, mask_probs: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        self.pasted.append(len(boxes))
        size = (int(image_size[0]), int(image_size[1]))
        return paste_masks_in_image(mask_probs[:, None], boxes, size, padding=1)[:, 0]

    def refine_box_masks(
        self, features: torch.Tensor, boxes: torch.Tensor, mask_probs: torch.Tensor
    ) -> torch.Tensor:
        self.refine_sizes.append(len(boxes))
        return self.paste_masks(boxes, mask_probs, tuple(features.shape[-2:]))

    def refine_image_masks(
        self, features: torch.Tensor, boxes: torch.Tensor, image_probs: torch.Tensor
    ) -> torch.Tensor:
        self.refine_image_sizes.append(len(boxes))
        return image_probs


# the loss dict of OVSNet's training forward: torchvision's five Mask R-CNN losses plus Re-ID and MGA
LOSS_KEYS = (
    "loss_classifier",
    "loss_box_reg",
    "loss_mask",
    "loss_objectness",
    "loss_rpn_box_reg",
    "loss_reid",
    "loss_refine",
)
