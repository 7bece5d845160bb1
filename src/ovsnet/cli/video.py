"""``ovsnet-video``: segment a video file, an image folder or a camera online, from a first-frame mask.

Parses arguments, checks the inputs before the (slow) checkpoint load, and turns every bad input into one
line naming the file; the work is :func:`ovsnet.inference.video_job.segment_video`. Each preset runs
``conf/inference/<preset>.yaml`` on a model prepared for it by :mod:`ovsnet.inference.runtime` (BN folded, masks
only for usable candidates; ``realtime`` also sizes the proposal counts to a few objects); ``--backend onnx``
runs the network on ONNX Runtime (an exported ``--onnx model.onnx``, or the checkpoint exported on the fly).
The last line printed is the fps reached. Every usage or input error (a missing or unreadable file, a bad
video, mask, camera or checkpoint, a missing optional package) is one line and exit code 2, as ``evaluate.py``;
Ctrl-C is one line and exit code 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
from rich.logging import RichHandler

from ovsnet.data.io import DataError
from ovsnet.data.video_reader import live_source
from ovsnet.errors import EXIT_INPUT_ERROR, EXIT_INTERRUPTED
from ovsnet.inference.flow import FlowEstimator, build_flow
from ovsnet.inference.runtime import (
    BACKENDS,
    RuntimeSettings,
    for_onnx,
    load_backend,
    prepare_runtime,
    preset_runtime,
    set_threads,
)
from ovsnet.inference.settings import (
    CascadeSettings,
    InferenceSettings,
    ReIDSettings,
    checkpoint_settings,
    resolve,
)
from ovsnet.inference.video_job import DEFAULT_FPS, check_video_inputs, segment_video
from ovsnet.models.checkpoint import CheckpointError, read_hyperparameters
from ovsnet.utils import resolve_device

__all__ = ["AUTOCAST_CHOICES", "PRESETS", "build_parser", "main"]

logger = logging.getLogger(__name__)

AUTOCAST_CHOICES = ("none", "bf16", "fp16")
PRESETS = ("default", "fast", "realtime")
TRUST_FLAG = "--trust-checkpoint"

# how a first-frame mask is read (ovsnet.data.io.read_label_map), shown by --help
FIRST_MASK_HELP = """\
first-frame mask formats (--first-mask, read by ovsnet.data.io.read_label_map):
  indexed (palette) PNG   pixel values are object ids: 0 = background, 1..K = K objects,
                          255 = void (DAVIS 2017: ignored, never an object)
  grayscale PNG, 0/255    binary: every 255 (non-zero) pixel is object 1 (DAVIS 2016, SegTrack v2)
  grayscale PNG, 0/1      binary as well: object 1
  other grayscale values  the values are the object ids
  RGB PNG                 colours of the DAVIS palette only (object 1 = (128, 0, 0), ...)
The mask must have the frames' size and hold at least one object. The output masks use the same ids.

exit codes: 0 done, 2 usage or input error (one line naming the file or option), 130 interrupted."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovsnet-video",
        description="Segment a video file (mp4/avi/webm/...) or an image folder online with OVS-Net, "
        "from the first frame's mask (indexed PNG: 0 = background, 1..K = objects).",
        epilog=FIRST_MASK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--video",
        required=True,
        help="video file, folder of frames, camera index (0, 1, ...) or stream URL (rtsp://...)",
    )
    parser.add_argument(
        "--first-mask",
        required=True,
        type=Path,
        help="label map of the first frame: indexed PNG with ids 1..K (255 = void), or a binary 0/255 PNG "
        "(object 1); formats below",
    )
    parser.add_argument(
        "--ckpt",
        type=Path,
        default=None,
        help="checkpoint written by train.py (<run>/checkpoints/last.ckpt); without one (and without --onnx) no "
        "network is run: optical flow and the appearance memory alone segment the video",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="default: conf/inference/default.yaml (the detector on key frames); fast: the same with DIS "
        "ultrafast flow at half resolution (conf/inference/fast.yaml: 12-30%% faster at 854x480 by the "
        "CPU, 0.01 J&F less on held-out DAVIS videos); realtime: conf/inference/realtime.yaml with few "
        "proposals and detections. All run the model with BN folded and masks only for usable candidates "
        "(ovsnet.inference.runtime)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="onnx: the network on ONNX Runtime (pip install onnxruntime onnx); the exported --onnx model, "
        "else the --ckpt exported into OUT/onnx/ first. Default: onnx with --preset realtime (the faster "
        "path in bench/realtime_cpu.py) when onnxruntime and onnx are installed, else torch",
    )
    parser.add_argument("--onnx", type=Path, default=None, help="model.onnx from python -m ovsnet.export")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"CPU threads (default: {RuntimeSettings().threads} with --preset realtime, else torch's choice)",
    )
    parser.add_argument(
        "--max-frames", type=int, default=None, help="stop after N frames (a camera never ends on its own)"
    )
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
    parser.add_argument(
        "--flow",
        choices=("dis", "farneback", "raft"),
        default=None,
        help="optical flow (default: dis, or the preset's flow)",
    )
    parser.add_argument(
        "--rho-iou",
        type=float,
        default=None,
        help=f"IoU-path threshold, inference.cascade.rho_iou (default: the checkpoint's, else {CascadeSettings.rho_iou:g})",
    )
    parser.add_argument(
        "--rho-reid",
        type=float,
        default=None,
        help=f"Re-ID distance threshold, inference.reid.rho (default: the checkpoint's calibrated value, else "
        f"{ReIDSettings.rho:g})",
    )
    parser.add_argument(
        "--detect-every",
        type=int,
        default=None,
        help="run the detector on every N-th frame and on every frame while an object is lost, "
        "inference.detector.every (default: the preset's, 16; 1: every frame)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help=f"overlay video frame rate (default: the input's, {DEFAULT_FPS:g} for folders)",
    )
    parser.add_argument("--autocast", choices=AUTOCAST_CHOICES, default="none")
    parser.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _default_backend(args: argparse.Namespace) -> str:
    """ONNX Runtime for the realtime preset (faster than PyTorch at 240x427 on 2 cores), when it can run."""
    if args.onnx is not None:
        return "onnx"
    if args.preset != "realtime" or args.ckpt is None:
        return "torch"
    import importlib.util

    if all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx")):
        return "onnx"
    logger.info("--preset realtime: onnxruntime/onnx not installed, running on PyTorch")
    return "torch"


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if live_source(args.video) is None and not Path(args.video).exists():
        parser.error(f"--video {args.video}: no such file or folder (nor a camera index or URL)")
    if not args.first_mask.is_file():
        parser.error(f"--first-mask {args.first_mask}: no such file")
    if args.ckpt is not None and not args.ckpt.is_file():
        parser.error(f"--ckpt {args.ckpt}: no such file")
    if args.onnx is not None and args.backend != "onnx":
        parser.error("--onnx needs --backend onnx")
    if args.onnx is not None and not args.onnx.is_file():
        parser.error(f"--onnx {args.onnx}: no such file (export one with python -m ovsnet.export)")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.fps is not None and args.fps <= 0:
        parser.error(f"--fps must be positive, got {args.fps}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")


def _stored_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings calibrated for the network: the ONNX manifest's (``--onnx``), else the checkpoint's."""
    if args.onnx is not None:
        from ovsnet.inference.onnx_backend import onnx_settings

        return onnx_settings(args.onnx)
    return checkpoint_settings(args.ckpt, trust=args.trust_checkpoint)


def _cascade(
    preset: str, stored: dict[str, Any], given: dict[str, Any]
) -> tuple[InferenceSettings, FlowEstimator | None]:
    """The settings (:func:`~ovsnet.inference.settings.resolve`: the preset < the checkpoint's < command-line
    values) and the preset's flow (None: the default preset keeps ``--flow``'s default)."""
    if preset == "default":
        return resolve(None, stored, given), None
    from ovsnet.evaluation.settings import make_flow
    from ovsnet.hydra_utils import compose_config

    inference = compose_config("evaluate.yaml", [f"inference={preset}"]).inference
    return resolve(inference, stored, given), make_flow(inference.flow)


def _no_network(args: argparse.Namespace) -> bool:
    """Neither a checkpoint nor an ONNX model: flow and the appearance memory alone."""
    return args.ckpt is None and args.onnx is None


def _input_error(message: str) -> NoReturn:
    """One line on stderr and exit code 2: the convention of every usage and input error of this command."""
    sys.stderr.write(f"ovsnet-video: error: {message}\n")
    raise SystemExit(EXIT_INPUT_ERROR)


def _check_ovsnet_checkpoint(args: argparse.Namespace) -> None:
    """Refuse a checkpoint that stores no ``model_config`` (a torchvision state dict, another project's
    checkpoint) with what it is and what to do: the library's message asks for ``model_config=...``, an
    argument of ``evaluate.py`` and ``load_model`` that this command does not have."""
    hparams = read_hyperparameters(args.ckpt, trust=args.trust_checkpoint, trust_flag=TRUST_FLAG)
    if hparams.get("model_config") is not None:
        return
    what = "its hyper-parameters hold" if hparams else "it holds weights but"
    _input_error(
        f"--ckpt {args.ckpt}: not an OVS-Net checkpoint: {what} no model_config (the network's build settings "
        "that train.py stores), so the network cannot be rebuilt. Pass a checkpoint written by train.py "
        "(<run>/checkpoints/last.ckpt); to train from these weights (e.g. a torchvision Mask R-CNN): "
        f"python train.py model.model_config.checkpoint={args.ckpt}"
    )


def _load_network(args: argparse.Namespace, threads: int | None) -> Any:
    """The checkpoint's network on PyTorch, or on ONNX Runtime (exporting the checkpoint when no --onnx), both
    through :func:`~ovsnet.inference.runtime.load_backend`;
    :class:`~ovsnet.inference.no_network.NoNetwork` when there is neither."""
    if _no_network(args):
        from ovsnet.inference.no_network import NoNetwork

        return NoNetwork()
    if args.ckpt is not None:
        try:
            _check_ovsnet_checkpoint(args)
        except CheckpointError as exc:
            _input_error(f"--ckpt {args.ckpt}: {exc}")
    if args.backend == "torch":
        try:
            return load_backend(args.ckpt, "torch", trust=args.trust_checkpoint)
        except CheckpointError as exc:
            _input_error(f"--ckpt {args.ckpt}: {exc}")
        except (ValueError, KeyError, RuntimeError, OSError, TypeError) as exc:
            _input_error(f"--ckpt {args.ckpt}: cannot load an OVS-Net model from this checkpoint: {exc}")
    from ovsnet.inference.onnx_backend import import_onnxruntime

    try:
        import_onnxruntime()  # before a possibly long export
    except ImportError as exc:
        _input_error(f"--backend onnx: {exc}")
    onnx = args.onnx
    if onnx is None:
        from ovsnet.export import export_checkpoint

        try:
            onnx = export_checkpoint(args.ckpt, args.out / "onnx" / "model.onnx", trust=args.trust_checkpoint)
        except ImportError as exc:
            _input_error(f"--backend onnx: {exc}")
        except CheckpointError as exc:
            _input_error(f"--ckpt {args.ckpt}: {exc}")
        except (ValueError, KeyError, RuntimeError, OSError, TypeError) as exc:
            _input_error(f"--ckpt {args.ckpt}: cannot export this checkpoint to ONNX: {exc}")
    try:
        return load_backend(onnx, "onnx", threads=threads)
    except DataError as exc:
        _input_error(f"--onnx {onnx}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns 0, or exits with a message on bad arguments or bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.backend = args.backend or _default_backend(args)
    _check_args(parser, args)
    # RichHandler shares rich's console with the progress bar, so log lines do not tear the bar
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(show_path=False)],
    )
    device = resolve_device(args.device)
    if args.backend == "onnx" and device.type != "cpu":
        parser.error(f"--backend onnx runs on the CPU; drop --device {device}")
    try:
        check_video_inputs(args.video, args.first_mask)  # fail fast, before the checkpoint loads
    except DataError as exc:
        _input_error(str(exc))
    except KeyboardInterrupt:
        parser.exit(EXIT_INTERRUPTED, "ovsnet-video: interrupted\n")
    realtime = args.preset == "realtime"
    threads = args.threads if args.threads is not None else (RuntimeSettings().threads if realtime else None)
    set_threads(threads)
    model = _load_network(args, threads)
    source = f"--onnx {args.onnx}" if args.ckpt is None else f"--ckpt {args.ckpt}"
    given = {
        k: v
        for k, v in (
            ("cascade.rho_iou", args.rho_iou),
            ("reid.rho", args.rho_reid),
            ("detector.every", args.detect_every),
        )
        if v is not None
    }
    try:
        config, preset_flow = _cascade(args.preset, _stored_settings(args), given)
    except (TypeError, ValueError) as exc:
        parser.error(f"{source}: bad inference settings: {exc}")
    if _no_network(args):
        from ovsnet.inference.no_network import no_network_config

        config = no_network_config(config)
        logger.info("no --ckpt: no network is run; optical flow and the appearance memory segment the video")
    else:
        settings = preset_runtime(args.preset, threads)
        prepare_runtime(
            model,
            for_onnx(settings) if args.backend == "onnx" else settings,
            config.cascade.min_candidate_score,
        )
    try:
        flow = build_flow(args.flow or "dis") if args.flow or preset_flow is None else preset_flow
    except (ValueError, OSError) as exc:
        parser.error(f"--flow {args.flow}: {exc}")
    try:
        result = segment_video(
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
            max_frames=args.max_frames,
            summary_extra={
                "backend": args.backend,
                "preset": args.preset,
                "threads": threads,
                "network": not _no_network(args),
            },
        )
    except DataError as exc:
        _input_error(str(exc))
    except KeyboardInterrupt:
        parser.exit(
            EXIT_INTERRUPTED, f"ovsnet-video: interrupted; the masks written so far are in {args.out}\n"
        )
    how = "no network: flow + appearance memory" if _no_network(args) else f"backend {args.backend}"
    print(
        f"ovsnet-video: {result.num_frames} frames at {result.fps:.1f} fps "
        f"({how}, preset {args.preset}); results in {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
