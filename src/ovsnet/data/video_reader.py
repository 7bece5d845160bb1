"""Video files and image folders as streams of RGB frames.

Reading goes through OpenCV first (fast, seekless, its bundled FFmpeg reads mp4/avi/webm/mkv/mov) and falls
back to PyAV when OpenCV cannot open or decode a file. Sources are opened eagerly, so a missing, unreadable
or empty video raises :class:`DataError` at the call rather than at the first ``next()``; frames are then
decoded one at a time (constant memory, as the online segmenter needs).

Writing is :mod:`ovsnet.data.video_writer` (:class:`VideoWriter`, re-exported here for the callers that
import it from this module).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ovsnet.data.io import FRAME_EXTENSIONS, DataError, list_frames, read_frame
from ovsnet.data.video_writer import VideoWriter

__all__ = ["VIDEO_EXTENSIONS", "VideoWriter", "iter_video_frames", "live_source", "video_info"]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".m4v",
    ".avi",
    ".webm",
    ".mkv",
    ".mov",
    ".mpg",
    ".mpeg",
    ".gif",
    ".ts",
    ".flv",
    ".wmv",
)


@dataclass
class _OpenedVideo:
    """A video opened for reading: its first frame (proof that it decodes) and the remaining frames."""

    first: np.ndarray
    rest: Iterator[np.ndarray]
    fps: float | None
    num_frames: int | None
    backend: str
    close: Callable[[], None]


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[:, :, None], 3, axis=2), dtype=np.uint8)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _open_opencv(path: Path | str | int) -> _OpenedVideo | None:
    cap = cv2.VideoCapture(path if isinstance(path, int) else str(path))
    if not cap.isOpened():
        cap.release()
        return None
    ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        return None
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = float(cap.get(cv2.CAP_PROP_FPS))

    def rest() -> Iterator[np.ndarray]:
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            yield _to_rgb(frame)

    return _OpenedVideo(
        _to_rgb(frame), rest(), fps if fps > 0 else None, count if count > 0 else None, "opencv", cap.release
    )


def _open_pyav(path: Path | str) -> _OpenedVideo:
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises FFmpegError subclasses, IndexError, ... for broken files
        raise DataError(f"unreadable video file {path}: neither OpenCV nor PyAV can open it ({exc})") from exc
    try:
        if not container.streams.video:
            raise DataError(f"video file {path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = (f.to_ndarray(format="rgb24") for f in container.decode(stream))
        try:
            first = next(decoded)
        except StopIteration:
            raise DataError(f"video file {path} holds no frames") from None
        except Exception as exc:
            raise DataError(f"unreadable video file {path}: cannot decode frame 0 ({exc})") from exc
    except BaseException:
        container.close()
        raise
    fps = float(stream.average_rate) if stream.average_rate else None
    count = int(stream.frames) if stream.frames else None
    return _OpenedVideo(first, decoded, fps, count, "pyav", container.close)


def live_source(path: str | os.PathLike | int) -> str | int | None:
    """A camera index (int or digit string) or a URL (``rtsp://``, ``http://``, ``file://``), else None."""
    if isinstance(path, int):
        return path
    if isinstance(path, str) and not Path(path).exists():
        if path.isdigit():
            return int(path)
        if "://" in path:
            return path
    return None


def _open_live(source: str | int) -> _OpenedVideo:
    """Open a camera or stream URL: OpenCV first, PyAV for URLs it cannot read."""
    opened = _open_opencv(source)
    if opened is not None:
        return opened
    if isinstance(source, int):
        raise DataError(f"cannot open camera {source} (or it delivers no frame)")
    log.debug("OpenCV cannot read stream %s; trying PyAV", source)
    return _open_pyav(source)


def _open_video(path: Path) -> _OpenedVideo:
    if not path.exists():
        raise DataError(f"video file does not exist: {path}")
    if not path.is_file():
        raise DataError(f"not a video file: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"video file {path} is empty (0 bytes)")
    opened = _open_opencv(path)
    if opened is None:
        log.debug("OpenCV cannot read %s; trying PyAV", path)
        opened = _open_pyav(path)
    return opened


def _stream(path: Path | str | int, opened: _OpenedVideo) -> Iterator[np.ndarray]:
    """Yield the frames of an opened video, checking that their size never changes; always closes it."""
    try:
        shape = opened.first.shape
        yield opened.first
        index = 1
        while True:
            try:
                frame = next(opened.rest)
            except StopIteration:
                return
            except Exception as exc:
                raise DataError(f"video file {path}: cannot decode frame {index} ({exc})") from exc
            if frame.shape != shape:
                raise DataError(
                    f"video file {path}: frame {index} has size {frame.shape[:2]} but frame 0 has {shape[:2]}"
                )
            yield frame
            index += 1
    finally:
        opened.close()


def _folder_stream(folder: Path, frames: list[Path]) -> Iterator[np.ndarray]:
    shape: tuple[int, ...] | None = None
    for index, file in enumerate(frames):
        frame = read_frame(file)
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise DataError(
                f"image folder {folder}: frame {index} ({file.name}) has size {frame.shape[:2]} "
                f"but frame 0 ({frames[0].name}) has {shape[:2]}"
            )
        yield frame


def _folder_frames(folder: Path) -> list[Path]:
    frames = list_frames(folder)
    if not frames:
        raise DataError(f"image folder {folder} holds no frames ({', '.join(FRAME_EXTENSIONS)})")
    return frames


def iter_video_frames(path: str | os.PathLike | int) -> Iterator[np.ndarray]:
    """Frames of a video file, an image folder (sorted by name) or one image, as uint8 H×W×3 RGB.

    Live sources work too: a camera index (``0`` or ``"0"``) or a stream URL (``rtsp://...``); they are
    read one frame at a time and never end on their own. The source is opened (and its first frame decoded)
    before this returns; a frame whose size differs from the first raises :class:`DataError` naming the
    file and the frame index.
    """
    live = live_source(path)
    if live is not None:
        return _stream(live, _open_live(live))
    source = Path(path)
    if source.is_dir():
        return _folder_stream(source, _folder_frames(source))
    if source.is_file() and source.suffix.lower() in FRAME_EXTENSIONS:
        return iter([read_frame(source)])
    return _stream(source, _open_video(source))


def video_info(path: str | os.PathLike | int) -> tuple[int | None, float | None, tuple[int, int]]:
    """``(num_frames, fps, (H, W))`` of a video file, image folder, image or live source (unknown: ``None``).

    The frame count comes from the container header (``None`` when it has none, e.g. some webm files or a
    camera). It opens the source and decodes one frame, so it also checks that the video is readable.
    """
    live = live_source(path)
    if live is not None:
        opened = _open_live(live)
    else:
        source = Path(path)
        if source.is_dir():
            frames = _folder_frames(source)
            return len(frames), None, tuple(read_frame(frames[0]).shape[:2])  # type: ignore[return-value]
        if source.is_file() and source.suffix.lower() in FRAME_EXTENSIONS:
            return 1, None, tuple(read_frame(source).shape[:2])  # type: ignore[return-value]
        opened = _open_video(source)
    try:
        return opened.num_frames, opened.fps, tuple(opened.first.shape[:2])  # type: ignore[return-value]
    finally:
        opened.close()
