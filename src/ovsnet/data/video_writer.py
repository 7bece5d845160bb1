"""An atomic video writer: :class:`VideoWriter` (overlay videos of the segmenter and the demos).

mp4/m4v/mov (``mp4v``) and avi (``MJPG``) go through OpenCV, everything else (webm, mkv, gif, ...) through
PyAV. It writes to a hidden temporary file next to the target and moves it into place on a successful close,
so a crash never leaves a truncated video behind. Reading is :mod:`ovsnet.data.video_reader`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from ovsnet.data.io import DataError, atomic_path

__all__ = ["VideoWriter"]

log = logging.getLogger(__name__)

_OPENCV_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
# PyAV codec preferences per container, first available wins.
_PYAV_CODECS = {
    ".webm": ("libvpx-vp9", "libvpx"),
    ".mkv": ("libx264", "mpeg4", "ffv1"),
    ".mp4": ("libx264", "mpeg4"),
    ".m4v": ("libx264", "mpeg4"),
    ".mov": ("libx264", "mpeg4"),
    ".avi": ("mpeg4", "mjpeg"),
    ".gif": ("gif",),
}


class VideoWriter:
    """Write uint8 RGB frames to a video file atomically (use as a context manager).

    The size is fixed by the first frame; odd heights/widths are padded by one replicated row/column
    because 4:2:0 codecs need even sizes (OpenCV would silently crop instead). On an exception inside the
    ``with`` block, or on :meth:`abort`, nothing is left at ``path``. Closing without frames raises.

    ``backend="auto"`` uses OpenCV for mp4/m4v/mov (fourcc ``mp4v``) and avi (``MJPG``) and PyAV for other
    containers; ``fourcc`` forces OpenCV with that fourcc, ``codec`` (a PyAV/FFmpeg encoder name such as
    ``"libx264"``) forces PyAV. When OpenCV cannot open its writer the default path falls back to PyAV.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = 25.0,
        codec: str | None = None,
        fourcc: str | None = None,
        backend: str = "auto",
    ) -> None:
        self.path = Path(path)
        if fps <= 0:
            raise DataError(f"video {self.path}: fps must be positive, got {fps}")
        if backend not in ("auto", "opencv", "pyav"):
            raise DataError(f"video {self.path}: backend must be 'auto', 'opencv' or 'pyav', got {backend!r}")
        suffix = self.path.suffix.lower()
        if not suffix:
            raise DataError(f"video {self.path}: the file name needs an extension (.mp4, .avi, .webm, ...)")
        self.fps = float(fps)
        if backend == "auto":
            backend = "opencv" if fourcc or (codec is None and suffix in _OPENCV_FOURCC) else "pyav"
        if backend == "opencv" and fourcc is None and suffix not in _OPENCV_FOURCC:
            raise DataError(f"video {self.path}: give a fourcc to write {suffix} files with OpenCV")
        if fourcc is not None and len(fourcc) != 4:
            raise DataError(f"video {self.path}: fourcc must have 4 characters, got {fourcc!r}")
        self.codec = codec
        self.fourcc = fourcc
        self.backend = backend
        self.frames_written = 0
        self._size: tuple[int, int] | None = None  # (H, W) of the frames given
        self._cv_writer: Any = None
        self._container: Any = None
        self._stream: Any = None
        # The encoder writes into atomic_path's hidden temporary file; closing the stack moves it into place.
        self._atomic = contextlib.ExitStack()
        self._tmp = self._atomic.enter_context(atomic_path(self.path))
        self._closed = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # A writer dropped without close() must not leave its temporary file behind.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.abort()

    def _open(self, height: int, width: int) -> None:
        if self.backend == "opencv":
            fourcc = self.fourcc or _OPENCV_FOURCC[self.path.suffix.lower()]
            code = cv2.VideoWriter_fourcc(*fourcc)
            writer = cv2.VideoWriter(str(self._tmp), code, self.fps, (width, height))
            if writer.isOpened():
                self._cv_writer = writer
                return
            writer.release()
            if self.fourcc is not None:
                raise DataError(f"video {self.path}: OpenCV cannot write fourcc {fourcc!r}")
            log.debug("OpenCV cannot write %s with %s; using PyAV", self.path, fourcc)
        self._open_pyav(height, width)

    def _open_pyav(self, height: int, width: int) -> None:
        import av

        suffix = self.path.suffix.lower()
        codec = self.codec
        if codec is None:
            preferred = _PYAV_CODECS.get(suffix, ("libx264", "mpeg4"))
            codec = next((c for c in preferred if c in av.codecs_available), preferred[-1])
        container = None
        try:
            container = av.open(str(self._tmp), mode="w", format=_pyav_format(suffix))
            rate = Fraction(self.fps).limit_denominator(1001)
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = width, height
            stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "20"}
            elif codec in ("libvpx-vp9", "libvpx"):
                stream.options = {"crf": "30", "b": "0" if codec == "libvpx-vp9" else "2M"}
            elif codec not in ("gif", "ffv1"):
                stream.bit_rate = max(1_000_000, int(width * height * self.fps * 0.3))
        except Exception as exc:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
            raise DataError(f"video {self.path}: PyAV cannot write codec {codec!r} ({exc})") from exc
        self._container, self._stream = container, stream

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 H×W×3 RGB frame."""
        if self._closed:
            raise DataError(f"video {self.path}: write() after close()")
        frame = np.asarray(frame)
        index = self.frames_written
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise DataError(
                f"video {self.path}: frame {index} must be uint8 HxWx3, got {frame.dtype} {frame.shape}"
            )
        height, width = frame.shape[:2]
        if self._size is None:
            self._size = (height, width)
            self._open(height + height % 2, width + width % 2)
        elif (height, width) != self._size:
            raise DataError(
                f"video {self.path}: frame {index} has size {(height, width)} but the video is {self._size}"
            )
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        if self._cv_writer is not None:
            self._cv_writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        else:
            import av

            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        self.frames_written += 1

    def _finish_backend(self) -> None:
        try:
            if self._cv_writer is not None:
                self._cv_writer.release()
            elif self._container is not None:
                try:
                    for packet in self._stream.encode(None):
                        self._container.mux(packet)
                finally:
                    self._container.close()
        finally:
            self._cv_writer = self._container = self._stream = None

    def close(self) -> None:
        """Finish the file and move it into place; raises (leaving nothing) when no frame was written."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish_backend()
            if self.frames_written == 0:
                raise DataError(f"video {self.path}: no frames were written")
        except BaseException as exc:
            self._discard(exc)
            raise
        self._atomic.close()  # os.replace(tmp, path)
        log.debug("wrote %d frames to %s", self.frames_written, self.path)

    def abort(self) -> None:
        """Stop writing and delete the partial file; ``path`` is left untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            with contextlib.suppress(Exception):
                self._finish_backend()
        finally:
            self._discard(DataError(f"video {self.path}: aborted"))

    def _discard(self, exc: BaseException) -> None:
        """Unwind atomic_path with an error, so it deletes the temporary file instead of moving it."""
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)


def _pyav_format(suffix: str) -> str | None:
    """Container format name for PyAV (None: guess from the extension)."""
    return {".mkv": "matroska", ".webm": "webm", ".m4v": "mp4"}.get(suffix)
