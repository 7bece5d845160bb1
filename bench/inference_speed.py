"""One-pass inference speed: VideoSegmenter.step vs a bare torchvision Mask R-CNN forward, per stage.

Random weights (speed does not depend on them), a synthetic 480x854 video with 3 moving textured objects.
Targets: whole step <= 1.25x the bare detector; flow + cascade + merge <= 10 ms per frame.

    python bench/inference_speed.py            # full: 480x854, resnet50 + mobilenet_v3_large
    python bench/inference_speed.py --quick    # tiny run proving the script works
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from model_speed import keep_all_proposals
from rich.console import Console
from rich.table import Table

from ovsnet.data.io import write_label_map
from ovsnet.hydra_utils import compose_config
from ovsnet.inference.flow import build_flow
from ovsnet.inference.segmenter import STAGES, VideoSegmenter
from ovsnet.inference.settings import resolve
from ovsnet.utils import resolve_device, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
OVERHEAD_STAGES = ("flow", "cascade", "merge")


def synthetic_video(
    num_frames: int, height: int, width: int, objects: int, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames of ``objects`` textured squares moving over a textured background, and frame 0's labels."""
    rng = np.random.default_rng(seed)
    background = cv2.resize(
        rng.integers(0, 90, (height // 8, width // 8, 3), dtype=np.uint8), (width, height)
    )
    side = max(8, min(height, width) // 5)
    textures = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(objects)]
    starts = [
        (int(rng.integers(0, height - side)), int(rng.integers(0, width - side))) for _ in range(objects)
    ]
    speeds = [(int(rng.integers(-3, 4)), int(rng.integers(-4, 5))) for _ in range(objects)]
    frames, first = [], np.zeros((height, width), np.uint8)
    for t in range(num_frames):
        frame = background.copy()
        for k, ((y0, x0), (vy, vx), tex) in enumerate(zip(starts, speeds, textures, strict=True)):
            y = int(np.clip(y0 + vy * t, 0, height - side))
            x = int(np.clip(x0 + vx * t, 0, width - side))
            frame[y : y + side, x : x + side] = tex
            if t == 0:
                first[y : y + side, x : x + side] = k + 1
        frames.append(frame)
    return frames, first


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_detector(height: int, width: int, device: torch.device) -> Callable[[np.ndarray], object]:
    """A bare torchvision ``maskrcnn_resnet50_fpn`` forward on one RGB frame (the reference)."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=height, max_size=width)
    model = keep_all_proposals(model).eval().to(device)

    def forward(frame: np.ndarray) -> object:
        with torch.inference_mode():
            return model([torch.from_numpy(frame).to(device).permute(2, 0, 1).float() / 255.0])

    return forward


def time_segmenter(
    backbone: str,
    frames: list[np.ndarray],
    first: np.ndarray,
    device: torch.device,
    warmup: int,
    bare: Callable[[np.ndarray], object],
) -> dict[str, float]:
    """Per-frame seconds of the whole step and of each stage (plus result PNG writing as I/O).

    The bare detector runs on every frame just before the step, so a drift of the machine's speed during
    the run hits both alike (timed one after the other, the ratio moved by a third on these cores).
    """
    from ovsnet.models.ovsnet import build_ovsnet

    height, width = first.shape
    model = build_ovsnet(backbone=backbone, min_size=height, max_size=width)
    keep_all_proposals(model.detector)  # both detectors run 1000 proposals (see bench/model_speed.py)
    # Random weights give low, flat scores: keep every candidate (the cascade sees ~100, its worst case) and
    # never drop objects, so MGA runs for every object on every frame as it would with a trained model.
    # the paper's cascade (every candidate can pass the IoU path: its worst case) with the fast flow
    # (inference=fast); the default DIS medium flow costs about 15 ms more per frame at 480p
    paper = compose_config("evaluate.yaml", ["inference=paper"]).inference
    config = resolve(paper, overrides={"cascade.min_candidate_score": 0.0, "cascade.max_flow_streak": None})
    flow = build_flow("dis", preset="ultrafast", scale=0.5, max_height=None)
    segmenter = VideoSegmenter(model, flow, config=config, device=device)
    segmenter.start(frames[0], first)
    for frame in frames[1 : 1 + warmup]:
        bare(frame)
        segmenter.step(frame)
    segmenter.timings = dict.fromkeys(STAGES, 0.0)
    timed = frames[1 + warmup :]
    io = bare_total = total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for index, frame in enumerate(timed):
            t0 = time.perf_counter()
            bare(frame)
            _sync(device)
            t1 = time.perf_counter()
            labels = segmenter.step(frame)
            t2 = time.perf_counter()
            write_label_map(Path(tmp) / f"{index:05d}.png", labels)
            t3 = time.perf_counter()
            bare_total, io, total = bare_total + t1 - t0, io + t3 - t2, total + t3 - t1
    n = max(1, len(timed))
    out = {f"{stage}_s": segmenter.timings[stage] / n for stage in STAGES}
    out.update(
        io_s=io / n,
        step_s=(total - io) / n,
        total_s=total / n,
        fps=n / total,
        bare_s=bare_total / n,
        paths={k: int(v) for k, v in segmenter.path_counts.items()},
    )
    return out


def markdown(results: dict) -> str:
    lines = [
        "| backbone | fps | step ms | detect | flow | cascade | MGA | merge | I/O | bare ms | step / bare | "
        "flow+cascade+merge ms |",
        "|---" * 12 + "|",
    ]
    for name, r in results["segmenter"].items():
        ms = {k: 1e3 * r[f"{k}_s"] for k in (*STAGES, "io", "step")}
        lines.append(
            f"| {name} | {r['fps']:.1f} | {ms['step']:.1f} | "
            + " | ".join(f"{ms[s]:.1f}" for s in (*STAGES, "io"))
            + f" | {1e3 * r['bare_s']:.1f} | {r['ratio_to_bare']:.2f} | {r['overhead_ms']:.2f} |"
        )
    lines.append(
        f"\nbare ms: a bare `maskrcnn_resnet50_fpn` forward at {results['height']}x{results['width']} on "
        f"{results['device']}, run on each frame just before that frame's step."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny frames and few steps: proves the script runs"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "inference_speed.json")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30, help="timed frames per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--backbones", default="resnet50,mobilenet_v3_large")
    parser.add_argument("--device", default="auto", help="auto: cuda when visible, else cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = parser.parse_args(argv)
    if args.quick:
        args.height, args.width, args.frames, args.warmup = 120, 214, 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    frames, first = synthetic_video(1 + args.warmup + args.frames, args.height, args.width, args.objects)
    bare = bare_detector(args.height, args.width, device)
    results: dict = {
        "height": args.height,
        "width": args.width,
        "objects": args.objects,
        "frames": args.frames,
        "device": str(device),
        "quick": args.quick,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "segmenter": {},
    }
    for backbone in args.backbones.split(","):
        r = time_segmenter(backbone, frames, first, device, args.warmup, bare)
        r["ratio_to_bare"] = r["step_s"] / r["bare_s"]
        r["overhead_ms"] = 1e3 * sum(r[f"{s}_s"] for s in OVERHEAD_STAGES)
        r["meets_step_target"] = r["ratio_to_bare"] <= 1.25
        r["meets_overhead_target"] = r["overhead_ms"] <= 10.0
        results["segmenter"][backbone] = r
    results["markdown"] = markdown(results)
    write_json_atomic(args.out, results)
    _show(results)
    return results


def _show(results: dict) -> None:
    table = Table(title=f"inference speed {results['height']}x{results['width']} ({results['device']})")
    for column in ("backbone", "fps", "step ms", "bare ms", "ratio", "flow+cascade+merge ms"):
        table.add_column(column)
    for name, r in results["segmenter"].items():
        table.add_row(
            name,
            f"{r['fps']:.1f}",
            f"{1e3 * r['step_s']:.1f}",
            f"{1e3 * r['bare_s']:.1f}",
            f"{r['ratio_to_bare']:.2f}",
            f"{r['overhead_ms']:.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
