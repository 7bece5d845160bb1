"""Real time on a plain CPU: the ``realtime`` preset at 240x427 on synthetic 3-object videos, PyTorch and ONNX
Runtime side by side, beside the default inference on the same checkpoint at the same size.

Runs (each on the same validation videos, after one warm-up video pass):
- ``default``: the checkpoint as loaded with torchvision's test-time counts (1000 proposals, 100 detections),
  ``conf/inference/default.yaml``, PyTorch;
- ``realtime/torch``: ``prepare_runtime`` (threads, BN folded, test-time counts, score threshold) with
  ``conf/inference/realtime.yaml``;
- ``realtime/onnx``: the same on ONNX Runtime (``python -m ovsnet.export``'s graphs).
Reports fps (segmentation + PNG writing), per-stage milliseconds (``VideoSegmenter.timings``) and J&F; the last
line is ``fps=<value>`` for the faster realtime backend (the preset's default). Without ``--ckpt`` it trains
``model=realtime`` on the generated training videos for ``--train-minutes`` (reused on the next run from
``--work``); ``--quick`` uses untrained weights instead (the speed does not depend on them, J&F does).

    python bench/realtime_cpu.py                       # ~10 min on 2 cores: train 5 min, then measure
    python bench/realtime_cpu.py --ckpt last.ckpt      # measure a given checkpoint
    python bench/realtime_cpu.py --quick               # tiny run proving the script works
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from ovsnet.data.davis import load_davis
from ovsnet.data.sequence import VideoSequence
from ovsnet.inference.runner import segment_dataset
from ovsnet.inference.runtime import (
    RuntimeSettings,
    for_onnx,
    prepare_runtime,
    set_threads,
    size_test_time,
)
from ovsnet.inference.segmenter import STAGES, VideoSegmenter
from ovsnet.inference.settings import InferenceSettings, checkpoint_settings, resolve
from ovsnet.utils import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH, OBJECTS = 240, 427, 3
console = Console(width=150)


@dataclass
class RunResult:
    name: str
    frames: int
    seconds: float
    stage_ms: dict[str, float]
    jf: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def make_videos(root: Path, sequences: int, frames: int, seed: int) -> Path:
    """Synthetic DAVIS-layout videos at 240x427 with exactly 3 objects (generated once per ``--work``)."""
    from ovsnet.data.synthetic import generate_dataset

    if (root / "ImageSets").is_dir():
        return root
    return Path(
        generate_dataset(
            root,
            num_sequences=sequences,
            num_frames=frames,
            size=(HEIGHT, WIDTH),
            seed=seed,
            min_objects=OBJECTS,
            max_objects=OBJECTS,
            progress=False,
        )
    )


def realtime_model_config() -> dict[str, Any]:
    from ovsnet.hydra_utils import compose_config
    from ovsnet.utils import plain

    return dict(plain(compose_config("train.yaml", ["model=realtime"]).model.model_config))


def train_checkpoint(work: Path, data: Path, minutes: float, quick: bool) -> Path:
    """A ``model=realtime`` checkpoint: trained for ``minutes`` on the training videos, or untrained (quick)."""
    ckpt = work / ("untrained.ckpt" if quick else "train/checkpoints/last.ckpt")
    if ckpt.is_file():
        console.print(f"reusing {ckpt}")
        return ckpt
    if quick:
        from ovsnet.models.ovsnet import build_ovsnet

        config = realtime_model_config()
        torch.manual_seed(0)
        state = build_ovsnet(**config).state_dict()
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "state_dict": {f"model.{k}": v for k, v in state.items()},
                "hyper_parameters": {"model_config": config},
            },
            ckpt,
        )
        return ckpt
    from ovsnet.cli.stages import train_stage

    seconds = int(minutes * 60)
    overrides = [
        "model=realtime",
        f"data.root={data}",
        f"data.image_size={HEIGHT}",
        "data.num_workers=0",
        "data.persistent_workers=false",
        f"trainer.max_time=00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
        "trainer.check_val_every_n_epoch=100000",  # no validation pass: this run only needs weights
    ]
    console.print(f"training model=realtime for {minutes:g} min into {work / 'train'}")
    trained, _ = train_stage(work, "train", overrides)
    return trained


def cascade_for(preset: str, stored: dict[str, Any]) -> tuple[InferenceSettings, Any]:
    """The preset's cascade with the checkpoint's calibrated values over it (as evaluate.py does), and its flow."""
    from ovsnet.evaluation.settings import make_flow
    from ovsnet.hydra_utils import compose_config

    inference = compose_config("evaluate.yaml", [f"inference={preset}"]).inference
    return resolve(inference, stored), make_flow(inference.flow)


def run(
    name: str,
    make: Callable[[], VideoSegmenter],
    sequences: list[VideoSequence],
    out: Path,
) -> RunResult:
    """Warm up on one video, then segment and score every video; fps over all frames of the timed pass."""
    from ovsnet.metrics.davis import evaluate_sequences

    segmenter = make()
    segment_dataset(lambda: segmenter, sequences[:1], out / "warmup", skip_done=False, progress=False)
    results = segment_dataset(lambda: segmenter, sequences, out / "masks", skip_done=False, progress=False)
    frames = sum(r.num_frames for r in results)
    stage_ms = {s: 1000.0 * sum(r.timings.get(s, 0.0) for r in results) / frames for s in STAGES}
    jf = evaluate_sequences(sequences, out / "masks", workers=1).scores["J&F-Mean"]
    return RunResult(name, frames, sum(r.seconds for r in results), stage_ms, jf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ckpt", type=Path, default=None, help="model=realtime checkpoint (default: train one)"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "realtime_cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "realtime_cpu.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--videos", type=int, default=12, help="generated videos (a quarter are validation)")
    parser.add_argument("--frames", type=int, default=20, help="frames per video")
    parser.add_argument("--train-minutes", type=float, default=5.0)
    parser.add_argument("--spinning", action="store_true", help="ONNX Runtime workers busy-wait when idle")
    parser.add_argument("--quick", action="store_true", help="4 short videos, untrained weights")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.frames = 4, 6
        args.work = args.work.with_name(args.work.name + "_quick")
    set_threads(args.threads)
    data = make_videos(args.work / "data", args.videos, args.frames, seed=0)
    sequences = load_davis(data, split="val")
    ckpt = args.ckpt or train_checkpoint(args.work, data, args.train_minutes, args.quick)

    from ovsnet.export import export_checkpoint
    from ovsnet.inference.onnx_backend import load_onnx_model
    from ovsnet.models.loading import load_model

    settings = RuntimeSettings(threads=args.threads)
    results: list[RunResult] = []

    model = load_model(ckpt)
    size_test_time(model, 1000, 1000, 100)  # torchvision's defaults, whatever the checkpoint was trained with
    stored = checkpoint_settings(ckpt)
    config, flow = cascade_for("default", stored)
    results.append(
        run("default", lambda: VideoSegmenter(model, flow, config), sequences, args.work / "default")
    )

    rt_config, rt_flow = cascade_for("realtime", stored)
    rt_model = prepare_runtime(load_model(ckpt), settings, rt_config.cascade.min_candidate_score)
    results.append(
        run(
            "realtime/torch",
            lambda: VideoSegmenter(rt_model, rt_flow, rt_config),
            sequences,
            args.work / "rt_torch",
        )
    )

    start = time.perf_counter()
    onnx_path = export_checkpoint(ckpt, args.work / "onnx" / "model.onnx")
    export_s = time.perf_counter() - start
    onnx_model = load_onnx_model(onnx_path, threads=args.threads, spinning=args.spinning)
    prepare_runtime(onnx_model, for_onnx(settings), rt_config.cascade.min_candidate_score)
    results.append(
        run(
            "realtime/onnx",
            lambda: VideoSegmenter(onnx_model, rt_flow, rt_config),
            sequences,
            args.work / "rt_onnx",
        )
    )
    best = max(results[1:], key=lambda r: r.fps)
    load = os.getloadavg()
    table = Table(
        title=f"{HEIGHT}x{WIDTH}, {OBJECTS} objects, {len(sequences)} videos, {args.threads} threads"
    )
    for column in ("run", "fps", "J&F", *(f"{s} ms" for s in STAGES)):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(r.name, f"{r.fps:.1f}", f"{r.jf:.3f}", *(f"{r.stage_ms[s]:.1f}" for s in STAGES))
    console.print(table)
    console.print(
        f"checkpoint {ckpt}; ONNX export {export_s:.1f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"J&F realtime - default: torch {results[1].jf - results[0].jf:+.3f}, onnx {results[2].jf - results[0].jf:+.3f}"
    )
    markdown = "\n".join(
        [
            f"{HEIGHT}x{WIDTH}, {OBJECTS} objects, {len(sequences)} validation videos, {args.threads} threads, "
            f"load average {load[0]:.2f}",
            "",
            "| run | fps | J&F | " + " | ".join(f"{s} ms" for s in STAGES) + " |",
            "|---|---|---|" + "---|" * len(STAGES),
            *(
                f"| {r.name} | {r.fps:.1f} | {r.jf:.3f} | "
                + " | ".join(f"{r.stage_ms[s]:.1f}" for s in STAGES)
                + " |"
                for r in results
            ),
        ]
    )
    write_json_atomic(
        args.out,
        {
            "checkpoint": str(ckpt),
            "threads": args.threads,
            "load_average": list(load),
            "runs": {r.name: {"fps": r.fps, "jf": r.jf, "stage_ms": r.stage_ms} for r in results},
            "preset_backend": best.name,
            "fps": best.fps,
            "markdown": markdown,
        },
    )
    print(f"fps={best.fps:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
