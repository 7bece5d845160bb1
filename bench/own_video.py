"""A new user's first command, measured: ``ovsnet-video --video <mp4> --first-mask <png>`` with no checkpoint
(optical flow + the appearance memory, no network), scored against the ground truth beside DIS optical-flow
propagation of the same first mask on the same decoded frames.

    python bench/own_video.py                        # photo-realistic videos the project generates
    python bench/own_video.py --davis-root ../shared/data/davis2016-train --split train \\
        --sequences bmx-bumps,boat,dog-agility,drift-turn,mallard-fly,tennis

Every video is written as an mp4 (as a user's would be, lossy) plus its first annotation as a PNG;
``ovsnet-video`` runs as a subprocess, exactly as typed in the README. Both methods are scored on the
frames the mp4 decodes to, with the DAVIS measures (first and last frames left out, as the official tool).
The table goes to the terminal and ``--out``/own_video.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ovsnet.data.davis import detect_davis_layout, load_davis
from ovsnet.data.io import read_label_map, write_label_map
from ovsnet.data.sequence import VideoSequence
from ovsnet.data.synthetic import generate_dataset
from ovsnet.data.video_reader import VideoWriter, iter_video_frames
from ovsnet.inference.flow import build_flow
from ovsnet.inference.propagation import FlowPropagator
from ovsnet.metrics.davis import evaluate_label_maps
from ovsnet.utils import write_json_atomic

VIDEO_FPS = 24.0


def photo_sequences(work: Path, num_videos: int, frames: int, size: tuple[int, int], seed: int) -> list:
    """Photo-realistic videos from the project's generator (both splits: nothing here was trained)."""
    root = generate_dataset(
        work / "photo_videos",
        num_sequences=num_videos,
        num_frames=frames,
        size=size,
        seed=seed,
        style="photo",
    )
    return [s for split in ("train", "val") for s in load_davis(root, year=2017, split=split)]


def davis_sequences(root: Path, split: str, names: list[str] | None) -> list:
    year, resolution = detect_davis_layout(root, split)
    sequences = load_davis(root, year=year, split=split, resolution=resolution)
    if names:
        missing = sorted(set(names) - {s.name for s in sequences})
        if missing:
            raise SystemExit(f"--sequences: not in {root} split {split}: {missing}")
        sequences = [s for s in sequences if s.name in names]
    return sequences


def even(image: np.ndarray) -> np.ndarray:
    """Cropped to even height and width: 4:2:0 codecs pad odd sizes (DAVIS 240p is 427 wide), which would
    make the mp4's frames one pixel larger than the first mask."""
    return image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]


def write_inputs(sequence: VideoSequence, folder: Path) -> tuple[Path, Path]:
    """The video as an mp4 and its first annotation as a PNG, as a user would hand them over."""
    folder.mkdir(parents=True, exist_ok=True)
    video, mask = folder / f"{sequence.name}.mp4", folder / f"{sequence.name}_first.png"
    with VideoWriter(video, VIDEO_FPS) as writer:
        for frame in sequence.frames():
            writer.write(even(frame))
    write_label_map(mask, even(sequence.label_map(0)))
    return video, mask


def ground_truth(sequence: VideoSequence, count: int) -> list[np.ndarray]:
    """The first ``count`` annotations, cropped as :func:`write_inputs` crops the frames."""
    return [even(sequence.label_map(i)) for i in range(count)]


def flow_propagation(frames: list[np.ndarray], first: np.ndarray) -> tuple[list[np.ndarray], float]:
    """DIS propagation of the first mask over the decoded frames, and its own fps (first frame excluded)."""
    tracker = FlowPropagator(build_flow("dis"))  # threads: the caller's torch / OpenCV settings
    tracker.start(frames[0], first)
    start = time.perf_counter()
    masks = [first] + [tracker.step(frame) for frame in frames[1:]]
    return masks, (len(frames) - 1) / max(time.perf_counter() - start, 1e-9)


def run_ovsnet_video(
    video: Path, mask: Path, out: Path, threads: int, extra: list[str] | None = None
) -> tuple[list[np.ndarray], dict]:
    """``ovsnet-video`` as a user types it (``extra``: more options); its masks and summary.json."""
    command = [
        str(Path(sys.executable).with_name("ovsnet-video")),
        *("--video", str(video), "--first-mask", str(mask), "--out", str(out), "--threads", str(threads)),
        *(extra or []),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    masks = [read_label_map(p) for p in sorted((out / "masks").glob("*.png"))]
    return masks, json.loads((out / "summary.json").read_text())


def object_scores(
    name: str, ground_truth: list[np.ndarray], masks: list[np.ndarray]
) -> dict[str, list[float]]:
    """Per-object J-Mean and F-Mean of one video (the official tool averages objects over the dataset)."""
    stats = evaluate_label_maps(name, ground_truth, masks).statistics()
    return {"J": [float(v) for v in stats["J-Mean"]], "F": [float(v) for v in stats["F-Mean"]]}


def j_and_f(objects: list[dict[str, list[float]]]) -> float:
    return (
        float(np.mean([v for o in objects for v in o["J"]]) + np.mean([v for o in objects for v in o["F"]]))
        / 2
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--davis-root", type=Path, default=None, help="DAVIS-layout folder (default: generate)"
    )
    parser.add_argument("--split", default="val")
    parser.add_argument("--sequences", default=None, help="comma-separated names within the split")
    parser.add_argument("--num-videos", type=int, default=8, help="generated photo videos")
    parser.add_argument("--frames", type=int, default=30, help="frames per generated video")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 427), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("bench_output/own_video"))
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: <work>/own_video.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.davis_root is not None:
        names = [n for n in (args.sequences or "").split(",") if n]
        sequences = davis_sequences(args.davis_root, args.split, names)
        source = f"{args.davis_root} ({args.split})"
    else:
        sequences = photo_sequences(args.work, args.num_videos, args.frames, tuple(args.size), args.seed)
        source = f"{len(sequences)} generated photo-realistic videos, {args.size[0]}x{args.size[1]}"
    rows = []
    for sequence in sequences:
        video, mask = write_inputs(sequence, args.work / "inputs")
        frames = list(iter_video_frames(video))
        truth = ground_truth(sequence, len(frames))
        ours, summary = run_ovsnet_video(
            video, mask, args.work / "ovsnet_video" / sequence.name, args.threads
        )
        flow_masks, flow_fps = flow_propagation(frames, truth[0])
        scored = {
            "ovsnet_video": object_scores(sequence.name, truth, ours),
            "flow": object_scores(sequence.name, truth, flow_masks),
        }
        rows.append(
            {
                "sequence": sequence.name,
                "frames": len(frames),
                **{method: j_and_f([objects]) for method, objects in scored.items()},
                "objects": scored,
                "ovsnet_video_fps": float(summary["fps"]),
                "flow_fps": flow_fps,
                "paths": summary.get("path_counts"),
            }
        )
    mean = {method: j_and_f([r["objects"][method] for r in rows]) for method in ("ovsnet_video", "flow")}
    mean.update({k: float(np.mean([r[k] for r in rows])) for k in ("ovsnet_video_fps", "flow_fps")})
    table = Table(title=f"ovsnet-video without a checkpoint vs flow propagation: {source}")
    for column in ("video", "frames", "ovsnet-video J&F", "flow J&F", "ovsnet-video fps", "flow fps"):
        table.add_column(column, justify="left" if column == "video" else "right")
    for r in rows + [{"sequence": "mean", "frames": sum(r["frames"] for r in rows), **mean}]:
        table.add_row(
            r["sequence"],
            str(r["frames"]),
            *(f"{r[k]:.3f}" for k in ("ovsnet_video", "flow")),
            *(f"{r[k]:.1f}" for k in ("ovsnet_video_fps", "flow_fps")),
        )
    console = Console(width=140)
    console.print(table)
    result = {"source": source, "threads": args.threads, "mean": mean, "videos": rows}
    out = args.out or args.work / "own_video.json"
    write_json_atomic(out, result)
    console.print(
        f"ovsnet-video minus flow propagation: {mean['ovsnet_video'] - mean['flow']:+.3f} J&F; {out}"
    )
    return result


if __name__ == "__main__":
    main()
