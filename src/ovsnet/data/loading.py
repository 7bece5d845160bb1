"""Sequences by layout: the one reader behind evaluation, the datamodule and the validation callback.

A dataset folder is DAVIS-layout (DAVIS 2016/2017 and the synthetic videos) or SegTrack v2; a synthetic
folder that does not exist yet is generated first when the config asks for it (``generate_synthetic``), and
one that holds videos of another style is refused rather than silently mixed. Every failure is a
:class:`~ovsnet.data.io.DataError` naming the folder and the config key it came from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ovsnet.data.io import DataError
from ovsnet.data.sequence import VideoSequence

__all__ = [
    "DAVIS_LAYOUT",
    "LAYOUTS",
    "ensure_synthetic",
    "load_sequences",
    "select_sequences",
    "split_sequences",
]

log = logging.getLogger(__name__)

LAYOUTS: tuple[str, ...] = ("davis", "segtrack")
DAVIS_LAYOUT = (
    "expected the DAVIS layout: <root>/JPEGImages/<resolution>/<sequence>/00000.jpg, "
    "<root>/Annotations/<resolution>/<sequence>/00000.png and <root>/ImageSets/2017/<split>.txt "
    "(DAVIS 2016: ImageSets/480p/<split>.txt); download it from https://davischallenge.org or set "
    "data.generate_synthetic to create a synthetic dataset there"
)


def ensure_synthetic(root: str | os.PathLike, generate: Mapping[str, Any] | None) -> None:
    """Generate the synthetic videos ``generate`` describes into ``root`` when it does not exist yet.

    An existing folder holding synthetic videos of another ``style`` is refused (a photo config must never
    train or score on toy videos without saying so); any other existing folder is left as it is.
    """
    if not generate:
        return
    from ovsnet.data.synthetic import dataset_style, generate_dataset

    folder = Path(root)
    settings = dict(generate)
    if folder.exists():
        wanted, found = settings.get("style", "toy"), dataset_style(folder)
        if found is not None and found != wanted:
            raise DataError(
                f"data.root={folder} holds synthetic videos of style {found!r} but "
                f"data.generate_synthetic.style={wanted!r}: choose another data.root"
            )
        return
    log.info("generating the synthetic DAVIS-layout dataset in %s", folder)
    generate_dataset(folder, **settings)


def load_sequences(
    root: str | os.PathLike,
    split: str,
    *,
    layout: str = "davis",
    year: int = 2017,
    resolution: str = "480p",
    generate: Mapping[str, Any] | None = None,
    source: str = "data.root",
) -> list[VideoSequence]:
    """The sequences of one split of a dataset folder (``layout`` davis | segtrack; SegTrack has no splits).

    ``generate``: a ``generate_synthetic`` config, used when ``root`` is missing (DAVIS layout only).
    ``source`` names the setting ``root`` came from in messages (``data.eval_root``...).
    """
    if layout not in LAYOUTS:
        raise DataError(f"data.eval_layout must be one of {list(LAYOUTS)}, got {layout!r}")
    folder = Path(root).expanduser()
    if layout == "davis":
        ensure_synthetic(folder, generate)
    if not folder.is_dir():
        hint = DAVIS_LAYOUT if layout == "davis" else "download SegTrack v2 there"
        raise DataError(f"{source}={folder}: dataset folder not found ({hint}, or override {source}=...)")
    if layout == "segtrack":
        from ovsnet.data.segtrack import load_segtrack

        sequences = list(load_segtrack(folder))
    else:
        from ovsnet.data.davis import load_davis

        sequences = list(load_davis(folder, year=int(year), split=split, resolution=str(resolution)))
    if not sequences:
        raise DataError(f"{source}={folder}: split {split!r} lists no sequence")
    return sequences


def split_sequences(data: Mapping[str, Any], split: str) -> list[VideoSequence]:
    """The evaluation sequences a ``conf/data/*.yaml`` mapping names for ``split``.

    Reads ``eval_root`` (else ``root``), ``eval_layout``, ``year``, ``resolution``; the synthetic
    ``generate_synthetic`` config applies to ``root`` only (an ``eval_root`` is a real dataset).
    """
    eval_root = data.get("eval_root")
    key = "eval_root" if eval_root else "root"
    root = data.get(key)
    if root is None:
        raise DataError("data.root is not set: choose a dataset (data=davis17|davis16|segtrackv2|synthetic)")
    return load_sequences(
        str(root),
        split,
        layout=str(data.get("eval_layout") or "davis"),
        year=int(data.get("year") or 2017),
        resolution=str(data.get("resolution") or "480p"),
        generate=None if eval_root else data.get("generate_synthetic"),
        source=f"data.{key}",
    )


def select_sequences(
    sequences: Sequence[VideoSequence], names: Sequence[str] | None = None, limit: int | None = None
) -> list[VideoSequence]:
    """``names`` in their given order (each must exist), then the first ``limit`` of them."""
    chosen = list(sequences)
    if names:
        by_name = {s.name: s for s in chosen}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise DataError(f"sequences={list(names)}: {missing} not in the split (it has {sorted(by_name)})")
        chosen = [by_name[n] for n in names]
    return chosen[:limit] if limit else chosen
