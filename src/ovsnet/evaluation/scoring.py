"""Figures of an evaluation: totals over sequences, the official DAVIS scores, the model-free baselines.

Scores come from :mod:`ovsnet.metrics` (numbers identical to the official DAVIS 2017 tool); the baselines
(copy the first mask, propagate it with the segmenter's own flow) run on the same videos so every J&F is
printed beside them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ovsnet.data.io import DataError, atomic_path
from ovsnet.data.sequence import VideoSequence
from ovsnet.evaluation.settings import DEFAULT_FLOW, make_flow
from ovsnet.inference.cascade import PATHS
from ovsnet.inference.flow import ZeroFlow
from ovsnet.inference.runner import SequenceResult
from ovsnet.utils import plain

__all__ = [
    "METRICS_FILE",
    "baseline_scores",
    "check_baselines",
    "lost_while_visible",
    "scorable",
    "score",
    "summarize_results",
]

METRICS_FILE = "metrics.json"
BASELINES = ("copy", "flow")


def summarize_results(results: Sequence[SequenceResult]) -> dict[str, Any]:
    """Totals over sequences: frames, seconds, fps, path counts and fractions, the frames the detector ran on,
    per-stage ms per frame.

    Skipped (already done) sequences count with the figures stored in their ``.done`` markers.
    """
    frames = sum(r.num_frames for r in results)
    seconds = sum(r.seconds for r in results)
    counts: Counter[str] = Counter({p: 0 for p in PATHS})
    timings: Counter[str] = Counter()
    for r in results:
        counts.update({k: int(v) for k, v in r.path_counts.items()})
        timings.update({k: float(v) for k, v in r.timings.items()})
    decisions = sum(counts.values())
    return {
        "num_sequences": len(results),
        "segmented_sequences": sum(not r.skipped for r in results),
        "skipped_sequences": sum(r.skipped for r in results),
        "num_frames": frames,
        "seconds": seconds,
        "fps": frames / seconds if seconds > 0 else 0.0,
        "path_counts": dict(counts),
        "detected_frames": sum(r.detected_frames for r in results),
        "path_fractions": {k: (v / decisions if decisions else 0.0) for k, v in counts.items()},
        "timings_ms_per_frame": {k: 1000.0 * v / max(frames, 1) for k, v in timings.items()},
    }


def lost_while_visible(
    sequences: Sequence[VideoSequence], results: Sequence[SequenceResult]
) -> dict[str, tuple[int, int]]:
    """Per sequence: (object-frames the segmenter declared absent while the object is in the ground truth,
    object-frames where the object is in the ground truth), over the annotated frames after the first.

    A segmenter that gives up on an object in view loses it for good unless the Re-ID path finds it again:
    this counts how often that happens, which J&F alone hides among the other errors.
    """
    decisions_of = {r.name: r.decisions for r in results}
    counts: dict[str, tuple[int, int]] = {}
    for seq in sequences:
        decisions = decisions_of.get(seq.name) or []
        lost = visible = 0
        for index in seq.annotated_indices:
            if index == 0 or index - 1 >= len(decisions):
                continue
            present = set(np.unique(seq.label_map(index)).tolist()) - {0, 255}
            for obj, path in decisions[index - 1].items():
                if int(obj) in present:
                    visible += 1
                    lost += path == "absent"
        counts[seq.name] = (lost, visible)
    return counts


def scorable(sequences: Sequence[VideoSequence]) -> bool:
    """Whether any sequence has ground truth beyond its first frame (test-dev has none: server-scored)."""
    return any(len(s.annotated_indices) > 1 for s in sequences)


def score(
    sequences: Sequence[VideoSequence],
    results_dir: Path,
    output_dir: Path,
    split: str,
    workers: int | None = None,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Official DAVIS scores (global row, per-object table).

    Writes the official ``global_results-<split>.csv`` / ``per-sequence_results-<split>.csv`` into
    ``results_dir``, and ``per-object_results-<split>.csv`` (every statistic per object) and
    ``metrics.json`` (every figure, per frame too) into ``output_dir``.
    """
    from ovsnet.metrics.davis import evaluate_sequences

    evaluation = evaluate_sequences(list(sequences), results_dir, split=split, workers=workers)
    evaluation.write_csv(results_dir)
    with atomic_path(output_dir / f"per-object_results-{split}.csv") as tmp:
        evaluation.per_object.to_csv(tmp, index=False)
    evaluation.to_json(output_dir / METRICS_FILE)
    return evaluation.scores, evaluation.per_object


def check_baselines(wanted: Sequence[str] | None) -> list[str]:
    """The ``baselines`` setting, checked before any work ([] to skip them)."""
    names = [str(b) for b in (wanted or [])]
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise DataError(f"baselines: unknown {unknown}; choose from {list(BASELINES)} ([] to skip)")
    return names


def baseline_scores(
    wanted: Sequence[str] | None,
    flow: Mapping[str, Any] | None,
    sequences: Sequence[VideoSequence],
    split: str,
    baselines_dir: Path,
    workers: int | None = None,
) -> dict[str, dict[str, float]]:
    """Copy-first-mask and flow propagation (the segmenter's own flow settings) on the same videos.

    Results go to ``baselines_dir/flow-<settings hash>/`` so runs with the same videos and flow share them;
    the "no flow" ablation is compared with default DIS propagation.
    """
    names = check_baselines(wanted)
    if not names:
        return {}
    from ovsnet.baselines import run_baselines

    spec = plain(flow) or DEFAULT_FLOW
    if isinstance(make_flow(spec), ZeroFlow):
        spec = DEFAULT_FLOW
    key = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]
    flows = {"flow": lambda: make_flow(spec)} if "flow" in names else {}
    return run_baselines(
        sequences, baselines_dir / f"flow-{key}", flows, split, workers=workers, copy="copy" in names
    )
