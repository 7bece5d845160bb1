"""Model-free baselines on any DAVIS-layout folder: copy the first mask, or propagate it with optical flow.

A J&F means little alone: these two need no model, so every score the project prints is shown beside them
(the demo's table, ``evaluate.py``'s summary, docs/benchmarks.md). Results are written in the official
results layout (``<out>/<baseline>/<sequence>/<frame>.png``), resumable like an evaluation, and scored
with :mod:`ovsnet.metrics` (numbers identical to the official DAVIS tool).

    python -m ovsnet.baselines data/synthetic_demo --split val --out baselines/
    python -m ovsnet.baselines data/DAVIS --year 2017 --split val --flows dis farneback --dis-preset medium
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ovsnet.data.io import DataError
from ovsnet.data.sequence import VideoSequence
from ovsnet.inference.flow import FlowEstimator, build_flow
from ovsnet.inference.propagation import CopyFirstMask, FlowPropagator
from ovsnet.inference.runner import segment_dataset
from ovsnet.utils import write_json_atomic

__all__ = ["BASELINE_FILE", "baseline_trackers", "build_parser", "main", "run_baselines"]

log = logging.getLogger(__name__)

BASELINE_FILE = "baselines.json"
SCORE_KEYS = ("J&F-Mean", "J-Mean", "F-Mean")


FlowSpec = Mapping[str, Any] | Callable[[], FlowEstimator]


def _estimator_maker(spec: FlowSpec) -> Callable[[], FlowEstimator]:
    if callable(spec):
        return spec
    kwargs = dict(spec)
    backend = str(kwargs.pop("backend", "dis"))
    return lambda: build_flow(backend, **kwargs)


def baseline_trackers(flows: Mapping[str, FlowSpec], copy: bool = True) -> dict[str, Any]:
    """``{"copy": CopyFirstMask, "flow[:<name>]": FlowPropagator}`` makers, one flow baseline per spec.

    ``flows`` maps a label to ``{backend: dis|farneback|raft, **constructor kwargs}`` or to a callable that
    returns a flow estimator; the first is called plain ``flow`` (the one shown beside a model's score), the
    others ``flow:<label>``.
    """
    makers: dict[str, Any] = {"copy": CopyFirstMask} if copy else {}
    for index, (label, spec) in enumerate(flows.items()):
        estimator = _estimator_maker(spec)
        makers["flow" if index == 0 else f"flow:{label}"] = lambda e=estimator: FlowPropagator(e())
    return makers


def run_baselines(
    sequences: Sequence[VideoSequence],
    out_dir: str | os.PathLike,
    flows: Mapping[str, FlowSpec] | None = None,
    split: str = "val",
    skip_done: bool = True,
    progress: bool = False,
    workers: int | None = None,
    copy: bool = True,
) -> dict[str, dict[str, float]]:
    """Segment ``sequences`` with each baseline into ``out_dir/<baseline>/`` and score them.

    Returns ``{baseline: {"J&F-Mean": ..., "J-Mean": ..., "F-Mean": ...}}`` (also ``out_dir/baselines.json``).
    Finished sequences are reused (``skip_done``): keep one ``out_dir`` per flow setting.
    """
    from ovsnet.metrics.davis import evaluate_sequences

    sequences = list(sequences)
    if not sequences:
        raise DataError("run_baselines: no sequences to segment")
    flows = flows if flows is not None else {"dis": {"backend": "dis"}}
    out = Path(out_dir)
    scores: dict[str, dict[str, float]] = {}
    for name, make in baseline_trackers(flows, copy).items():
        folder = out / name.replace(":", "_")
        segment_dataset(make, sequences, folder, skip_done=skip_done, progress=progress)
        evaluation = evaluate_sequences(sequences, folder, split=split, workers=workers)
        scores[name] = {k: float(v) for k, v in evaluation.scores.items()}
        log.info("baseline %s: J&F %.4f", name, scores[name]["J&F-Mean"])
    specs = {k: (v if isinstance(v, Mapping) else repr(v)) for k, v in flows.items()}
    write_json_atomic(out / BASELINE_FILE, {"flows": specs, "scores": scores})
    return scores


def _flow_specs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    specs: dict[str, dict[str, Any]] = {}
    for backend in args.flows:
        if backend == "dis":
            specs["dis"] = {
                "backend": "dis",
                "preset": args.dis_preset,
                "scale": args.scale,
                "max_height": args.max_height or None,
            }
        elif backend == "farneback":
            specs["farneback"] = {"backend": "farneback", "scale": args.scale}
        elif backend == "raft":
            specs["raft"] = {"backend": "raft", "weights": args.raft_weights}
        else:
            raise SystemExit(f"unknown flow backend {backend!r}; choose from dis, farneback, raft")
    return specs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ovsnet.baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "root", type=Path, help="a DAVIS-layout folder (JPEGImages/, Annotations/, ImageSets/)"
    )
    parser.add_argument("--split", default="val")
    parser.add_argument("--year", type=int, default=2017)
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--out", type=Path, default=Path("baselines_output"))
    parser.add_argument("--flows", nargs="+", default=["dis", "farneback"], help="dis | farneback | raft")
    parser.add_argument("--dis-preset", default="medium", choices=("ultrafast", "fast", "medium"))
    parser.add_argument("--scale", type=float, default=1.0, help="flow working scale (0, 1]")
    parser.add_argument(
        "--max-height", type=int, default=240, help="cap on the flow's working rows (0: none)"
    )
    parser.add_argument("--raft-weights", default="default", help="RAFT weights file (or torch hub cache)")
    parser.add_argument("--workers", type=int, default=None, help="scoring processes")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    from rich.console import Console
    from rich.table import Table

    from ovsnet.data.loading import load_sequences

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        sequences = load_sequences(
            args.root, args.split, year=args.year, resolution=args.resolution, source="root"
        )
        scores = run_baselines(sequences, args.out, _flow_specs(args), args.split, workers=args.workers)
    except (DataError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    table = Table(title=f"model-free baselines on {args.root} ({args.split}, {len(sequences)} videos)")
    table.add_column("baseline")
    for key in SCORE_KEYS:
        table.add_column(key, justify="right")
    for name, row in scores.items():
        table.add_row(name, *(f"{row[k]:.3f}" for k in SCORE_KEYS))
    Console().print(table)
    print(f"results and {BASELINE_FILE} in {args.out}")
    return scores


if __name__ == "__main__":
    main()
