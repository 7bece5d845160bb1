"""The segmenter without a network: optical flow and the appearance memory alone.

:class:`NoNetwork` satisfies :class:`~ovsnet.inference.protocol.SegmenterModel` and finds nothing: no
candidate, no embedding, refinement returns its input. Behind a :class:`~ovsnet.inference.segmenter.
VideoSegmenter` every object then takes the Flow path, and the appearance memory (when on) corrects its
outline. That is the row a trained model must beat (``evaluate.py network=false``, ``ovsnet-video`` without
``--ckpt``): the difference is what training bought.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor

from ovsnet.inference.settings import InferenceSettings

__all__ = ["NoDetections", "NoNetwork", "no_network_config"]


@dataclass
class NoDetections:
    """An empty :class:`~ovsnet.inference.protocol.FrameDetections`."""

    boxes: Tensor
    scores: Tensor
    mask_probs: Tensor
    embeddings: Tensor | None
    features: Any


class NoNetwork:
    """A ``SegmenterModel`` that detects nothing: the cascade then always takes the Flow path."""

    mask_size = 28

    def detect(self, images: list[Tensor]) -> list[NoDetections]:
        return [
            NoDetections(
                boxes=img.new_zeros((0, 4)),
                scores=img.new_zeros((0,)),
                mask_probs=img.new_zeros((0, self.mask_size, self.mask_size)),
                embeddings=None,
                features=None,
            )
            for img in images
        ]

    def embed(self, features: Any, boxes: Tensor) -> Tensor | None:
        return None

    def paste_masks(self, boxes: Tensor, mask_probs: Tensor, image_size: tuple[int, int]) -> Tensor:
        return mask_probs.new_zeros((len(boxes), *image_size))

    def refine_box_masks(self, features: Any, boxes: Tensor, mask_probs: Tensor) -> Tensor:
        raise RuntimeError("NoNetwork has no candidates to refine")  # never reached: it detects nothing

    def refine_image_masks(self, features: Any, boxes: Tensor, image_probs: Tensor) -> Tensor:
        return image_probs

    def eval(self) -> NoNetwork:
        return self

    def to(self, *args: Any, **kwargs: Any) -> NoNetwork:
        return self


def no_network_config(config: InferenceSettings) -> InferenceSettings:
    """``config`` with every learned part off (MGA, Re-ID): the same flow, appearance and floor settings."""
    return replace(config, mga=replace(config.mga, enabled=False), reid=replace(config.reid, enabled=False))
