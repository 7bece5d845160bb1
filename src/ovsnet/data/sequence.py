"""One video: frame paths, lazily loaded frames and the label maps of its annotated frames.

Every reader (DAVIS 2016/2017, SegTrack v2, video files, the synthetic generator) produces
:class:`VideoSequence` objects so training, inference and evaluation never care where a video came from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from ovsnet.data.io import VOID_LABEL, DataError, read_frame, read_label_map

__all__ = ["VideoSequence", "object_ids_of"]

log = logging.getLogger(__name__)


def object_ids_of(label_map: np.ndarray) -> list[int]:
    """Object ids present in a label map (background 0 and void 255 excluded), ascending."""
    ids = np.unique(label_map)
    return [int(i) for i in ids if i != 0 and i != VOID_LABEL]


@dataclass
class VideoSequence:
    """A video with optional per-frame annotations.

    ``annotation_paths`` maps a frame index to its annotation file; frames without an entry are not
    annotated (DAVIS test-dev annotates only the first frame). ``single_object`` merges every non-zero,
    non-void label into object 1 (DAVIS 2016 protocol). Subclasses with another annotation layout
    (SegTrack v2) override :meth:`_read_label_map`.
    """

    name: str
    frame_paths: Sequence[Path]
    annotation_paths: Mapping[int, Path] = field(default_factory=dict)
    single_object: bool = False
    _merge_warned: set[int] = field(default_factory=set, init=False, repr=False, compare=False)
    # one annotation file per frame meant to hold one object (DAVIS 2016): several ids in it are a surprise
    warns_on_merged_ids: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.frame_paths = [Path(p) for p in self.frame_paths]
        self.annotation_paths = {int(k): Path(v) for k, v in self.annotation_paths.items()}
        if not self.frame_paths:
            raise DataError(f"sequence {self.name!r} has no frames")
        for index in self.annotation_paths:
            if not 0 <= index < len(self.frame_paths):
                raise DataError(
                    f"sequence {self.name!r}: annotation for frame {index} but only "
                    f"{len(self.frame_paths)} frames"
                )

    def __len__(self) -> int:
        return len(self.frame_paths)

    def __repr__(self) -> str:
        return (
            f"VideoSequence(name={self.name!r}, frames={len(self)}, annotated={len(self.annotated_indices)})"
        )

    @property
    def frame_names(self) -> list[str]:
        """Frame file stems; output masks are written under the same names."""
        return [p.stem for p in self.frame_paths]

    @property
    def annotated_indices(self) -> list[int]:
        return sorted(self.annotation_paths)

    def has_label(self, index: int) -> bool:
        return index in self.annotation_paths

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as uint8 H×W×3 RGB (read on demand)."""
        return read_frame(self.frame_paths[index])

    def frames(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self.frame(index)

    @cached_property
    def size(self) -> tuple[int, int]:
        """(H, W) of the first frame; every frame and annotation must match it."""
        return tuple(self.frame(0).shape[:2])  # type: ignore[return-value]

    def _read_label_map(self, index: int) -> np.ndarray:
        return read_label_map(self.annotation_paths[index])

    def label_map(self, index: int) -> np.ndarray | None:
        """The H×W label map of frame ``index`` or ``None`` when the frame is not annotated."""
        if index not in self.annotation_paths:
            return None
        labels = self._read_label_map(index)
        if labels.shape != self.size:
            where = self.annotation_paths.get(index, f"frame {index}")
            raise DataError(
                f"sequence {self.name!r}: annotation {where} has size {labels.shape} but the "
                f"frames are {self.size}"
            )
        if self.single_object:
            self._warn_on_merge(index, labels)
            labels = np.where(labels == VOID_LABEL, VOID_LABEL, (labels > 0).astype(np.uint8)).astype(
                np.uint8
            )
        return labels

    def _warn_on_merge(self, index: int, labels: np.ndarray) -> None:
        """Several ids in a single-object (DAVIS 2016) annotation are merged into object 1; a wrong year or a
        mislabelled file would otherwise change the task silently, so say so once per file."""
        if not self.warns_on_merged_ids or index in self._merge_warned:
            return
        ids = object_ids_of(labels)
        if len(ids) > 1:
            self._merge_warned.add(index)
            log.warning(
                "sequence %r: annotation %s holds object ids %s, merged into one object because the sequence "
                "is single-object (DAVIS 2016); load it as DAVIS 2017 (year=2017) to keep them apart",
                self.name,
                self.annotation_paths.get(index, f"frame {index}"),
                ids,
            )

    @property
    def first_frame_mask(self) -> np.ndarray:
        labels = self.label_map(0)
        if labels is None:
            raise DataError(f"sequence {self.name!r} has no first-frame annotation")
        return labels

    @cached_property
    def object_ids(self) -> list[int]:
        """Ids of the objects to segment, from the first frame (the DAVIS semi-supervised protocol)."""
        return object_ids_of(self.first_frame_mask)
