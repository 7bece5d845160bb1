"""Real-video speed at DAVIS's 854x480: the ``default``, ``fast`` and ``realtime`` presets of ``ovsnet-video``
beside DIS optical-flow propagation of the first mask on the same frames, with the same threads, and (J&F
only beside them) copying the first mask and ``ovsnet-video`` without ``--ckpt`` (the same default
pipeline, no network).

    python bench/realtime_480p.py --ckpt davis16_output/davis16.ckpt                  # photo videos, 480x854
    python bench/realtime_480p.py --ckpt davis16_output/davis16.ckpt --davis-root <DAVIS 480p folder>
    python bench/realtime_480p.py --quick                                             # untrained, 2 short videos

Each preset runs as ``ovsnet-video --preset <p> --ckpt <ckpt> --threads <n> --no-overlay`` on an mp4 of each
video (so decoding is timed as a user's run would be); fps and per-stage milliseconds are the runs' own
(summary.json, segmentation only: loading the checkpoint is not timed). Without ``--ckpt`` an untrained
``model=realtime`` checkpoint is written (speed only: its J&F means nothing). The last two lines are
``fps=<default preset fps>`` and ``ratio=<default preset fps / flow propagation fps>``: the ratio is what carries
from one machine to another.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from own_video import (
    davis_sequences,
    flow_propagation,
    ground_truth,
    j_and_f,
    object_scores,
    run_ovsnet_video,
    write_inputs,
)
from realtime_cpu import train_checkpoint
from rich.console import Console
from rich.table import Table

from ovsnet.data.davis import load_davis
from ovsnet.data.synthetic import generate_dataset
from ovsnet.data.video_reader import iter_video_frames
from ovsnet.utils import write_json_atomic

# the runs of ovsnet-video: (its --preset, whether it gets the checkpoint); the default pipeline without it
# (flow + appearance memory) is what the trained network is measured against
RUNS = {
    "default": ("default", True),
    "fast": ("fast", True),  # the default preset with DIS ultrafast at half resolution
    "realtime": ("realtime", True),
    "no network": ("default", False),
}
LABELS = {
    "flow": "flow propagation (no model)",
    "copy": "copy the first mask (no model)",
    "no network": "ovsnet-video without --ckpt (no network)",
}
STAGE_ORDER = ("detect", "appearance", "mga", "flow", "cascade", "merge")


def photo_videos_480p(work: Path, videos: int, frames: int, seed: int) -> list:
    """Photo-realistic videos at 480x854 (both splits: nothing here is trained on them)."""
    root = work / "photo_480p"
    if not (root / "meta" / "dataset.json").is_file():
        generate_dataset(
            root, num_sequences=videos, num_frames=frames, size=(480, 854), seed=seed, style="photo"
        )
    return [s for split in ("train", "val") for s in load_davis(root, year=2017, split=split)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ckpt", type=Path, default=None, help="checkpoint (default: untrained model=realtime)"
    )
    parser.add_argument(
        "--davis-root", type=Path, default=None, help="DAVIS-layout folder (default: generate)"
    )
    parser.add_argument("--split", default="val")
    parser.add_argument("--sequences", default=None, help="comma-separated names within the split")
    parser.add_argument("--videos", type=int, default=4, help="generated photo videos")
    parser.add_argument("--frames", type=int, default=40, help="frames per generated video")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="2 generated videos of 8 frames, untrained model"
    )
    parser.add_argument("--work", type=Path, default=Path("bench_output/realtime_480p"))
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: <work>/realtime_480p.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.frames = 2, 8
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    console = Console(width=150)
    if args.davis_root is not None:
        names = [n for n in (args.sequences or "").split(",") if n]
        sequences, source = davis_sequences(args.davis_root, args.split, names), str(args.davis_root)
    else:
        sequences = photo_videos_480p(args.work, args.videos, args.frames, args.seed)
        source = f"{len(sequences)} generated photo-realistic videos"
    ckpt = args.ckpt or train_checkpoint(args.work, args.work, 0.0, quick=True)
    runs: dict[str, dict] = {
        name: {"objects": [], "frames": 0, "seconds": 0.0, "stage_s": {}} for name in (*RUNS, "flow", "copy")
    }
    sizes = set()
    for sequence in sequences:
        video, mask = write_inputs(sequence, args.work / "inputs")
        frames = list(iter_video_frames(video))
        sizes.add(frames[0].shape[:2])
        truth = ground_truth(sequence, len(frames))
        for name, (preset, with_network) in RUNS.items():
            out = args.work / name.replace(" ", "_") / sequence.name
            network = ["--ckpt", str(ckpt)] if with_network else []
            extra = [*network, "--preset", preset, "--no-overlay", "--no-progress"]
            masks, summary = run_ovsnet_video(video, mask, out, args.threads, extra)
            run = runs[name]
            run["objects"].append(object_scores(sequence.name, truth, masks))
            run["frames"] += summary["frames"]
            run["seconds"] += summary["seconds"]
            for stage, seconds in summary["timings"].items():
                run["stage_s"][stage] = run["stage_s"].get(stage, 0.0) + seconds
        masks, fps = flow_propagation(frames, truth[0])
        runs["flow"]["seconds"] += (len(frames) - 1) / fps
        runs["flow"]["frames"] += len(frames) - 1
        runs["flow"]["objects"].append(object_scores(sequence.name, truth, masks))
        runs["copy"]["objects"].append(object_scores(sequence.name, truth, [truth[0]] * len(frames)))
    rows = {}
    for name, run in runs.items():
        rows[name] = {
            "J&F": j_and_f(run["objects"]),
            "fps": run["frames"] / run["seconds"] if run["seconds"] else None,  # copying is not timed
            "frames": run["frames"],
            "stage_ms": {k: 1000.0 * v / max(run["frames"], 1) for k, v in run["stage_s"].items()},
        }
    stages = [s for s in STAGE_ORDER if any(s in r["stage_ms"] for r in rows.values())]
    size = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
    table = Table(title=f"{source}, {size}, {args.threads} threads, checkpoint {ckpt}")
    for column in ("run", "J&F", "fps", *(f"{s} ms" for s in stages)):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, row in rows.items():
        label = LABELS.get(name, f"ovsnet-video --preset {name}")
        ms = [f"{row['stage_ms'][s]:.1f}" if s in row["stage_ms"] else "" for s in stages]
        fps = "" if row["fps"] is None else f"{row['fps']:.2f}"
        table.add_row(label, f"{row['J&F']:.3f}", fps, *ms)
    console.print(table)
    ratio = rows["default"]["fps"] / max(rows["flow"]["fps"], 1e-9)
    result = {
        "source": source,
        "size": size,
        "threads": args.threads,
        "checkpoint": str(ckpt),
        "untrained": args.ckpt is None,
        "rows": {k: {**v, "J&F": float(v["J&F"])} for k, v in rows.items()},
        "ratio": ratio,
        "mean_objects": float(np.mean([len(o["J"]) for o in runs["flow"]["objects"]])),
    }
    write_json_atomic(args.out or args.work / "realtime_480p.json", result)
    print(f"fps={rows['default']['fps']:.2f}")
    print(f"ratio={ratio:.3f}")
    return result


if __name__ == "__main__":
    main()
