"""Segment a video file or an image folder online from a first-frame mask (``ovsnet-video``'s library half).

The video is decoded, segmented and written one frame at a time (never held in memory): per-frame indexed
PNGs in ``OUT/masks/`` (named like the input images for a folder, ``00000.png``... for a video file), an
overlay video ``OUT/overlay.mp4``, ``OUT/path_timeline.png`` (the cascade path per object and frame) and
``OUT/summary.json`` (frames, fps, path counts, per-stage timings). PNG writes are atomic and the overlay
video is moved into place only at the end, so a crash mid-video keeps every mask already written and never
leaves a truncated video.

``evaluate.py task=video`` and the ``ovsnet-video`` command (:mod:`ovsnet.cli.video`) call
:func:`segment_video`; :func:`check_video_inputs` lets both refuse bad input before a slow checkpoint load.
A live source (a camera index such as ``0``, or a stream URL: see :func:`ovsnet.data.video_reader.iter_video_frames`)
never ends on its own: ``max_frames`` bounds it, Ctrl-C stops it with every mask so far on disk.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ovsnet.data.io import DataError, list_frames, read_label_map
from ovsnet.data.sequence import object_ids_of
from ovsnet.data.video_reader import VideoWriter, iter_video_frames, live_source, video_info
from ovsnet.inference.flow import FlowEstimator, build_flow
from ovsnet.inference.runner import DONE_MARKER, SequenceResult, segment_sequence
from ovsnet.inference.segmenter import VideoSegmenter
from ovsnet.inference.settings import InferenceSettings
from ovsnet.utils import autocast_dtype, remove_stale_temporaries, write_json_atomic
from ovsnet.viz.overlays import overlay as overlay_frame

__all__ = ["DEFAULT_FPS", "SUMMARY_NAME", "check_video_inputs", "segment_video"]

logger = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # overlay frame rate for image folders, whose frames carry no rate
MASKS_DIR, OVERLAY_NAME, TIMELINE_NAME, SUMMARY_NAME = (
    "masks",
    "overlay.mp4",
    "path_timeline.png",
    "summary.json",
)


def _first_mask(first_mask: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, str]:
    """The first-frame label map and a name for messages; an empty mask is a :class:`DataError`."""
    if isinstance(first_mask, np.ndarray):
        mask, name = first_mask, "the first-frame mask array"
    else:
        mask, name = read_label_map(first_mask), f"first-frame mask {first_mask}"
    if mask.ndim != 2:
        raise DataError(f"{name} must be an HxW label map, got shape {mask.shape}")
    if not object_ids_of(mask):
        raise DataError(
            f"{name} is empty: it holds no object ids (only background 0 / void 255); "
            "paint each object with its id 1..K"
        )
    return mask.astype(np.uint8, copy=False), name


VideoSource = Path | str | int  # a file or folder, or a live source (camera index, stream URL)


def _source(video: str | os.PathLike | int) -> VideoSource:
    """A camera index or URL as such (``"0"`` that is no existing path is camera 0), anything else a Path."""
    live = live_source(video)
    return live if live is not None else Path(video)


def _source_name(video: VideoSource) -> str:
    return (
        video.stem if isinstance(video, Path) else (f"camera{video}" if isinstance(video, int) else "stream")
    )


def _open_inputs(
    video: VideoSource, first_mask: str | os.PathLike | np.ndarray
) -> tuple[np.ndarray, np.ndarray, Iterator[np.ndarray]]:
    """The first mask, the first frame and the opened frame stream (frame 0 included), all checked."""
    mask, mask_name = _first_mask(first_mask)
    frames = iter_video_frames(video)  # opens the source and decodes frame 0, or raises DataError
    first = next(frames, None)
    if first is None:
        raise DataError(f"video {video} holds no frames")
    if mask.shape != first.shape[:2]:
        _close(frames)
        raise DataError(
            f"{mask_name} is {mask.shape[1]}x{mask.shape[0]} (WxH) but the frames of {video} are "
            f"{first.shape[1]}x{first.shape[0]}; the mask must annotate the first frame at its size"
        )
    return mask, first, frames


def _close(frames: Iterator[np.ndarray]) -> None:
    close = getattr(frames, "close", None)
    if close is not None:
        close()


def check_video_inputs(
    video: str | os.PathLike | int, first_mask: str | os.PathLike | np.ndarray
) -> tuple[int, int]:
    """Open the video and the first mask and check them (no model needed); returns the frame size (H, W).

    Raises the same :class:`DataError` as :func:`segment_video` would, so bad input fails before a slow
    checkpoint load.
    """
    _, first, frames = _open_inputs(_source(video), first_mask)
    _close(frames)
    return first.shape[0], first.shape[1]


def _frame_names(video: VideoSource) -> list[str] | None:
    """Input image names for a folder (masks are named like the frames); ``None`` for a video or live source."""
    return [p.stem for p in list_frames(video)] if isinstance(video, Path) and video.is_dir() else None


def _clear_outputs(out: Path) -> None:
    """Drop the outputs of an earlier run so the folder only ever describes this one (even after a crash)."""
    masks_dir = out / MASKS_DIR
    stale = sorted(masks_dir.glob("*.png")) if masks_dir.is_dir() else []
    if stale:
        logger.warning("removing %d masks of an earlier run from %s", len(stale), masks_dir)
    for path in [
        *stale,
        masks_dir / DONE_MARKER,
        out / OVERLAY_NAME,
        out / TIMELINE_NAME,
        out / SUMMARY_NAME,
    ]:
        path.unlink(missing_ok=True)
    for name in (OVERLAY_NAME, TIMELINE_NAME, SUMMARY_NAME):  # a killed run's unfinished writes
        remove_stale_temporaries(out / name)


def _summary(
    result: SequenceResult,
    video: VideoSource,
    out: Path,
    *,
    device: str,
    flow: str,
    config: InferenceSettings,
    autocast: torch.dtype | None,
    appearance_dtype: str | None,
    overlay_path: Path | None,
    overlay_fps: float | None,
) -> dict[str, Any]:
    frames = max(result.num_frames, 1)
    return {
        "video": str(video),
        "frames": result.num_frames,
        "seconds": result.seconds,
        "fps": result.fps,
        "path_counts": dict(result.path_counts),
        "detected_frames": result.detected_frames,
        "timings": dict(result.timings),
        "timings_ms_per_frame": {k: 1000.0 * v / frames for k, v in result.timings.items()},
        "device": device,
        "flow": flow,
        "autocast": str(autocast).replace("torch.", "") if autocast is not None else None,
        # inference.appearance.precision as this machine resolved it ("auto": bfloat16 only with AMX)
        "appearance_dtype": appearance_dtype,
        "inference": asdict(config),
        "masks_dir": str(out / MASKS_DIR),
        "overlay": str(overlay_path) if overlay_path is not None else None,
        "overlay_fps": overlay_fps,
    }


def segment_video(
    model: Any,
    video: str | os.PathLike | int,
    first_mask: str | os.PathLike | np.ndarray,
    out_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    flow: str | FlowEstimator = "dis",
    cascade_config: InferenceSettings | None = None,
    overlay: bool = True,
    autocast: str | torch.dtype | None = None,
    fps: float | None = None,
    progress: bool = True,
    max_frames: int | None = None,
    summary_extra: Mapping[str, Any] | None = None,
) -> SequenceResult:
    """Segment a video file or image folder online into ``out_dir`` (masks/, overlay.mp4, path_timeline.png,
    summary.json) and return the runner's :class:`SequenceResult`.

    ``model`` follows the OVSNet eval contract; ``flow`` is a backend name or an estimator; ``fps`` is the
    overlay video's frame rate (default: the input's, else 25). ``video`` may be a camera index or a stream
    URL; ``max_frames`` stops after that many frames (the first included). ``summary_extra`` is added to
    summary.json (the CLI's backend and preset). Bad input raises :class:`DataError`: an unreadable or
    empty video, frames changing size, an empty first mask, or one whose size differs from the frames.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    video, out = _source(video), Path(out_dir)
    mask, first, frames = _open_inputs(video, first_mask)
    stream: Iterator[np.ndarray] = itertools.chain([first], frames)
    if max_frames is not None:
        stream = itertools.islice(stream, max_frames)
    names = _frame_names(video)
    config = cascade_config or InferenceSettings()
    dtype = autocast_dtype(autocast, device)
    estimator = build_flow(flow) if isinstance(flow, str) else flow
    segmenter = VideoSegmenter(model, estimator, config, device=device, autocast_dtype=dtype)
    masks_dir = out / MASKS_DIR
    _clear_outputs(out)
    overlay_path = overlay_fps = None
    logger.info("segmenting %s (%d objects) into %s", video, len(object_ids_of(mask)), out)
    if overlay:
        overlay_path = out / OVERLAY_NAME
        file = isinstance(video, Path) and video.is_file()  # a camera is not opened twice for its rate
        overlay_fps = float(fps or (video_info(video)[1] if file else None) or DEFAULT_FPS)
        with VideoWriter(overlay_path, overlay_fps) as writer:
            result = segment_sequence(
                segmenter,
                stream,
                masks_dir,
                first_mask=mask,
                frame_names=names,
                progress=progress,
                on_result=lambda frame, labels: writer.write(overlay_frame(frame, labels)),
            )
    else:
        result = segment_sequence(
            segmenter, stream, masks_dir, first_mask=mask, frame_names=names, progress=progress
        )
    _close(frames)  # a live source stopped by max_frames is released here
    result.name = _source_name(video)
    from ovsnet.viz.plots import path_timeline  # matplotlib, loaded only once a video is done

    path_timeline(result.decisions, out / TIMELINE_NAME, title=f"{result.name}: association path")
    summary = _summary(
        result,
        video,
        out,
        device=str(device),
        flow=flow if isinstance(flow, str) else type(flow).__name__,
        config=config,
        autocast=dtype,
        appearance_dtype=segmenter.appearance_dtype,
        overlay_path=overlay_path,
        overlay_fps=overlay_fps,
    )
    summary.update(summary_extra or {})
    write_json_atomic(out / SUMMARY_NAME, summary)
    logger.info(
        "%d frames at %.1f fps; paths %s; results in %s",
        result.num_frames,
        result.fps,
        result.path_counts,
        out,
    )
    return result
