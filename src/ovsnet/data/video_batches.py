"""Training datasets over videos and the video-aware batch sampler.

A mini-batch holds ``V`` videos × ``M/V`` frames each, so the same objects appear in several frames (the
Re-ID triplet loss needs positives) and several videos appear together (it needs negatives).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ovsnet.data.io import DataError
from ovsnet.data.sequence import VideoSequence
from ovsnet.data.transforms import SampleTransform, build_targets, image_to_tensor, label_map_to_masks

__all__ = ["FrameRef", "VideoBatchSampler", "VideoFrameDataset", "collate_detection"]

log = logging.getLogger(__name__)

REID_STRIDE = 256  # label ids are uint8, so video * 256 + object id is unique per (video, object)


@dataclass(frozen=True)
class FrameRef:
    """One training item: an annotated frame, optionally the ``lucid``-th Lucid sample made from it."""

    video: int
    frame: int
    lucid: int = -1


class VideoFrameDataset(Dataset):
    """Annotated frames of several videos as detection samples ``(image, target)``.

    ``sampler`` is optional Lucid Data Dreaming (anything with ``sample(image, labels, rng)``). Corrupt or
    missing files are skipped with a warning and counted (``on_error="skip"``) or raise (``"raise"``).
    """

    def __init__(
        self,
        sequences: Sequence[VideoSequence],
        refs: Sequence[FrameRef],
        transform: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
        lucid: Any | None = None,
        min_area: int = 16,
        on_error: str = "skip",
        seed: int = 0,
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.sequences = list(sequences)
        self.refs = list(refs)
        self.transform = transform or SampleTransform()
        self.lucid = lucid
        self.min_area = min_area
        self.on_error = on_error
        self.seed = seed
        self.epoch = 0
        self.skipped = 0
        if any(r.lucid >= 0 for r in self.refs) and lucid is None:
            raise ValueError("Lucid samples requested but no Lucid dreamer given")

    @classmethod
    def from_sequences(
        cls, sequences: Sequence[VideoSequence], frame_stride: int = 1, **kwargs: Any
    ) -> VideoFrameDataset:
        """Every ``frame_stride``-th annotated frame of every sequence."""
        refs = [
            FrameRef(v, i) for v, seq in enumerate(sequences) for i in seq.annotated_indices[::frame_stride]
        ]
        return cls(sequences, refs, **kwargs)

    def __len__(self) -> int:
        return len(self.refs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def video_of_item(self) -> list[int]:
        return [r.video for r in self.refs]

    def _load(self, ref: FrameRef, index: int) -> tuple[np.ndarray, np.ndarray]:
        seq = self.sequences[ref.video]
        image = seq.frame(ref.frame)
        labels = seq.label_map(ref.frame)
        if labels is None:
            raise DataError(f"sequence {seq.name!r}: frame {ref.frame} is not annotated")
        if labels.shape != image.shape[:2]:
            raise DataError(
                f"sequence {seq.name!r}: frame {ref.frame} image {image.shape[:2]} vs "
                f"annotation {labels.shape}"
            )
        if ref.lucid >= 0:
            rng = np.random.default_rng([self.seed, self.epoch, index, ref.lucid])
            image, labels = self.lucid.sample(image, labels, rng)
        return image, labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | None:
        ref = self.refs[index]
        try:
            image, labels = self._load(ref, index)
        except DataError as exc:
            if self.on_error == "raise":
                raise
            self.skipped += 1
            log.warning("skipping training sample %d (%s): %s", index, ref, exc)
            return None
        masks, ids = label_map_to_masks(labels)
        image, masks = self.transform(image, masks)
        reid = [ref.video * REID_STRIDE + i for i in ids]
        target = build_targets(masks, [1] * len(ids), reid, min_area=self.min_area)
        return image_to_tensor(image), target


def collate_detection(batch: Sequence[Any]) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], int]:
    """Lists of images and targets (sizes differ); skipped (``None``) samples dropped and counted."""
    kept = [b for b in batch if b is not None]
    return [b[0] for b in kept], [b[1] for b in kept], len(batch) - len(kept)


class VideoBatchSampler(Sampler[list[int]]):
    """Batches of ``videos_per_batch`` videos × ``frames_per_video`` frames, shuffled per epoch.

    Rank-aware for DDP (each rank takes every ``num_replicas``-th batch, all ranks see the same number of
    batches), so Lightning's ``use_distributed_sampler`` must be off for it.
    """

    def __init__(
        self,
        video_of_item: Sequence[int],
        videos_per_batch: int,
        frames_per_video: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if videos_per_batch < 1 or frames_per_video < 1:
            raise ValueError("videos_per_batch and frames_per_video must be >= 1")
        if not video_of_item:
            raise ValueError("VideoBatchSampler needs at least one item")
        self.items_by_video: dict[int, list[int]] = {}
        for item, video in enumerate(video_of_item):
            self.items_by_video.setdefault(int(video), []).append(item)
        self.videos_per_batch = min(videos_per_batch, len(self.items_by_video))
        self.frames_per_video = frames_per_video
        self.shuffle, self.seed = shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        total = len(video_of_item)
        self.batch_size = videos_per_batch * frames_per_video
        self.num_batches_total = max(1, math.ceil(total / self.batch_size))
        self.num_batches_total = math.ceil(self.num_batches_total / num_replicas) * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches_total // self.num_replicas

    def _frames(self, rng: np.random.Generator, video: int) -> list[int]:
        items = self.items_by_video[video]
        replace = len(items) < self.frames_per_video
        chosen = (
            rng.choice(len(items), size=self.frames_per_video, replace=replace)
            if self.shuffle
            else (np.arange(self.frames_per_video) % len(items))
        )
        return [items[int(i)] for i in chosen]

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        videos = sorted(self.items_by_video)
        batches: list[list[int]] = []
        order: list[int] = []
        while len(batches) < self.num_batches_total:
            if len(order) < self.videos_per_batch:
                fresh = list(rng.permutation(videos)) if self.shuffle else list(videos)
                order.extend(int(v) for v in fresh if v not in order[: self.videos_per_batch])
            chosen, order = order[: self.videos_per_batch], order[self.videos_per_batch :]
            batches.append([i for v in chosen for i in self._frames(rng, v)])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._all_batches()[self.rank :: self.num_replicas]
