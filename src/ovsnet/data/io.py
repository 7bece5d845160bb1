"""Image and label-map I/O shared by every reader, writer and evaluator.

Conventions (see DESIGN.md): frames are ``uint8`` H×W×3 RGB; label maps are H×W ``uint8`` with
0 = background, 1..K = objects, 255 = void, stored as indexed PNGs with the DAVIS palette.
Every writer is atomic (temporary file + ``os.replace``) so a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DAVIS_PALETTE",
    "FRAME_EXTENSIONS",
    "VOID_LABEL",
    "DataError",
    "atomic_path",
    "list_frames",
    "read_frame",
    "read_label_map",
    "write_frame",
    "write_label_map",
]

FRAME_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
VOID_LABEL = 255
"""Label of pixels to ignore (DAVIS void), the one definition every reader, metric and overlay uses."""


class DataError(ValueError):
    """Bad input data; the message always names the offending file, sequence or key."""


def _voc_palette() -> np.ndarray:
    """The PASCAL VOC colour map, which DAVIS uses for its indexed annotation PNGs."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[index] = (r, g, b)
    return palette


DAVIS_PALETTE: np.ndarray = _voc_palette()
_COLOUR_TO_INDEX = {tuple(int(v) for v in colour): index for index, colour in enumerate(DAVIS_PALETTE)}


@functools.cache
def _new_file_mode() -> int:
    """Permissions a plain ``open(path, "w")`` gives (0o666 minus the umask), read once when first needed."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    # mkstemp creates the file 0o600; writers reopen it in place, so without this every output (masks,
    # videos, markers) would end up unreadable to other users.
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _new_file_mode())
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def list_frames(directory: str | os.PathLike, extensions: Sequence[str] = FRAME_EXTENSIONS) -> list[Path]:
    """Sorted image files of a folder (by name, which DAVIS zero-pads)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise DataError(f"frame folder does not exist: {folder}")
    exts = {e.lower() for e in extensions}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


def _open_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"unreadable or corrupt image: {path} ({exc})") from exc
    return image


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``uint8`` H×W×3 RGB."""
    image = _open_image(Path(path))
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def write_frame(path: str | os.PathLike, frame: np.ndarray, quality: int = 95) -> None:
    """Write an RGB frame (JPEG or PNG by suffix) atomically."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise DataError(f"frame for {path} must be uint8 HxWx3, got {frame.dtype} {frame.shape}")
    target = Path(path)
    with atomic_path(target) as tmp:
        image = Image.fromarray(frame, mode="RGB")
        if target.suffix.lower() in (".jpg", ".jpeg"):
            image.save(tmp, format="JPEG", quality=quality)
        else:
            image.save(tmp, format="PNG")


def read_label_map(path: str | os.PathLike, binary: bool | None = None) -> np.ndarray:
    """Read an annotation as an H×W ``uint8`` label map.

    * Indexed (``P``) PNGs: the indices are the labels (DAVIS 2017 and ovsnet outputs).
    * Grayscale (``L``/``1``/``I``): with ``binary=True``, or automatically when the only values are
      {0, 255} or {0, 1} (DAVIS 2016, SegTrack v2), any non-zero pixel becomes object 1; otherwise the
      values are the labels.
    * RGB(A): every colour must be a DAVIS palette colour; an unknown colour raises :class:`DataError`.
    """
    file = Path(path)
    image = _open_image(file)
    mode = image.mode
    if mode == "P":
        labels = np.asarray(image, dtype=np.uint8).copy()
    elif mode in ("L", "1", "I", "I;16", "I;16B", "F"):
        values = np.asarray(image)
        if mode == "1":
            values = values.astype(np.uint8)
        uniques = np.unique(values)
        if binary is None:
            binary = bool(np.isin(uniques, (0, 255)).all() or np.isin(uniques, (0, 1)).all())
        if binary:
            labels = (values > 0).astype(np.uint8)
        else:
            if uniques.size and (uniques.min() < 0 or uniques.max() > 255):
                raise DataError(f"label values outside 0..255 in {file}: {uniques.min()}..{uniques.max()}")
            labels = values.astype(np.uint8)
    elif mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        labels = _rgb_to_labels(rgb, file)
    else:
        raise DataError(f"unsupported annotation image mode {mode!r} in {file}")
    if binary and mode == "P":
        labels = ((labels > 0) & (labels != VOID_LABEL)).astype(np.uint8)
    return labels


def _rgb_to_labels(rgb: np.ndarray, file: Path) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed.reshape(-1), return_inverse=True)
    lut = np.empty(len(colours), dtype=np.uint8)
    for i, value in enumerate(colours):
        colour = (int(value >> 16) & 255, int(value >> 8) & 255, int(value) & 255)
        if colour not in _COLOUR_TO_INDEX:
            raise DataError(
                f"RGB annotation {file} has colour {colour}, which is not a DAVIS palette colour; "
                "save annotations as indexed PNGs or use the DAVIS palette"
            )
        lut[i] = _COLOUR_TO_INDEX[colour]
    return lut[inverse].reshape(rgb.shape[:2])


def write_label_map(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write a label map as an indexed PNG with the DAVIS palette, atomically and losslessly.

    zlib level 1: 1.9 ms instead of 5.5 ms a 854x480 map (level 6, PIL's default) for files of ~4 KB instead
    of ~2.5 KB; at 20+ fps the default level was an eighth of a frame.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise DataError(f"label map for {path} must be HxW, got shape {labels.shape}")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise DataError(f"label map for {path} has values outside 0..255")
        labels = labels.astype(np.uint8)
    image = Image.fromarray(labels, mode="P")
    image.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=1)
