"""Resident memory over a long stream: the segmenter's state must be O(1) in video length.

Streams ``--frames`` (default 10,000) small synthetic frames through a VideoSegmenter with a tiny random
model and samples the process RSS (psutil) every ``--every`` frames. Object 2 leaves for 20 of every 100
frames; a random model's ~10 candidates per frame always give the IoU or Re-ID path a match, so those two
paths (and the Re-ID banks, filled to their bound) carry the stream. The decision log is kept whole unless
``--decision-history N`` bounds it, as a live stream should (it grows by ~0.2 KB a frame).
Target: growth after warm-up < 50 MB.

    python bench/long_video.py --quick       # 200 frames
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import psutil
import torch
from rich.console import Console
from tqdm import tqdm

from ovsnet.data.io import atomic_path
from ovsnet.inference.segmenter import VideoSegmenter

ROOT = Path(__file__).resolve().parents[1]
MB = 1024.0 * 1024.0


def stream(
    num_frames: int, height: int, width: int, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame, labels) of two squares bouncing in separate halves; object 2 leaves for 20 of every 100 frames."""
    rng = np.random.default_rng(seed)
    background = cv2.resize(
        rng.integers(0, 70, (height // 4, width // 4, 3), dtype=np.uint8), (width, height)
    )
    side = max(6, min(height // 2, width) // 2)  # each object bounces in its own half: no overlaps
    textures = [rng.integers(0, 60, (side, side, 3), dtype=np.uint8) for _ in range(2)]
    textures[0][..., 0] += 180
    textures[1][..., 1] += 180
    for t in range(num_frames):
        frame, labels = background.copy(), np.zeros((height, width), np.uint8)
        for k, tex in enumerate(textures):
            if k == 1 and 60 <= t % 100 < 80:
                continue
            span_y, span_x = height // 2 - side, width - side
            y = k * (height // 2) + abs((t * (1 + k) + 7 * k) % (2 * span_y) - span_y)
            x = abs((t * (2 - k) + 13 * k) % (2 * span_x) - span_x)
            frame[y : y + side, x : x + side] = tex
            labels[y : y + side, x : x + side] = k + 1
        yield frame, labels


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 frames: proves the script runs")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500, help="sample RSS every N frames")
    parser.add_argument("--warmup", type=int, default=100, help="frames before the baseline RSS sample")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--decision-history", type=int, default=None, help="keep the last N frames' decisions (default: all)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "long_video.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.every, args.warmup = 200, 50, 50
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from ovsnet.models.ovsnet import build_ovsnet

    # random weights score every proposal near 0.5: cap the detections, and use narrow heads, so a frame
    # costs milliseconds (the memory under test is the segmenter's state: it does not depend on the number
    # of candidates or the widths of the layers)
    model = build_ovsnet(
        backbone=args.backbone,
        min_size=args.height,
        max_size=args.width,
        box_detections_per_img=10,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=30,
        fpn_channels=64,
        mask_head_layers=[64, 64],
        box_head_dim=256,
        reid_hidden_dim=64,
        mga_channels=16,
        mga_size=48,
    )
    segmenter = VideoSegmenter(model, decision_history=args.decision_history)
    process = psutil.Process()
    samples: list[tuple[int, float]] = []
    baseline = None
    start = time.perf_counter()
    frames = tqdm(
        stream(args.frames, args.height, args.width), total=args.frames, unit="frame", mininterval=5
    )
    for index, (frame, labels) in enumerate(frames):
        if index == 0:
            segmenter.start(frame, labels)
        else:
            segmenter.step(frame)
        if index + 1 == args.warmup:
            baseline = process.memory_info().rss / MB
        if (index + 1) % args.every == 0 or index + 1 == args.frames:
            samples.append((index + 1, process.memory_info().rss / MB))
            frames.set_postfix(rss_mb=f"{samples[-1][1]:.0f}")
    seconds = time.perf_counter() - start
    baseline = baseline if baseline is not None else samples[0][1]
    growth = max(rss for _, rss in samples) - baseline
    results = {
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "backbone": args.backbone,
        "decision_history": args.decision_history,
        "quick": args.quick,
        "seconds": seconds,
        "fps": args.frames / seconds,
        "baseline_rss_mb": baseline,
        "final_rss_mb": samples[-1][1],
        "growth_mb": growth,
        "meets_target": growth < 50.0,
        "samples": [{"frame": f, "rss_mb": r} for f, r in samples],
        "path_counts": {k: int(v) for k, v in segmenter.path_counts.items()},
        "bank_sizes": {str(k): len(b) for k, b in segmenter.banks.items()},
    }
    results["markdown"] = (
        f"| frames | size | fps | RSS after {args.warmup} frames (MB) | final RSS (MB) | growth (MB) | target < 50 MB |\n"
        f"|---|---|---|---|---|---|---|\n| {args.frames} | {args.height}x{args.width} | {results['fps']:.1f} | "
        f"{baseline:.1f} | {samples[-1][1]:.1f} | {growth:.1f} | {'yes' if results['meets_target'] else 'no'} |\n\n"
        f"Paths taken: {results['path_counts']}."
    )
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    Console().print(results["markdown"])
    return results


if __name__ == "__main__":
    main()
