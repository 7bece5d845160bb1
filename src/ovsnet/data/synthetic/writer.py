"""Writing a dataset: plan each video, render its frames and write the DAVIS 2017 layout plus its meta files.

Every file is written atomically and ``meta/dataset.json`` last, so an interrupted run leaves no half file
and a folder is complete exactly when that file exists.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ovsnet.data.io import DataError, atomic_path, write_frame, write_label_map
from ovsnet.data.photo_videos import PHOTO_SPLITS, make_photo_video
from ovsnet.data.procedural.config import (
    FORMAT_VERSION,
    GENERATOR,
    SyntheticConfig,
    check_counts,
    check_split,
    config_dict,
    parse_size,
    sequence_name,
    with_overrides,
)
from ovsnet.data.procedural.render import SyntheticVideo
from ovsnet.data.synthetic.meta import build_meta, dumps
from ovsnet.data.synthetic.toy import make_toy_video

log = logging.getLogger(__name__)


def make_video(
    num_frames: int = 16,
    size: Any = (128, 160),
    seed: int = 0,
    index: int = 0,
    name: str | None = None,
    config: SyntheticConfig | None = None,
    split: str = "train",
    **config_overrides: Any,
) -> SyntheticVideo:
    """Plan video ``index`` of a dataset seeded with ``seed`` (cheap); render frames with ``render``/iteration.

    ``split`` only matters for ``style="photo"``: it picks the photo set (validation photos never appear in a
    training video), as :func:`generate_dataset` does for the sequences it lists in ``val.txt``.
    """
    cfg = with_overrides(config, config_overrides)
    size = parse_size(size)
    check_counts(num_frames, seed)
    check_split(split)
    num_frames, seed, index = int(num_frames), int(seed), int(index)
    if cfg.style == "photo":
        return make_photo_video(
            num_frames, size, seed, index, name or sequence_name(index, cfg.style), cfg, split
        )
    return make_toy_video(num_frames, size, seed, index, name, cfg)


def _splits(names: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """The last ``val_fraction`` of the sequences go to val; one sequence serves both splits."""
    if not 0.0 <= val_fraction <= 1.0:
        raise DataError(f"val_fraction must be in [0, 1], got {val_fraction}")
    n = len(names)
    if val_fraction == 0:
        return names, []
    if n == 1:
        return names, names
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return names[: n - n_val], names[n - n_val :]


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def generate_dataset(
    out_dir: str | Path,
    num_sequences: int = 8,
    num_frames: int = 16,
    size: Any = (128, 160),
    seed: int = 0,
    val_fraction: float = 0.25,
    *,
    config: SyntheticConfig | None = None,
    progress: bool = True,
    **config_overrides: Any,
) -> Path:
    """Write ``num_sequences`` synthetic videos in the DAVIS 2017 layout under ``out_dir``; returns it.

    ``JPEGImages/480p/<seq>/00000.jpg``, ``Annotations/480p/<seq>/00000.png`` (indexed, DAVIS palette),
    ``ImageSets/2017/{train,val}.txt``, ``meta/<seq>.json`` and ``meta/dataset.json`` (written last: its
    presence marks a complete folder). Files are written atomically, so re-running over a folder is safe.
    A folder that already holds videos of the other ``style`` is refused (:class:`DataError`), so toy and
    photo videos never mix in one folder; photo validation videos use only validation photos.
    """
    cfg = with_overrides(config, config_overrides)
    size = parse_size(size)
    check_counts(num_frames, seed)
    if (
        isinstance(num_sequences, bool)
        or not isinstance(num_sequences, (int, np.integer))
        or num_sequences < 1
    ):
        raise DataError(f"num_sequences must be an integer >= 1, got {num_sequences!r}")
    root = Path(out_dir)
    _check_style(root, cfg.style)
    names = [sequence_name(i, cfg.style) for i in range(int(num_sequences))]
    train, val = _splits(names, float(val_fraction))
    val_only = set(val) - set(train)  # a lone sequence serving both splits is a training video
    log.info(
        "writing %d synthetic sequences of %d frames at %dx%d to %s", len(names), num_frames, *size, root
    )
    for index in tqdm(range(len(names)), desc="synthetic videos", unit="video", disable=not progress):
        split = "val" if names[index] in val_only else "train"
        video = make_video(num_frames, size, seed, index, names[index], cfg, split)
        image_dir = root / "JPEGImages" / "480p" / video.name
        label_dir = root / "Annotations" / "480p" / video.name
        frames = []
        for frame in video:
            write_frame(image_dir / f"{frame.index:05d}.jpg", frame.image, quality=cfg.jpeg_quality)
            write_label_map(label_dir / f"{frame.index:05d}.png", frame.labels)
            frame.image = None  # keep only the statistics: constant memory per frame
            frame.instances = frame.labels = np.empty((0, 0), np.uint8)
            frames.append(frame)
        _remove_stale(image_dir, ".jpg", num_frames)
        _remove_stale(label_dir, ".png", num_frames)
        _write_text(root / "meta" / f"{video.name}.json", dumps(build_meta(video, frames)))
    _write_text(root / "ImageSets" / "2017" / "train.txt", "".join(f"{n}\n" for n in train))
    _write_text(root / "ImageSets" / "2017" / "val.txt", "".join(f"{n}\n" for n in val))
    summary = {
        "generator": GENERATOR,
        "style": cfg.style,
        "format_version": FORMAT_VERSION,
        "num_sequences": len(names),
        "num_frames": int(num_frames),
        "size": list(size),
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "train": train,
        "val": val,
        "config": config_dict(cfg),
    }
    if cfg.style == "photo":
        summary["photo_splits"] = {k: list(v) for k, v in PHOTO_SPLITS.items()}
    _write_text(root / "meta" / "dataset.json", dumps(summary))
    return root


def dataset_style(root: str | Path) -> str | None:
    """The ``style`` of the synthetic videos already in ``root`` (``None``: no synthetic videos there).

    Read from ``meta/dataset.json``, else from any ``meta/<seq>.json`` (an interrupted run); folders written
    before the style existed hold toy videos.
    """
    meta = Path(root) / "meta"
    candidates = [meta / "dataset.json", *sorted(meta.glob("*.json"))] if meta.is_dir() else []
    for path in candidates:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("generator") == GENERATOR:
            return str(data.get("style") or "toy")
    return None


def _check_style(root: Path, style: str) -> None:
    found = dataset_style(root)
    if found is not None and found != style:
        raise DataError(
            f"{root} already holds {found!r} synthetic videos; refusing to write {style!r} videos there "
            f"(use another folder, e.g. data.root=.../synthetic_{style}, or delete it)"
        )


def _remove_stale(folder: Path, suffix: str, num_frames: int) -> None:
    """Drop frames a previous, longer run left behind, so the folder matches this run's settings."""
    for path in folder.glob(f"*{suffix}"):
        if path.stem.isdigit() and int(path.stem) >= num_frames:
            path.unlink()
