"""``ovsnet-video``: segment a video file or an image folder online from a first-frame mask.

The video is decoded, segmented and written one frame at a time (never held in memory): per-frame indexed
PNGs in ``OUT/masks/`` (named like the input images for a folder, ``00000.png``... for a video file), an
overlay video ``OUT/overlay.mp4``, ``OUT/path_timeline.png`` (the cascade path per object and frame) and
``OUT/summary.json`` (frames, fps, path counts, per-stage timings). PNG writes are atomic and the overlay
video is moved into place only at the end, so a crash mid-video keeps every mask already written and never
leaves a truncated video.

:func:`segment_video` is the reusable part (``evaluate.py task=video`` calls it); :func:`main` only parses
arguments, loads the checkpoint and turns bad input into clear errors.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.logging import RichHandler

from ovsnet.data.io import DataError, atomic_path, list_frames, read_label_map
from ovsnet.data.sequence import object_ids_of
from ovsnet.data.video import VideoWriter, iter_video_frames, video_info
from ovsnet.inference.cascade import CascadeConfig
from ovsnet.inference.flow import FlowEstimator, build_flow
from ovsnet.inference.runner import DONE_MARKER, SequenceResult, segment_sequence
from ovsnet.inference.segmenter import VideoSegmenter
from ovsnet.models.checkpoint import CheckpointError, load_model
from ovsnet.viz import overlay as overlay_frame
from ovsnet.viz import path_timeline

__all__ = ["AUTOCAST_DTYPES", "DEFAULT_FPS", "build_parser", "check_video_inputs", "main", "segment_video"]

logger = logging.getLogger(__name__)

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}
DEFAULT_FPS = 25.0  # overlay frame rate for image folders, whose frames carry no rate
MASKS_DIR, OVERLAY_NAME, TIMELINE_NAME, SUMMARY_NAME = (
    "masks",
    "overlay.mp4",
    "path_timeline.png",
    "summary.json",
)


def _autocast_dtype(autocast: str | torch.dtype | None) -> torch.dtype | None:
    if autocast is None or isinstance(autocast, torch.dtype):
        return autocast
    if autocast not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be one of {sorted(AUTOCAST_DTYPES)}, got {autocast!r}")
    return AUTOCAST_DTYPES[autocast]


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


def _open_inputs(
    video: Path, first_mask: str | os.PathLike | np.ndarray
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
    video: str | os.PathLike, first_mask: str | os.PathLike | np.ndarray
) -> tuple[int, int]:
    """Open the video and the first mask and check them (no model needed); returns the frame size (H, W).

    Raises the same :class:`DataError` as :func:`segment_video` would, so bad input fails before a slow
    checkpoint load.
    """
    _, first, frames = _open_inputs(Path(video), first_mask)
    _close(frames)
    return first.shape[0], first.shape[1]


def _frame_names(video: Path) -> list[str] | None:
    """Input image names for a folder (masks are named like the frames); ``None`` for a video file."""
    return [p.stem for p in list_frames(video)] if video.is_dir() else None


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


def _overlaid(
    frames: Iterator[np.ndarray], masks_dir: Path, names: Sequence[str] | None, writer: VideoWriter
) -> Iterator[np.ndarray]:
    """Pass frames through to the runner; once it asks for the next one, the previous mask is on disk, so
    read it back and append that frame's overlay to the video (one frame in memory at a time)."""
    for index, frame in enumerate(frames):
        yield frame
        name = names[index] if names is not None else f"{index:05d}"
        writer.write(overlay_frame(frame, read_label_map(masks_dir / f"{name}.png")))


def _summary(
    result: SequenceResult,
    video: Path,
    out: Path,
    *,
    device: str,
    flow: str,
    config: CascadeConfig,
    autocast: torch.dtype | None,
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
        "timings": dict(result.timings),
        "timings_ms_per_frame": {k: 1000.0 * v / frames for k, v in result.timings.items()},
        "device": device,
        "flow": flow,
        "autocast": str(autocast).replace("torch.", "") if autocast is not None else None,
        "cascade": asdict(config),
        "masks_dir": str(out / MASKS_DIR),
        "overlay": str(overlay_path) if overlay_path is not None else None,
        "overlay_fps": overlay_fps,
    }


def segment_video(
    model: Any,
    video: str | os.PathLike,
    first_mask: str | os.PathLike | np.ndarray,
    out_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    flow: str | FlowEstimator = "dis",
    cascade_config: CascadeConfig | None = None,
    overlay: bool = True,
    autocast: str | torch.dtype | None = None,
    fps: float | None = None,
    progress: bool = True,
) -> SequenceResult:
    """Segment a video file or image folder online into ``out_dir`` (masks/, overlay.mp4, path_timeline.png,
    summary.json) and return the runner's :class:`SequenceResult`.

    ``model`` follows the OVSNet eval contract; ``flow`` is a backend name or an estimator; ``fps`` is the
    overlay video's frame rate (default: the input's, else 25). Bad input raises :class:`DataError`: an
    unreadable or empty video, frames changing size, an empty first mask, or one whose size differs from
    the frames.
    """
    video, out = Path(video), Path(out_dir)
    mask, first, frames = _open_inputs(video, first_mask)
    stream = itertools.chain([first], frames)
    names = _frame_names(video)
    config = cascade_config or CascadeConfig()
    dtype = _autocast_dtype(autocast)
    estimator = build_flow(flow) if isinstance(flow, str) else flow
    segmenter = VideoSegmenter(model, estimator, config, device=device, autocast_dtype=dtype)
    masks_dir = out / MASKS_DIR
    _clear_outputs(out)
    overlay_path = overlay_fps = None
    logger.info("segmenting %s (%d objects) into %s", video, len(object_ids_of(mask)), out)
    if overlay:
        overlay_path = out / OVERLAY_NAME
        overlay_fps = float(fps or (video_info(video)[1] if video.is_file() else None) or DEFAULT_FPS)
        with VideoWriter(overlay_path, overlay_fps) as writer:
            result = segment_sequence(
                segmenter,
                _overlaid(stream, masks_dir, names, writer),
                masks_dir,
                first_mask=mask,
                frame_names=names,
                progress=progress,
            )
    else:
        result = segment_sequence(
            segmenter, stream, masks_dir, first_mask=mask, frame_names=names, progress=progress
        )
    result.name = video.stem
    path_timeline(result.decisions, out / TIMELINE_NAME, title=f"{video.name}: association path")
    summary = _summary(
        result,
        video,
        out,
        device=str(device),
        flow=flow if isinstance(flow, str) else type(flow).__name__,
        config=config,
        autocast=dtype,
        overlay_path=overlay_path,
        overlay_fps=overlay_fps,
    )
    with atomic_path(out / SUMMARY_NAME) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    logger.info(
        "%d frames at %.1f fps; paths %s; results in %s",
        result.num_frames,
        result.fps,
        result.path_counts,
        out,
    )
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovsnet-video",
        description="Segment a video file (mp4/avi/webm/...) or an image folder online with OVS-Net, "
        "from the first frame's mask (indexed PNG: 0 = background, 1..K = objects).",
    )
    parser.add_argument("--video", required=True, type=Path, help="video file or folder of frames")
    parser.add_argument("--first-mask", required=True, type=Path, help="label map of the first frame")
    parser.add_argument("--ckpt", required=True, type=Path, help="OVSNetModule checkpoint (.ckpt)")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load the checkpoint in full (torch.load weights_only=False), which can run code from the file: "
        "trusted files only (default: tensors, plain containers and OmegaConf configs only)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="default: cuda when a GPU is visible, else cpu",
    )
    parser.add_argument("--flow", choices=("dis", "farneback", "raft"), default="dis")
    parser.add_argument(
        "--rho-iou", type=float, default=None, help="IoU-path threshold (default: the checkpoint's, else 0.3)"
    )
    parser.add_argument(
        "--rho-reid",
        type=float,
        default=None,
        help="Re-ID distance threshold (default: the checkpoint's calibrated value, else 2.3)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help=f"overlay video frame rate (default: the input's, {DEFAULT_FPS:g} for folders)",
    )
    parser.add_argument("--autocast", choices=tuple(AUTOCAST_DTYPES), default="none")
    parser.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.video.exists():
        parser.error(f"--video {args.video}: no such file or folder")
    if not args.first_mask.is_file():
        parser.error(f"--first-mask {args.first_mask}: no such file")
    if not args.ckpt.is_file():
        parser.error(f"--ckpt {args.ckpt}: no such file")
    if args.fps is not None and args.fps <= 0:
        parser.error(f"--fps must be positive, got {args.fps}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns 0, or exits with a message on bad arguments or bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    # RichHandler shares rich's console with the progress bar, so log lines do not tear the bar
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(show_path=False)],
    )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        check_video_inputs(args.video, args.first_mask)  # fail fast, before the checkpoint loads
    except DataError as exc:
        parser.exit(1, f"ovsnet-video: error: {exc}\n")
    try:
        model = load_model(args.ckpt, trust=args.trust_checkpoint, trust_flag="--trust-checkpoint")
    except CheckpointError as exc:
        parser.error(f"--ckpt {args.ckpt}: {exc}")
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as exc:
        parser.error(f"--ckpt {args.ckpt}: cannot load an OVS-Net model from this checkpoint: {exc}")
    try:
        flow = build_flow(args.flow)
    except (ValueError, OSError) as exc:
        parser.error(f"--flow {args.flow}: {exc}")
    given = {k: v for k, v in (("rho_iou", args.rho_iou), ("rho_reid", args.rho_reid)) if v is not None}
    try:
        config = CascadeConfig(**{**getattr(model, "inference_settings", {}), **given})
    except (TypeError, ValueError) as exc:
        parser.error(f"--ckpt {args.ckpt}: bad inference settings: {exc}")
    try:
        segment_video(
            model,
            args.video,
            args.first_mask,
            args.out,
            device=device,
            flow=flow,
            cascade_config=config,
            overlay=not args.no_overlay,
            autocast=args.autocast,
            fps=args.fps,
            progress=not args.no_progress,
        )
    except DataError as exc:
        logger.error("%s", exc)
        parser.exit(1, f"ovsnet-video: error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
