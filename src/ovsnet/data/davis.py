"""DAVIS 2016 / 2017 readers: split files → :class:`VideoSequence` objects.

Layout (DAVIS 2017 release, also what :mod:`ovsnet.data.synthetic` writes)::

    <root>/JPEGImages/<resolution>/<sequence>/00000.jpg ...
    <root>/Annotations/<resolution>/<sequence>/00000.png ...   (indexed PNGs, 0 = bg, 255 = void)
    <root>/ImageSets/2017/{train,val,test-dev}.txt              (one sequence name per line)
    <root>/ImageSets/2016/{train,val}.txt                       (DAVIS 2016 sequences, same layout)

The original DAVIS 2016 release has frame lists instead::

    <root>/ImageSets/480p/{train,val}.txt
        lines "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png"

DAVIS 2016 is single-object: every non-zero, non-void label becomes object 1 (``single_object=True``).
For ``year=2016`` the sequence list ``ImageSets/2016/<split>.txt`` is preferred when it exists, because it
reads frames and annotations exactly like 2017 (the official DAVIS 2017 evaluation tool works this way and
it is what the current DAVIS download carries); the 2016 frame lists ``ImageSets/<resolution>/<split>.txt``
are the fallback and are taken verbatim (frames listed, in list order).

Every frame with an annotation file is annotated (train/val: all frames; test-dev: the first frame only).
The first frame must be annotated (semi-supervised protocol). Size mismatches between a frame and its
annotation are reported lazily by :meth:`VideoSequence.label_map`. A gap in the frame numbering (a frame
missing from the JPEG folder, and so from the annotations) is read past with a warning naming the frames.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ovsnet.data.io import DataError, list_frames
from ovsnet.data.sequence import VideoSequence

__all__ = [
    "DAVIS_LAYOUT",
    "davis_sequence",
    "detect_davis_layout",
    "load_davis",
    "missing_frames",
    "read_split_file",
]

log = logging.getLogger(__name__)

DAVIS_LAYOUT = (
    "expected the DAVIS layout <root>/JPEGImages/<resolution>/<sequence>/*.jpg, "
    "<root>/Annotations/<resolution>/<sequence>/*.png and <root>/ImageSets/<year>/<split>.txt "
    "(DAVIS 2016 also: <root>/ImageSets/480p/<split>.txt frame lists)"
)
_FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# The 2016 release names its full-resolution folders 1080p; the 2017 release, Full-Resolution.
_RESOLUTION_ALIASES = {"Full-Resolution": ("Full-Resolution", "1080p"), "1080p": ("1080p", "Full-Resolution")}


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Non-empty, stripped lines of a split file, duplicates dropped (first occurrence kept)."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read split file {file}: {exc}; {DAVIS_LAYOUT}") from exc
    names: list[str] = []
    seen: set[str] = set()
    for line in lines:
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name in seen:
            log.warning("split file %s lists %r twice; keeping the first", file, name)
            continue
        seen.add(name)
        names.append(name)
    return names


def missing_frames(frames: Sequence[Path]) -> list[str]:
    """Names absent from a numbered frame sequence (``00000, 00001, 00003`` → ``["00002"]``); none when the
    frames are not all numbered (then there is no numbering to have a gap in)."""
    stems = [p.stem for p in frames]
    if not stems or not all(stem.isdigit() for stem in stems):
        return []
    numbers = {int(stem) for stem in stems}
    width = min(len(stem) for stem in stems)
    return [f"{n:0{width}d}" for n in range(min(numbers), max(numbers) + 1) if n not in numbers]


def _warn_on_gaps(name: str, frames: Sequence[Path], where: Path) -> None:
    """A gap is read past (the video is shorter than its numbering), which silently doubles the motion
    between the frames around it and leaves those frames without an output mask: say so, with their names."""
    missing = missing_frames(frames)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        log.warning(
            "sequence %r: %d frame(s) missing from the numbering in %s: %s; reading the video without them",
            name,
            len(missing),
            where,
            shown,
        )


def davis_sequence(
    root: str | os.PathLike,
    name: str,
    resolution: str = "480p",
    single_object: bool = False,
    *,
    require_first_annotation: bool = True,
) -> VideoSequence:
    """One DAVIS-layout sequence folder; frames and annotations are paired by file stem.

    ``require_first_annotation=False`` allows unannotated folders (plain inference on a DAVIS-layout copy).
    """
    root = Path(root)
    frame_dir = root / "JPEGImages" / resolution / name
    ann_dir = root / "Annotations" / resolution / name
    if not frame_dir.is_dir():
        raise DataError(f"sequence {name!r}: frame folder {frame_dir} does not exist; {DAVIS_LAYOUT}")
    frames = list_frames(frame_dir, _FRAME_EXTENSIONS)
    if not frames:
        raise DataError(
            f"sequence {name!r}: frame folder {frame_dir} holds no images ({', '.join(_FRAME_EXTENSIONS)})"
        )
    _warn_on_gaps(name, frames, frame_dir)
    index_of = _index_by_stem(frames, name)
    annotations: dict[int, Path] = {}
    if ann_dir.is_dir():
        for png in list_frames(ann_dir, (".png",)):
            if png.stem not in index_of:
                raise DataError(
                    f"sequence {name!r}: annotation {png} has no matching frame "
                    f"{frame_dir / (png.stem + '.jpg')}"
                )
            annotations[index_of[png.stem]] = png
    if require_first_annotation and 0 not in annotations:
        raise DataError(
            f"sequence {name!r}: the first frame {frames[0]} has no annotation; expected "
            f"{ann_dir / (frames[0].stem + '.png')}"
        )
    return VideoSequence(
        name=name, frame_paths=frames, annotation_paths=annotations, single_object=single_object
    )


def _index_by_stem(frames: list[Path], name: str) -> dict[str, int]:
    index_of: dict[str, int] = {}
    for i, frame in enumerate(frames):
        if frame.stem in index_of:
            raise DataError(
                f"sequence {name!r}: two frames share the name {frame.stem!r}: "
                f"{frames[index_of[frame.stem]]} and {frame}"
            )
        index_of[frame.stem] = i
    return index_of


def load_davis(
    root: str | os.PathLike, year: int = 2017, split: str = "val", resolution: str = "480p"
) -> list[VideoSequence]:
    """The sequences of a DAVIS split, in split-file order (2016: single-object, see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"DAVIS root {root} does not exist; {DAVIS_LAYOUT}")
    year = int(year)
    if year not in (2016, 2017):
        raise DataError(f"DAVIS year must be 2016 or 2017, got {year} (root {root})")
    single_object = year == 2016
    list_file = root / "ImageSets" / str(year) / f"{split}.txt"
    if list_file.is_file():
        names = read_split_file(list_file)
        sequences = [davis_sequence(root, n, resolution, single_object) for n in names]
    elif year == 2016:
        frame_list = _find_frame_list(root, split, resolution)
        if frame_list is None:
            candidates = [list_file] + [
                root / "ImageSets" / r / f"{split}.txt"
                for r in _RESOLUTION_ALIASES.get(resolution, (resolution,))
            ]
            raise DataError(
                f"DAVIS 2016 split {split!r} not found: none of "
                f"{', '.join(map(str, candidates))} exists; {DAVIS_LAYOUT}"
            )
        sequences = _load_frame_list(root, frame_list)
    else:
        raise DataError(f"DAVIS {year} split file {list_file} does not exist; {DAVIS_LAYOUT}")
    log.info("DAVIS %d %s (%s): %d sequences from %s", year, split, resolution, len(sequences), root)
    return sequences


def _find_frame_list(root: Path, split: str, resolution: str) -> Path | None:
    for folder in _RESOLUTION_ALIASES.get(resolution, (resolution,)):
        candidate = root / "ImageSets" / folder / f"{split}.txt"
        if candidate.is_file():
            return candidate
    return None


def _load_frame_list(root: Path, list_file: Path) -> list[VideoSequence]:
    """Parse a DAVIS 2016 frame list ("<frame> [<annotation>]" per line), grouping frames by sequence."""
    groups: dict[str, tuple[list[Path], dict[int, Path]]] = {}
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2:
            raise DataError(f"{list_file} line {number}: expected '<frame> [<annotation>]', got {line!r}")
        frame = root / parts[0].lstrip("/")
        name = frame.parent.name
        if not frame.is_file():
            raise DataError(f"{list_file} line {number}: frame {frame} of sequence {name!r} does not exist")
        frames, annotations = groups.setdefault(name, ([], {}))
        if len(parts) == 2:
            annotation = root / parts[1].lstrip("/")
            if not annotation.is_file():
                raise DataError(
                    f"{list_file} line {number}: annotation {annotation} of sequence {name!r} "
                    f"(frame {frame.name}) does not exist"
                )
            annotations[len(frames)] = annotation
        frames.append(frame)
    sequences = []
    for name, (frames, annotations) in groups.items():
        _warn_on_gaps(name, frames, list_file)
        if 0 not in annotations:
            raise DataError(f"{list_file}: sequence {name!r}: the first frame {frames[0]} has no annotation")
        sequences.append(
            VideoSequence(name=name, frame_paths=frames, annotation_paths=annotations, single_object=True)
        )
    return sequences


# the resolutions a DAVIS download ships, in the order a folder holding several is read
_KNOWN_RESOLUTIONS = ("480p", "240p", "Full-Resolution", "1080p")


def detect_davis_layout(root: str | os.PathLike, split: str = "val") -> tuple[int, str]:
    """``(year, resolution)`` of a DAVIS-layout folder: the year whose split file lists ``split``
    (``ImageSets/2017`` first, then ``ImageSets/2016`` or a 2016 frame list) and the frame resolution folder
    under ``JPEGImages`` (480p before 240p when both are there). A folder to adapt to may come in either
    release's layout and at either size; this reads which, so the user need not say."""
    root = Path(root)
    frames = root / "JPEGImages"
    found = sorted(p.name for p in frames.iterdir() if p.is_dir()) if frames.is_dir() else []
    if not found:
        raise DataError(f"{root}: no resolution folder under {frames}; {DAVIS_LAYOUT}")
    resolution = next((r for r in _KNOWN_RESOLUTIONS if r in found), found[0])
    if (root / "ImageSets" / "2017" / f"{split}.txt").is_file():
        return 2017, resolution
    if (root / "ImageSets" / "2016" / f"{split}.txt").is_file() or _find_frame_list(root, split, resolution):
        return 2016, resolution
    raise DataError(
        f"{root}: split {split!r} not found (none of ImageSets/2017/{split}.txt, ImageSets/2016/{split}.txt, "
        f"ImageSets/{resolution}/{split}.txt); {DAVIS_LAYOUT}"
    )
