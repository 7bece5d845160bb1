"""SegTrack v2 reader: binary per-object masks → :class:`VideoSequence` label maps.

Layout of the official release::

    <root>/JPEGImages/<sequence>/*.{png,bmp,jpg}
    <root>/GroundTruth/<sequence>/*.{png,bmp}          single object: binary masks
    <root>/GroundTruth/<sequence>/{1,2,...}/*.{png,bmp} several objects: one folder of binary masks each
    <root>/ImageSets/all.txt                            optional: sequence names (a leading '*' is ignored)
    <root>/ImageSets/<sequence>.txt                     optional: first line a path prefix, then frame stems

Object ``k``'s mask becomes label ``k``; where masks overlap the later object wins (it is painted last).
Masks are matched to frames by file stem (the release mixes .png and .bmp between frames and masks); when
the stems differ but the counts agree they are matched in sorted order. A frame without a mask is an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ovsnet.data.io import DataError, list_frames, read_frame
from ovsnet.data.sequence import VideoSequence

__all__ = ["SEGTRACK_LAYOUT", "SegTrackSequence", "load_segtrack", "read_binary_mask", "segtrack_sequence"]

log = logging.getLogger(__name__)

SEGTRACK_LAYOUT = (
    "expected the SegTrack v2 layout <root>/JPEGImages/<sequence>/*.{png,bmp,jpg} and "
    "<root>/GroundTruth/<sequence>/*.png (one object) or <root>/GroundTruth/<sequence>/<k>/*.png (object k)"
)
_IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg")


def read_binary_mask(path: str | os.PathLike, threshold: int = 0) -> np.ndarray:
    """A binary mask image (any mode, grey or RGB) as H×W bool: pixel > ``threshold`` in any channel."""
    return read_frame(path).max(axis=2) > threshold


@dataclass(repr=False)
class SegTrackSequence(VideoSequence):
    """A SegTrack v2 video: ``mask_paths[frame][object_id]`` are binary masks merged into one label map.

    ``annotation_paths`` holds one mask per annotated frame (the first object's) so the base-class
    bookkeeping (``has_label``, ``annotated_indices``, error messages) works unchanged.
    """

    mask_paths: Mapping[int, Mapping[int, Path]] = field(default_factory=dict)
    threshold: int = 0
    # one mask file per object: merging them is what ``single_object=True`` asks for, nothing to warn about
    warns_on_merged_ids: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.mask_paths = {
            int(i): {int(k): Path(p) for k, p in masks.items()} for i, masks in self.mask_paths.items()
        }
        for index, masks in self.mask_paths.items():
            if not masks:
                raise DataError(f"sequence {self.name!r}: frame {index} has an empty mask set")
            for k in masks:
                if not 1 <= k <= 254:
                    raise DataError(f"sequence {self.name!r}: object id {k} outside 1..254 ({masks[k]})")
        if not self.annotation_paths:
            self.annotation_paths = {i: masks[min(masks)] for i, masks in self.mask_paths.items()}
        super().__post_init__()

    def _read_label_map(self, index: int) -> np.ndarray:
        masks = self.mask_paths[index]
        labels: np.ndarray | None = None
        first: Path | None = None
        for object_id in sorted(masks):
            path = masks[object_id]
            mask = read_binary_mask(path, self.threshold)
            if labels is None:
                labels, first = np.zeros(mask.shape, dtype=np.uint8), path
            elif mask.shape != labels.shape:
                raise DataError(
                    f"sequence {self.name!r}: mask {path} has size {mask.shape} but {first} "
                    f"has {labels.shape}"
                )
            labels[mask] = object_id  # later objects overwrite earlier ones where they overlap
        assert labels is not None
        return labels


def _read_all_list(file: Path) -> list[str]:
    names: list[str] = []
    for line in file.read_text(encoding="utf-8").splitlines():
        name = line.strip().lstrip("*").strip().strip("/")
        if name and name not in names:
            names.append(name)
    return names


def _listed_frames(root: Path, name: str, frame_dir: Path) -> list[Path] | None:
    """Frames named by ``ImageSets/<name>.txt`` (prefix line, then stems), or None when there is no list."""
    list_file = root / "ImageSets" / f"{name}.txt"
    if not list_file.is_file():
        return None
    lines = [line.strip() for line in list_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    stems = lines[1:] if lines and lines[0].endswith("/") else lines
    by_stem = {p.stem: p for p in list_frames(frame_dir, _IMAGE_EXTENSIONS)}
    frames = []
    for stem in stems:
        stem = Path(stem).stem if Path(stem).suffix.lower() in _IMAGE_EXTENSIONS else stem
        if stem not in by_stem:
            raise DataError(
                f"sequence {name!r}: {list_file} lists frame {stem!r} but {frame_dir / stem}.* does not exist"
            )
        frames.append(by_stem[stem])
    return frames


def _object_dirs(gt_dir: Path, name: str) -> dict[int, Path]:
    """{object id: mask folder}: numbered sub-folders when present, else the folder itself as object 1."""
    subdirs = [p for p in gt_dir.iterdir() if p.is_dir()]
    if not subdirs:
        return {1: gt_dir}
    objects: dict[int, Path] = {}
    for sub in subdirs:
        if not sub.name.isdigit():
            raise DataError(
                f"sequence {name!r}: ground-truth sub-folder {sub} is not an object number; {SEGTRACK_LAYOUT}"
            )
        objects[int(sub.name)] = sub
    loose = list_frames(gt_dir, _IMAGE_EXTENSIONS)
    if loose:
        log.warning(
            "sequence %r: ignoring %d mask files next to the object folders in %s", name, len(loose), gt_dir
        )
    return dict(sorted(objects.items()))


def _match_masks(frames: list[Path], mask_dir: Path, name: str) -> list[Path]:
    masks = list_frames(mask_dir, _IMAGE_EXTENSIONS)
    by_stem = {p.stem: p for p in masks}
    if all(f.stem in by_stem for f in frames):
        return [by_stem[f.stem] for f in frames]
    if len(masks) == len(frames):
        log.info(
            "sequence %r: mask names in %s differ from the frame names; pairing in sorted order",
            name,
            mask_dir,
        )
        return masks
    missing = next(f for f in frames if f.stem not in by_stem)
    raise DataError(
        f"sequence {name!r}: no mask for frame {missing.name}: expected "
        f"{mask_dir / missing.stem}.png ({len(masks)} masks for {len(frames)} frames)"
    )


def segtrack_sequence(
    root: str | os.PathLike, name: str, threshold: int = 0, single_object: bool = False
) -> SegTrackSequence:
    """One SegTrack v2 sequence (every frame annotated)."""
    root = Path(root)
    frame_dir = root / "JPEGImages" / name
    gt_dir = root / "GroundTruth" / name
    if not frame_dir.is_dir():
        raise DataError(f"sequence {name!r}: frame folder {frame_dir} does not exist; {SEGTRACK_LAYOUT}")
    if not gt_dir.is_dir():
        raise DataError(f"sequence {name!r}: ground-truth folder {gt_dir} does not exist; {SEGTRACK_LAYOUT}")
    frames = _listed_frames(root, name, frame_dir)
    if frames is None:
        frames = list_frames(frame_dir, _IMAGE_EXTENSIONS)
    if not frames:
        raise DataError(f"sequence {name!r}: frame folder {frame_dir} holds no images")
    per_object = {k: _match_masks(frames, d, name) for k, d in _object_dirs(gt_dir, name).items()}
    mask_paths = {i: {k: paths[i] for k, paths in per_object.items()} for i in range(len(frames))}
    return SegTrackSequence(
        name=name, frame_paths=frames, single_object=single_object, mask_paths=mask_paths, threshold=threshold
    )


def load_segtrack(
    root: str | os.PathLike, threshold: int = 0, single_object: bool = False
) -> list[SegTrackSequence]:
    """All SegTrack v2 sequences, in ``ImageSets/all.txt`` order when it exists, else sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"SegTrack v2 root {root} does not exist; {SEGTRACK_LAYOUT}")
    image_root = root / "JPEGImages"
    all_list = root / "ImageSets" / "all.txt"
    if all_list.is_file():
        names = _read_all_list(all_list)
    elif image_root.is_dir():
        names = sorted(p.name for p in image_root.iterdir() if p.is_dir())
    else:
        raise DataError(f"SegTrack v2 root {root} has no JPEGImages folder; {SEGTRACK_LAYOUT}")
    if not names:
        raise DataError(f"SegTrack v2 root {root} holds no sequences; {SEGTRACK_LAYOUT}")
    sequences = [segtrack_sequence(root, n, threshold, single_object) for n in names]
    log.info("SegTrack v2: %d sequences from %s", len(sequences), root)
    return sequences
