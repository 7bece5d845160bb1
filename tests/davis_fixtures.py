"""Tiny DAVIS / SegTrack-layout folders built in ``tmp_path`` for the data-reader tests (no downloads)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ovsnet.data.io import write_frame, write_label_map

H, W = 64, 80


def make_frame(index: int, height: int = H, width: int = W) -> np.ndarray:
    """A deterministic RGB frame whose colour encodes ``index`` (so tests can tell frames apart)."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[..., 0] = (37 * index) % 256
    frame[..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[..., 2] = 100
    return frame


def make_labels(
    index: int, num_objects: int, height: int = H, width: int = W, void: bool = False
) -> np.ndarray:
    """Label map with objects 1..num_objects as stripes shifted by ``index``; optional void border."""
    labels = np.zeros((height, width), dtype=np.uint8)
    band = max(1, height // (num_objects + 1))
    for k in range(1, num_objects + 1):
        top = (k - 1) * band + index % 3
        labels[top : top + band - 1, 5 + index : width // 2 + index] = k
    if void:
        labels[:, :2] = 255
    return labels


def write_davis_sequence(
    root: Path,
    name: str,
    num_frames: int,
    num_objects: int,
    resolution: str = "480p",
    annotated: Iterable[int] | None = None,
    binary_png: bool = False,
) -> None:
    """Write JPEGImages/<res>/<name>/*.jpg and Annotations/<res>/<name>/*.png (all frames unless given)."""
    frame_dir = root / "JPEGImages" / resolution / name
    ann_dir = root / "Annotations" / resolution / name
    frame_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    indices = range(num_frames) if annotated is None else annotated
    for i in range(num_frames):
        write_frame(frame_dir / f"{i:05d}.jpg", make_frame(i))
    for i in indices:
        labels = make_labels(i, num_objects, void=not binary_png)
        if binary_png:  # DAVIS 2016 style: grayscale 0/255
            Image.fromarray(((labels > 0) * 255).astype(np.uint8), mode="L").save(ann_dir / f"{i:05d}.png")
        else:
            write_label_map(ann_dir / f"{i:05d}.png", labels)


def write_split(root: Path, folder: str, split: str, names: Sequence[str]) -> Path:
    path = root / "ImageSets" / folder / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{n}\n" for n in names))
    return path


def build_davis2017(
    root: Path,
    sequences: Mapping[str, tuple[int, int]],
    splits: Mapping[str, Sequence[str]],
    first_only: Sequence[str] = (),
    resolution: str = "480p",
) -> Path:
    """DAVIS 2017 layout; ``sequences``: name → (frames, objects); ``first_only`` annotates only frame 0."""
    for name, (num_frames, num_objects) in sequences.items():
        write_davis_sequence(
            root, name, num_frames, num_objects, resolution, annotated=[0] if name in first_only else None
        )
    for split, names in splits.items():
        write_split(root, "2017", split, names)
    return root


def build_davis2016_frame_lists(
    root: Path, sequences: Mapping[str, int], splits: Mapping[str, Sequence[str]]
) -> Path:
    """Original DAVIS 2016 release: binary 0/255 PNGs and ``ImageSets/480p/<split>.txt`` frame lists."""
    for name, num_frames in sequences.items():
        write_davis_sequence(root, name, num_frames, num_objects=1, binary_png=True)
    for split, names in splits.items():
        lines = [
            f"/JPEGImages/480p/{n}/{i:05d}.jpg /Annotations/480p/{n}/{i:05d}.png"
            for n in names
            for i in range(sequences[n])
        ]
        path = root / "ImageSets" / "480p" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return root


def write_mask(path: Path, mask: np.ndarray, rgb: bool = False) -> None:
    """A SegTrack-style binary mask (0/255), grey or 3-channel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = (np.asarray(mask) > 0).astype(np.uint8) * 255
    image = Image.fromarray(np.stack([values] * 3, axis=2)) if rgb else Image.fromarray(values, mode="L")
    image.save(path)


def write_segtrack_sequence(
    root: Path,
    name: str,
    masks: Sequence[Sequence[np.ndarray]],
    frame_ext: str = ".png",
    mask_ext: str = ".png",
    rgb_masks: bool = False,
    stem: str | None = None,
) -> None:
    """SegTrack v2 sequence; ``masks[k][i]`` is object k+1's mask in frame i; one object → no sub-folders."""
    stem = stem or name
    num_frames = len(masks[0])
    frame_dir = root / "JPEGImages" / name
    frame_dir.mkdir(parents=True, exist_ok=True)
    for i in range(num_frames):
        Image.fromarray(make_frame(i)).save(frame_dir / f"{stem}_{i:05d}{frame_ext}")
    gt = root / "GroundTruth" / name
    for k, object_masks in enumerate(masks, start=1):
        folder = gt if len(masks) == 1 else gt / str(k)
        for i, mask in enumerate(object_masks):
            write_mask(folder / f"{stem}_{i:05d}{mask_ext}", mask, rgb=rgb_masks)


def box_mask(top: int, left: int, bottom: int, right: int, height: int = H, width: int = W) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask
