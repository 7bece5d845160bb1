"""``evaluate.py``'s two tasks: score a dataset split (``run_evaluation``) or segment one video (``run_video``).

``run_evaluation`` segments every sequence of a split in one online pass into the official results layout
``<results_dir>/<sequence>/<frame>.png``, scores them with :mod:`ovsnet.metrics`, and writes the official
CSVs, ``metrics.json`` and ``summary.json`` into the run directory. It resumes: finished sequences are
skipped, and a results folder records the settings that made it (``.ovsnet_run.json``, written once the
model has loaded) so results made with other settings are never mixed in.

A sequence that fails on bad input (a corrupt frame or annotation: :class:`~ovsnet.data.io.DataError`, or an
``OSError``) does not stop the others with ``on_error=skip`` (the default): it is logged with its file, listed
in ``summary.json`` (``failed_sequences``), left out of the scores, and the run ends with
:class:`IncompleteEvaluation` (``evaluate.py``: exit code 2) saying how to resume. ``on_error=stop`` stops at
the first failure, with the same hint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ovsnet.data.io import DataError
from ovsnet.data.loading import select_sequences, split_sequences
from ovsnet.data.sequence import VideoSequence
from ovsnet.evaluation.model import check_model_source, load_model_from_config
from ovsnet.evaluation.scoring import (
    baseline_scores,
    check_baselines,
    lost_while_visible,
    scorable,
    score,
    summarize_results,
)
from ovsnet.evaluation.settings import make_flow, resolved_inference_settings
from ovsnet.inference.no_network import NoNetwork, no_network_config
from ovsnet.inference.runner import SequenceResult, segment_dataset
from ovsnet.inference.segmenter import VideoSegmenter
from ovsnet.inference.settings import InferenceSettings
from ovsnet.utils import (
    autocast_dtype,
    job_overrides,
    plain,
    remove_stale_temporaries,
    resolve_device,
    write_json_atomic,
)
from ovsnet.utils_logging import contact_sheet_of, log_image, log_table

__all__ = [
    "ON_ERROR",
    "RUN_MARKER",
    "SUMMARY_FILE",
    "IncompleteEvaluation",
    "check_on_error",
    "inference_config",
    "make_segmenter_factory",
    "run_evaluation",
    "run_video",
    "uses_network",
]

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
RUN_MARKER = ".ovsnet_run.json"
OVERLAYS_FILE = "overlays.png"
ON_ERROR = ("skip", "stop")


class IncompleteEvaluation(DataError):
    """Some sequences failed and were skipped (``on_error=skip``); the others were segmented and scored.

    A :class:`DataError`, so ``evaluate.py`` ends with one line and exit code 2 once everything else is
    written; ``summary`` is the run's summary (``summary.json``) for callers that want the figures anyway.
    """

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def check_on_error(value: Any) -> str:
    """The ``on_error`` setting, checked before any work."""
    choice = str(value if value is not None else "skip")
    if choice not in ON_ERROR:
        raise DataError(f"on_error={value!r}: choose {' or '.join(ON_ERROR)}")
    return choice


def _resume_hint(output_dir: Path) -> str:
    return f"rerun with hydra.run.dir={output_dir} to resume (finished sequences are kept)"


def _as_config(cfg: Mapping[str, Any] | DictConfig) -> DictConfig:
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))


# ---------------------------------------------------------------------------------------------- resume guard
def _holds_results(results_dir: Path) -> bool:
    return results_dir.is_dir() and any(p.is_dir() and any(p.iterdir()) for p in results_dir.iterdir())


def check_results_dir(results_dir: Path, fingerprint: Mapping[str, Any], skip_done: bool) -> None:
    """Refuse to resume into a results folder whose results were made with other settings (mixed results
    would be scored together). A marker without any result (a run that failed early) does not count."""
    marker = results_dir / RUN_MARKER
    if not (skip_done and marker.is_file()):
        return
    try:
        previous = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if previous == dict(fingerprint) or not _holds_results(results_dir):
        return
    changed = sorted(k for k in set(previous) | set(fingerprint) if previous.get(k) != fingerprint.get(k))
    raise DataError(
        f"results_dir={results_dir} holds results made with other settings ({changed} differ); choose "
        "another results_dir, or skip_done=false to overwrite them"
    )


def uses_network(cfg: Mapping[str, Any] | DictConfig) -> bool:
    """``network=false``: no detector, Re-ID or MGA is run (flow and the appearance memory alone)."""
    return bool(cfg.get("network", True))


def inference_config(cfg: DictConfig) -> InferenceSettings:
    """The settings a run uses: :func:`resolved_inference_settings`, with the learned parts off when
    ``network=false``."""
    config = resolved_inference_settings(cfg)
    return config if uses_network(cfg) else no_network_config(config)


def _fingerprint(cfg: DictConfig, settings: Mapping[str, Any]) -> dict[str, Any]:
    network = uses_network(cfg)
    ckpt = cfg.get("ckpt_path") if network else None
    return {
        "network": network,
        "ckpt_path": str(Path(str(ckpt)).expanduser().resolve()) if ckpt else None,
        "model_config": plain(cfg.get("model_config")),
        "model_overrides": plain(cfg.get("model_overrides")),
        "random_init": bool(cfg.get("random_init", False)),
        "precision": str(cfg.get("precision", "32")),
        "inference": dict(settings),
    }


# ---------------------------------------------------------------------------------------------- segmenter
def make_segmenter_factory(
    cfg: Mapping[str, Any] | DictConfig,
    device: torch.device,
    config: InferenceSettings | None = None,
    on_loaded: Callable[[], None] | None = None,
) -> Callable[[], VideoSegmenter]:
    """``make_segmenter()`` for :func:`~ovsnet.inference.runner.segment_dataset`: loads the model lazily, so a
    run whose sequences are all done loads none; ``on_loaded`` runs once the model has loaded.
    ``network=false``: :class:`~ovsnet.inference.no_network.NoNetwork` stands in for the model."""
    cfg = _as_config(cfg)
    config = config or inference_config(cfg)

    def make() -> VideoSegmenter:
        model = load_model_from_config(cfg, device) if uses_network(cfg) else NoNetwork()
        if on_loaded is not None:
            on_loaded()
        return VideoSegmenter(
            model,
            make_flow((cfg.get("inference") or {}).get("flow")),
            config,
            device,
            autocast_dtype=autocast_dtype(cfg.get("precision"), device),
            channels_last=bool(cfg.get("channels_last", False)),
        )

    return make


def segment_sequences(
    make_segmenter: Callable[[], VideoSegmenter],
    sequences: Sequence[VideoSequence],
    results_dir: Path,
    output_dir: Path,
    skip_done: bool = True,
    progress: bool = True,
    on_error: str = "skip",
) -> tuple[list[SequenceResult], dict[str, str]]:
    """Segment every sequence (:func:`~ovsnet.inference.runner.segment_dataset`) so that bad input in one
    video costs that video only; returns the results and ``{sequence: error}`` of the failed."""
    failed: dict[str, str] = {}

    def fail(sequence: VideoSequence, exc: Exception) -> None:
        if on_error == "stop":
            raise DataError(
                f"sequence {sequence.name!r}: {exc}; stopped there (on_error=stop; on_error=skip segments "
                f"the others); {_resume_hint(output_dir)}"
            ) from exc
        log.error("sequence %r failed, going on with the others (on_error=skip): %s", sequence.name, exc)
        failed[sequence.name] = str(exc)

    results = segment_dataset(
        make_segmenter, sequences, results_dir, skip_done=skip_done, progress=progress, on_failure=fail
    )
    return results, failed


# ---------------------------------------------------------------------------------------------- loggers
def _log_to_loggers(
    loggers: Sequence[Any],
    summary: Mapping[str, Any],
    per_object: pd.DataFrame | None,
    sheet: np.ndarray | None,
    prefix: str = "eval",
) -> None:
    if not loggers:
        return
    scalars: dict[str, float] = {
        f"{prefix}/{k}": float(v)
        for k, v in summary.get("metrics", {}).items()
        if isinstance(v, (int, float)) and math.isfinite(float(v))
    }
    scalars[f"{prefix}/fps"] = float(summary["fps"])
    scalars[f"{prefix}/num_frames"] = float(summary["num_frames"])
    scalars.update({f"{prefix}/paths/{k}": float(v) for k, v in summary["path_counts"].items()})
    scalars.update({f"{prefix}/path_fraction/{k}": float(v) for k, v in summary["path_fractions"].items()})
    for logger in loggers:
        logger.log_hyperparams(summary.get("config") or {})
        logger.log_metrics(scalars, step=0)
    if per_object is not None:
        log_table(loggers, f"{prefix}/per_object", per_object)
    if sheet is not None:
        log_image(loggers, f"{prefix}/overlays", sheet)
    for logger in loggers:
        logger.save()
        logger.finalize("success")


def _write_overlays(
    cfg: DictConfig, sequences: Sequence[Any], results_dir: Path, output_dir: Path
) -> np.ndarray | None:
    media = cfg.get("media") or {}
    if not media.get("enabled", True):
        return None
    sheet = contact_sheet_of(
        sequences,
        results_dir,
        int(media.get("num_sequences", 4)),
        int(media.get("frames_per_sequence", 4)),
        int(media.get("tile_width", 240)),
    )
    if sheet is not None:
        from ovsnet.viz import save_png

        save_png(output_dir / OVERLAYS_FILE, sheet)
    return sheet


# ---------------------------------------------------------------------------------------------- tasks
def run_evaluation(
    cfg: Mapping[str, Any] | DictConfig, loggers: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Segment, score, write and log one dataset split; returns the run summary (also ``summary.json``).

    The summary holds ``metrics`` (the official global row: ``J&F-Mean``, ``J-Mean``, ``F-Mean``...; empty
    when the split has no ground truth beyond the first frames), ``baselines``, ``fps``, ``path_counts``,
    ``path_fractions``, per-stage ``timings_ms_per_frame``, the sequence counts, the inference settings and
    the job's overrides.
    """
    cfg = _as_config(cfg)
    loggers = list(loggers or [])
    split = str(cfg.get("split") or cfg.data.get("val_split") or "val")
    output_dir = Path(str(cfg.output_dir))
    results_dir = Path(str(cfg.get("results_dir") or output_dir / "results" / split))
    device = resolve_device(cfg.get("device", "auto"))
    if uses_network(cfg):
        check_model_source(cfg)
    check_baselines(cfg.get("baselines"))
    remove_stale_temporaries(output_dir / OVERLAYS_FILE)
    config = inference_config(cfg)
    sequences = select_sequences(
        split_sequences(cfg.data, split), cfg.get("sequences"), cfg.get("max_sequences")
    )
    inference = cfg.get("inference") or {}
    log.info(
        "evaluating %d sequences of %s on %s into %s (inference %s%s)",
        len(sequences),
        split,
        device,
        results_dir,
        inference.get("name", "full"),
        "" if uses_network(cfg) else ", network=false: flow and the appearance memory alone",
    )
    settings = {
        **dataclasses.asdict(config),
        "name": inference.get("name"),
        "flow": plain(inference.get("flow")),
    }
    skip_done = bool(cfg.get("skip_done", True))
    on_error = check_on_error(cfg.get("on_error", "skip"))
    fingerprint = _fingerprint(cfg, settings)
    check_results_dir(results_dir, fingerprint, skip_done)
    start = time.perf_counter()
    results, failed = segment_sequences(
        make_segmenter_factory(
            cfg, device, config, on_loaded=lambda: write_json_atomic(results_dir / RUN_MARKER, fingerprint)
        ),
        sequences,
        results_dir,
        output_dir,
        skip_done=skip_done,
        progress=bool(cfg.get("progress", True)),
        on_error=on_error,
    )
    split_size = len(sequences)
    sequences = [s for s in sequences if s.name not in failed]  # everything below covers the finished ones
    if failed:
        log.warning(
            "%d of %d sequences failed (%s): every figure below is over the %d finished ones",
            len(failed),
            split_size,
            ", ".join(failed),
            len(sequences),
        )
    summary: dict[str, Any] = {
        "task": "dataset",
        "split": split,
        "device": str(device),
        "network": uses_network(cfg),
        "ckpt_path": cfg.get("ckpt_path") if uses_network(cfg) else None,
        "results_dir": str(results_dir),
        **summarize_results(results),
        "wall_seconds": time.perf_counter() - start,
        "failed_sequences": failed,
    }
    metrics: dict[str, float] = {}
    per_object = None
    if cfg.get("score", True) and scorable(sequences):
        metrics, per_object = score(sequences, results_dir, output_dir, split, cfg.get("score_workers"))
    elif cfg.get("score", True) and sequences:  # none finished: the failures were said above
        log.warning(
            "split %s has no ground truth beyond the first frames: results written, not scored "
            "(DAVIS test-dev is scored by the challenge server)",
            split,
        )
    summary["metrics"] = metrics
    baselines_dir = Path(str(cfg.get("baselines_dir") or output_dir / "baselines"))
    summary["baselines"] = (
        baseline_scores(
            cfg.get("baselines"),
            inference.get("flow"),
            sequences,
            split,
            baselines_dir,
            cfg.get("score_workers"),
        )
        if metrics
        else {}
    )
    lost = lost_while_visible(sequences, results) if scorable(sequences) else {}
    lost_frames, visible = (sum(counts[i] for counts in lost.values()) for i in (0, 1))
    summary["lost_while_visible"] = {
        "object_frames": lost_frames,
        "visible_object_frames": visible,
        "fraction": lost_frames / max(visible, 1),
    }
    summary["sequences"] = {
        r.name: {
            "num_frames": r.num_frames,
            "fps": r.fps,
            "skipped": r.skipped,
            "path_counts": dict(r.path_counts),
            "detected_frames": r.detected_frames,
            "lost_while_visible": lost.get(r.name, (0, 0))[0],
        }
        for r in results
    }
    summary["inference"] = settings
    summary["overrides"] = job_overrides()
    summary["config"] = plain(cfg)
    sheet = _write_overlays(cfg, sequences, results_dir, output_dir)
    write_json_atomic(output_dir / SUMMARY_FILE, summary)
    _log_to_loggers(loggers, summary, per_object, sheet)
    nan = float("nan")
    beside = "  ".join(f"{k} {v['J&F-Mean']:.4f}" for k, v in summary["baselines"].items())
    log.info(
        "J&F %.4f  J %.4f  F %.4f  (baselines: %s)  |  %.2f fps over %d frames  |  paths %s  |  "
        "lost while visible %d of %d object-frames  |  %s",
        metrics.get("J&F-Mean", nan),
        metrics.get("J-Mean", nan),
        metrics.get("F-Mean", nan),
        beside or "off",
        summary["fps"],
        summary["num_frames"],
        summary["path_counts"],
        summary["lost_while_visible"]["object_frames"],
        summary["lost_while_visible"]["visible_object_frames"],
        output_dir / SUMMARY_FILE,
    )
    if failed:
        errors = "; ".join(f"{name}: {error}" for name, error in list(failed.items())[:3])
        raise IncompleteEvaluation(
            f"{len(failed)} of {split_size} sequences failed ({errors}{'; ...' if len(failed) > 3 else ''}); "
            f"the metrics in {output_dir / SUMMARY_FILE} are over the {len(sequences)} finished ones; fix the "
            f"input and {_resume_hint(output_dir)}",
            summary,
        )
    return summary


def run_video(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """``task=video``: segment one video file / frame folder from its first-frame mask.

    The video and the mask are opened and checked before the checkpoint loads, so bad input fails at once.
    """
    from ovsnet.inference.video_job import check_video_inputs, segment_video

    cfg = _as_config(cfg)
    for key in ("video", "first_mask"):
        if not cfg.get(key):
            raise DataError(f"task=video needs {key}=<path>")
        if not Path(str(cfg.get(key))).expanduser().exists():
            raise DataError(f"{key}={cfg.get(key)}: no such file or folder")
    video, first_mask = Path(str(cfg.video)).expanduser(), Path(str(cfg.first_mask)).expanduser()
    check_video_inputs(video, first_mask)
    if uses_network(cfg):
        check_model_source(cfg)
    device = resolve_device(cfg.get("device", "auto"))
    config = inference_config(cfg)
    model = load_model_from_config(cfg, device) if uses_network(cfg) else NoNetwork()
    out_dir = Path(str(cfg.get("video_out_dir") or Path(str(cfg.output_dir)) / "video"))
    result = segment_video(
        model,
        video,
        first_mask,
        out_dir,
        device=device,
        flow=make_flow((cfg.get("inference") or {}).get("flow")),
        cascade_config=config,
        overlay=bool(cfg.get("overlay", True)),
        autocast=autocast_dtype(cfg.get("precision"), device),
        progress=bool(cfg.get("progress", True)),
    )
    summary = {k: v for k, v in dataclasses.asdict(result).items() if k != "decisions"}
    summary.update(task="video", video=str(cfg.video), out_dir=str(out_dir), network=uses_network(cfg))
    write_json_atomic(Path(str(cfg.output_dir)) / SUMMARY_FILE, summary)
    return summary
