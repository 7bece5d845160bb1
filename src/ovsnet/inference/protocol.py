"""What :class:`~ovsnet.inference.segmenter.VideoSegmenter` needs from a network, and nothing more.

The segmenter is written against these protocols, not against :class:`~ovsnet.models.ovsnet.OVSNet`, so any
backend (the PyTorch network, an ONNX Runtime session, a scripted test model) can stand behind it.

Conventions: images are float (3, H, W) tensors in [0, 1]; boxes are xyxy in pixels of the frame they refer
to; masks are probabilities in [0, 1]. ``features`` is opaque to the segmenter: what ``detect`` returns for a
frame is handed back unchanged to ``embed`` and the refine methods, so a backend keeps its own
representation (FPN tensors, ORT values) and the frame size it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["FrameDetections", "SegmenterModel"]


@runtime_checkable
class FrameDetections(Protocol):
    """One frame's candidates: N boxes with scores, box-relative masks and Re-ID embeddings."""

    boxes: Tensor  # (N, 4) xyxy in frame pixels
    scores: Tensor  # (N,)
    mask_probs: Tensor  # (N, M, M) over each box (Mask R-CNN's 28x28), not pasted
    embeddings: Tensor | None  # (N, D); None when the model has no Re-ID head
    features: Any  # handed back to embed / refine_* for this frame


@runtime_checkable
class SegmenterModel(Protocol):
    """The network's interface to the segmenter (one detector pass per frame, refinement of chosen objects).

    Optional extras the segmenter uses when present: ``eval()`` / ``to(device)`` (torch modules). Settings
    calibrated for a model travel beside it (:func:`ovsnet.inference.settings.checkpoint_settings`), not on it.
    """

    def detect(self, images: list[Tensor]) -> Sequence[FrameDetections]:
        """Candidates and features per image."""
        ...

    def embed(self, features: Any, boxes: Tensor) -> Tensor | None:
        """(K, D) Re-ID embeddings of arbitrary boxes (the first frame's objects); None without Re-ID."""
        ...

    def paste_masks(self, boxes: Tensor, mask_probs: Tensor, image_size: tuple[int, int]) -> Tensor:
        """(N, H, W) image of ``image_size`` with each (M, M) box-relative mask pasted into its box."""
        ...

    def refine_box_masks(self, features: Any, boxes: Tensor, mask_probs: Tensor) -> Tensor:
        """(K, H, W) frame-size masks refined from the detector's box-relative (K, M, M) masks."""
        ...

    def refine_image_masks(self, features: Any, boxes: Tensor, image_probs: Tensor) -> Tensor:
        """(K, H, W) masks refined from frame-size (K, H, W) masks (flow-warped ones), ``boxes`` their boxes."""
        ...
