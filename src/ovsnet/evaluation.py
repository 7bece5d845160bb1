"""Dataset evaluation, ablations and inference-time sweeps: the library side of ``evaluate.py``.

``run_evaluation(cfg)`` segments every sequence of a split in one online pass (resumable: finished
sequences are skipped), writes indexed PNGs in the official results layout
``<results_dir>/<sequence>/<frame>.png``, scores them with :mod:`ovsnet.metrics` (official DAVIS 2017
numbers), and writes the official CSVs, ``metrics.json`` and ``summary.json`` (J&F, fps, per-path counts,
the config) into the run directory. ``summarize_sweep`` turns the run directories of a Hydra multirun into
the paper-style table (markdown + CSV) and a plot of J / F / J&F against the swept value; it also runs as a
Hydra callback (:class:`SweepSummaryCallback`) and as ``python -m ovsnet.evaluation summarize DIR --key K``.

``cfg`` is the composed ``conf/evaluate.yaml`` (a ``DictConfig`` or a plain mapping with the same keys).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from ovsnet.data.io import DataError, atomic_path, read_label_map
from ovsnet.data.sequence import VideoSequence
from ovsnet.inference.cascade import PATHS, CascadeConfig
from ovsnet.inference.flow import DISFlow, FarnebackFlow, FlowEstimator, RAFTFlow, build_flow
from ovsnet.inference.runner import SequenceResult, segment_dataset
from ovsnet.inference.segmenter import VideoSegmenter
from ovsnet.models.checkpoint import CheckpointError, build_model, read_hyperparameters
from ovsnet.models.checkpoint import load_model as load_checkpoint_model

__all__ = [
    "SUMMARY_FILE",
    "SweepSummaryCallback",
    "ZeroFlow",
    "autocast_dtype",
    "cascade_config",
    "contact_sheet_of",
    "load_model",
    "load_sequences",
    "log_image",
    "make_flow",
    "make_segmenter_factory",
    "resolve_device",
    "run_evaluation",
    "run_video",
    "summarize_results",
    "summarize_sweep",
    "swept_keys",
]

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.json"
RUN_MARKER = ".ovsnet_run.json"
# keys of conf/inference/*.yaml that are not CascadeConfig fields
_INFERENCE_EXTRA_KEYS = ("name", "flow")
_FLOW_BACKENDS: dict[str, type] = {"dis": DISFlow, "farneback": FarnebackFlow, "raft": RAFTFlow}
_PAPER_COLUMNS = ("J-Mean", "F-Mean", "J&F-Mean")
_PRESET_LABELS = {
    "full": "OVS-Net",
    "default": "OVS-Net",
    "no_reid": "OVS-Net (without Re-ID)",
    "no_mga": "OVS-Net (without MGA)",
    "no_flow": "OVS-Net (without flow)",
    "base": "OVS-Net (base)",
    "paper": "OVS-Net (the paper's cascade rules)",
    "fast": "OVS-Net (fast flow)",
}
_SYMBOLS = {"rho_reid": "ρ_reid", "rho_iou": "ρ_iou", "reid_fraction": "reid fraction", "lambda_refine": "λ"}


# ---------------------------------------------------------------------------------------------- config
def _as_config(cfg: Mapping[str, Any] | DictConfig) -> DictConfig:
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))


def _plain(node: Any) -> Any:
    """DictConfig/ListConfig → python containers (resolved when possible)."""
    if isinstance(node, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(node, resolve=True)
        except Exception:  # noqa: BLE001 - an unresolvable interpolation (e.g. ${hydra:...}) outside Hydra
            return OmegaConf.to_container(node, resolve=False)
    return node


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` → the first CUDA device when one is visible, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_dtype(precision: str | int | None, device: torch.device) -> torch.dtype | None:
    """Lightning-style precision (``32``, ``16-mixed``, ``bf16-mixed``) → the segmenter's autocast dtype."""
    text = str(precision or "32").lower()
    if text.startswith("32") or text.startswith("64"):
        return None
    dtype = torch.bfloat16 if text.startswith("bf16") else torch.float16 if text.startswith("16") else None
    if dtype is None:
        raise ValueError(f"precision must be 32, 16-mixed or bf16-mixed, got {precision!r}")
    if device.type == "cpu" and dtype == torch.float16:
        log.warning("precision %s is not supported on the CPU; running in float32", precision)
        return None
    return dtype


def explicit_inference_keys(overrides: Sequence[str]) -> set[str]:
    """The ``inference.<key>`` values a user set on the command line (``inference.rho_reid=2.0``)."""
    keys = set()
    for item in overrides:
        name = item.split("=", 1)[0].lstrip("+~")
        if name.startswith("inference."):
            keys.add(name[len("inference.") :].split(".", 1)[0])
    return keys


def cascade_config(
    inference: Mapping[str, Any] | None,
    stored: Mapping[str, Any] | None = None,
    explicit: set[str] | frozenset[str] = frozenset(),
) -> CascadeConfig:
    """``conf/inference/*.yaml`` → :class:`CascadeConfig`; an unknown key is an error naming it.

    ``stored``: the settings a checkpoint carries (calibrated for its model); they replace the config's
    values except for the keys in ``explicit`` (set by the user on the command line).
    """
    values = dict(_plain(inference) or {})
    values.update({k: v for k, v in dict(stored or {}).items() if k not in explicit})
    fields = {f.name for f in dataclasses.fields(CascadeConfig)}
    unknown = sorted(set(values) - fields - set(_INFERENCE_EXTRA_KEYS))
    if unknown:
        raise ValueError(
            f"inference config: unknown key(s) {unknown}; CascadeConfig fields are "
            f"{sorted(fields)} (plus {list(_INFERENCE_EXTRA_KEYS)})"
        )
    return CascadeConfig(**{k: v for k, v in values.items() if k in fields})


class ZeroFlow:
    """A flow estimator without motion: templates are the previous masks unwarped (the "no flow" ablation)."""

    def __call__(self, prev_rgb: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        return np.zeros((*np.asarray(rgb).shape[:2], 2), dtype=np.float32)


def make_flow(flow: Mapping[str, Any] | str | None = None) -> FlowEstimator:
    """A flow estimator from ``{backend: dis|farneback|raft|zero, **constructor kwargs}``.

    Keys the chosen backend's constructor does not take (e.g. the DIS ``preset`` left in the config when
    switching to ``farneback``) are dropped with a debug message.
    """
    if flow is None or isinstance(flow, str):
        spec: dict[str, Any] = {"backend": flow or "dis"}
    else:
        spec = dict(_plain(flow))
    backend = str(spec.pop("backend", "dis"))
    if backend == "zero":
        return ZeroFlow()
    cls = _FLOW_BACKENDS.get(backend)
    if cls is not None:
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        dropped = sorted(k for k in spec if k not in accepted)
        if dropped:
            log.debug("flow backend %s ignores %s", backend, dropped)
        spec = {k: v for k, v in spec.items() if k in accepted}
    return build_flow(backend, **spec)


# ---------------------------------------------------------------------------------------------- model
_MODEL_CACHE: dict[tuple, torch.nn.Module] = {}


def _trusted(cfg: Mapping[str, Any] | DictConfig) -> bool:
    """``trust_checkpoint=true``: load the checkpoint in full (``weights_only=False``), for trusted files only."""
    return bool(cfg.get("trust_checkpoint", False))


def stored_inference_settings(ckpt_path: str | os.PathLike | None, trust: bool = False) -> dict[str, Any]:
    """The inference settings a checkpoint carries (``OVSNetModule(inference_settings=...)``), else {}."""
    if not ckpt_path or not Path(str(ckpt_path)).expanduser().is_file():
        return {}
    hparams = read_hyperparameters(Path(str(ckpt_path)).expanduser(), trust=trust)
    return dict(hparams.get("inference_settings") or {})


def _stored_model_config(path: Path, trust: bool = False) -> dict[str, Any]:
    config = read_hyperparameters(path, trust=trust).get("model_config")
    if config is None:
        raise CheckpointError(f"checkpoint {path} stores no model_config; set model_config=... explicitly")
    return dict(config)


def load_model(
    ckpt_path: str | os.PathLike | None,
    device: torch.device | str = "cpu",
    model_config: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    random_init: bool = False,
    cache: bool = True,
    trust: bool = False,
) -> torch.nn.Module:
    """The network of an :class:`~ovsnet.lightning.module.OVSNetModule` checkpoint, in eval mode.

    ``model_config`` replaces the build kwargs stored in the checkpoint; ``model_overrides`` updates them
    (e.g. the test-time ``min_size``). ``random_init=True`` with ``ckpt_path=None`` builds random weights
    from ``model_config`` (tests and smoke runs only). The last model is cached per (path, mtime, device,
    config) so the jobs of an inference-time sweep in one process share it. The checkpoint loads with
    ``weights_only=True`` unless ``trust=True`` (:mod:`ovsnet.models.checkpoint`).
    """
    device = torch.device(device)
    config = dict(_plain(model_config)) if model_config is not None else None
    overrides = dict(_plain(model_overrides) or {})
    if ckpt_path is None:
        if not random_init or config is None:
            raise ValueError(
                "ckpt_path is required: set ckpt_path=<OVSNetModule checkpoint> "
                "(random_init=true with a model_config builds random weights, for tests only)"
            )
        log.warning("no checkpoint: evaluating a randomly initialised model (random_init=true)")
        return build_model({**config, **overrides}).to(device).eval()
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: checkpoint file not found")
    if overrides:
        config = {**(config or _stored_model_config(path, trust)), **overrides}
    key = (
        str(path.resolve()),
        path.stat().st_mtime_ns,
        str(device),
        json.dumps(config, sort_keys=True, default=str),
        trust,
    )
    if cache and key in _MODEL_CACHE:
        log.info("reusing the loaded model of %s", path)
        return _MODEL_CACHE[key]
    _MODEL_CACHE.clear()
    model = load_checkpoint_model(path, map_location=device, model_config=config, trust=trust)
    if cache:
        _MODEL_CACHE[key] = model
    log.info("loaded %s on %s", path, device)
    return model


def load_model_from_config(cfg: DictConfig, device: torch.device | str) -> torch.nn.Module:
    """:func:`load_model` with the ``ckpt_path`` / ``model_config`` / ``model_overrides`` / ``random_init`` /
    ``trust_checkpoint`` keys of an evaluate.yaml config."""
    return load_model(
        cfg.get("ckpt_path"),
        device,
        cfg.get("model_config"),
        cfg.get("model_overrides"),
        bool(cfg.get("random_init", False)),
        trust=_trusted(cfg),
    )


def resolved_cascade_config(cfg: Mapping[str, Any] | DictConfig) -> CascadeConfig:
    """The cascade settings of an evaluate.yaml run: the checkpoint's stored settings over the inference
    preset, the user's command-line ``inference.*`` overrides over both."""
    cfg = _as_config(cfg)
    stored = stored_inference_settings(cfg.get("ckpt_path"), trust=_trusted(cfg))
    explicit = explicit_inference_keys(_job_overrides())
    if stored:
        log.info("inference settings from the checkpoint: %s (overridden here: %s)", stored, sorted(explicit))
    return cascade_config(cfg.get("inference"), stored, explicit)


def make_segmenter_factory(
    cfg: Mapping[str, Any] | DictConfig, device: torch.device, config: CascadeConfig | None = None
) -> Callable[[], VideoSegmenter]:
    """``make_segmenter()`` for :func:`~ovsnet.inference.runner.segment_dataset`: loads the model lazily, so a
    run whose sequences are all done loads none."""
    cfg = _as_config(cfg)
    config = config or resolved_cascade_config(cfg)

    def make() -> VideoSegmenter:
        model = load_model_from_config(cfg, device)
        return VideoSegmenter(
            model,
            make_flow((cfg.get("inference") or {}).get("flow")),
            config,
            device,
            autocast_dtype=autocast_dtype(cfg.get("precision"), device),
            channels_last=bool(cfg.get("channels_last", False)),
        )

    return make


def _check_model_source(cfg: DictConfig) -> None:
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        if not (cfg.get("random_init") and cfg.get("model_config") is not None):
            raise ValueError("ckpt_path is required: python evaluate.py ckpt_path=<OVSNetModule checkpoint>")
    elif not Path(str(ckpt)).expanduser().is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt}: checkpoint file not found")


# ---------------------------------------------------------------------------------------------- data
def load_sequences(data: Mapping[str, Any] | DictConfig, split: str) -> list[VideoSequence]:
    """The evaluation sequences of a ``conf/data/*.yaml`` config.

    Reads ``eval_root`` (else ``root``), ``eval_layout`` (``davis`` | ``segtrack``), ``year`` and
    ``resolution``; a missing synthetic folder is generated from ``generate_synthetic``.
    """
    data = _as_config(data)
    layout = str(data.get("eval_layout") or "davis")
    key = "eval_root" if data.get("eval_root") else "root"
    if data.get(key) is None:
        raise DataError("data.root is not set: choose a dataset (data=davis17|davis16|segtrackv2|synthetic)")
    root = Path(str(data.get(key))).expanduser()
    if not root.is_dir():
        generate = data.get("generate_synthetic")
        if generate and key == "root" and layout == "davis":
            from ovsnet.data.synthetic import generate_dataset

            log.info("generating the synthetic dataset in %s", root)
            generate_dataset(root, **dict(_plain(generate)))
        else:
            raise DataError(
                f"data.{key}={root}: dataset folder not found (download the dataset there or "
                f"override data.{key}=...)"
            )
    if layout == "segtrack":
        from ovsnet.data.segtrack import load_segtrack

        sequences = list(load_segtrack(root))
    elif layout == "davis":
        from ovsnet.data.davis import load_davis

        sequences = list(
            load_davis(
                root,
                year=int(data.get("year", 2017)),
                split=split,
                resolution=str(data.get("resolution", "480p")),
            )
        )
    else:
        raise ValueError(f"data.eval_layout must be 'davis' or 'segtrack', got {layout!r}")
    if not sequences:
        raise DataError(f"data.{key}={root}: split {split!r} lists no sequence")
    return sequences


def _select(
    sequences: list[VideoSequence], names: Sequence[str] | None, limit: int | None
) -> list[VideoSequence]:
    if names:
        by_name = {s.name: s for s in sequences}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise DataError(f"sequences={list(names)}: {missing} not in the split (it has {sorted(by_name)})")
        sequences = [by_name[n] for n in names]
    return sequences[:limit] if limit else sequences


# ---------------------------------------------------------------------------------------------- figures
def summarize_results(results: Sequence[SequenceResult]) -> dict[str, Any]:
    """Totals over sequences: frames, seconds, fps, path counts and fractions, per-stage ms per frame.

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
        "path_fractions": {k: (v / decisions if decisions else 0.0) for k, v in counts.items()},
        "timings_ms_per_frame": {k: 1000.0 * v / max(frames, 1) for k, v in timings.items()},
    }


def contact_sheet_of(
    sequences: Sequence[VideoSequence],
    results_dir: str | os.PathLike,
    max_sequences: int = 4,
    frames_per_sequence: int = 4,
    tile_width: int = 240,
) -> np.ndarray | None:
    """Overlays of the results on a few evenly spaced frames of the first sequences (one row each)."""
    from ovsnet.viz import contact_sheet, overlay

    tiles, labels = [], []
    root = Path(results_dir)
    for seq in list(sequences)[:max_sequences]:
        n = len(seq)
        step = (n - 1) / max(frames_per_sequence - 1, 1)
        picks = sorted({round(i * step) for i in range(frames_per_sequence)})
        for index in picks:
            png = root / seq.name / f"{seq.frame_names[index]}.png"
            if not png.is_file():
                continue
            tiles.append(overlay(seq.frame(index), read_label_map(png)))
            labels.append(f"{seq.name}:{seq.frame_names[index]}")
    if not tiles:
        return None
    columns = min(frames_per_sequence, len(tiles))
    return contact_sheet(tiles, columns=columns, tile_width=tile_width, labels=labels)


def log_image(loggers: Sequence[Any], key: str, image: np.ndarray, step: int = 0) -> None:
    """Log an RGB uint8 image to the W&B / TensorBoard loggers among ``loggers`` (others are ignored)."""
    for logger in loggers:
        name = type(logger).__name__
        try:
            if name == "WandbLogger":
                logger.log_image(key=key, images=[image], step=step)
            elif name == "TensorBoardLogger":
                logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")
        except Exception:  # noqa: BLE001 - media are a nicety; never fail an evaluation over them
            log.warning("could not log image %s to %s", key, name, exc_info=True)


def _log_table(loggers: Sequence[Any], key: str, table: pd.DataFrame) -> None:
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            try:
                logger.log_table(key=key, dataframe=table)
            except Exception:  # noqa: BLE001
                log.warning("could not log table %s to W&B", key, exc_info=True)


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
        _log_table(loggers, f"{prefix}/per_object", per_object)
    if sheet is not None:
        log_image(loggers, f"{prefix}/overlays", sheet)
    for logger in loggers:
        logger.save()
        logger.finalize("success")


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


# ---------------------------------------------------------------------------------------------- scoring
def _scorable(sequences: Sequence[VideoSequence]) -> bool:
    """Whether any sequence has ground truth beyond its first frame (test-dev has none: server-scored)."""
    return any(len(s.annotated_indices) > 1 for s in sequences)


def _score(
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


def _guard_results_dir(results_dir: Path, fingerprint: dict[str, Any], skip_done: bool) -> None:
    """Refuse to resume into a results folder made with other settings (mixed results would be scored).

    ``<results_dir>/.ovsnet_run.json`` records the checkpoint, model and inference settings of the results.
    """
    marker = results_dir / RUN_MARKER
    if skip_done and marker.is_file():
        try:
            previous = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous is not None and previous != fingerprint:
            keys = set(previous) | set(fingerprint)
            changed = sorted(k for k in keys if previous.get(k) != fingerprint.get(k))
            raise ValueError(
                f"results_dir={results_dir} holds results made with other settings ({changed} "
                "differ); choose another results_dir, or skip_done=false to overwrite them"
            )
    _write_json(marker, fingerprint)


def _wanted_baselines(cfg: DictConfig) -> list[str]:
    wanted = [str(b) for b in (cfg.get("baselines") or [])]
    unknown = sorted(set(wanted) - {"copy", "flow"})
    if unknown:
        raise ValueError(f"baselines: unknown {unknown}; choose from [copy, flow] ([] to skip)")
    return wanted


def _baselines(
    cfg: DictConfig, sequences: Sequence[VideoSequence], split: str
) -> dict[str, dict[str, float]]:
    """Copy-first-mask and flow propagation (the segmenter's own flow settings) on the same videos.

    Results go to ``baselines_dir/<flow settings hash>/`` so runs with the same videos and flow share them.
    """
    wanted = _wanted_baselines(cfg)
    if not wanted:
        return {}
    from ovsnet.baselines import run_baselines

    spec = _plain((cfg.get("inference") or {}).get("flow")) or {"backend": "dis"}
    if isinstance(spec, Mapping) and spec.get("backend") == "zero":  # "no flow" ablation: DIS defaults
        spec = {"backend": "dis"}
    key = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]
    root = Path(str(cfg.get("baselines_dir") or Path(str(cfg.output_dir)) / "baselines")) / f"flow-{key}"
    flows = {"flow": lambda: make_flow(spec)} if "flow" in wanted else {}
    return run_baselines(
        sequences, root, flows, split, workers=cfg.get("score_workers"), copy="copy" in wanted
    )


def _job_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 - not inside a Hydra app
        return []


# ---------------------------------------------------------------------------------------------- entry points
def run_evaluation(
    cfg: Mapping[str, Any] | DictConfig, loggers: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Segment, score, write and log one dataset split; returns the run summary (also ``summary.json``).

    The summary holds ``metrics`` (the official global row: ``J&F-Mean``, ``J-Mean``, ``F-Mean``...; empty
    when the split has no ground truth beyond the first frames), ``fps``, ``path_counts``,
    ``path_fractions``, per-stage ``timings_ms_per_frame``, the sequence counts, the inference settings and
    the job's overrides.
    """
    cfg = _as_config(cfg)
    loggers = list(loggers or [])
    split = str(cfg.get("split") or cfg.data.get("val_split") or "val")
    output_dir = Path(str(cfg.output_dir))
    results_dir = Path(str(cfg.get("results_dir") or output_dir / "results" / split))
    device = resolve_device(cfg.get("device", "auto"))
    _check_model_source(cfg)
    _wanted_baselines(cfg)
    config = resolved_cascade_config(cfg)
    sequences = _select(load_sequences(cfg.data, split), cfg.get("sequences"), cfg.get("max_sequences"))
    log.info(
        "evaluating %d sequences of %s on %s into %s (inference %s)",
        len(sequences),
        split,
        device,
        results_dir,
        (cfg.get("inference") or {}).get("name", "full"),
    )
    inference = cfg.get("inference") or {}
    settings = {
        **dataclasses.asdict(config),
        "name": inference.get("name"),
        "flow": _plain(inference.get("flow")),
    }
    skip_done = bool(cfg.get("skip_done", True))
    ckpt = cfg.get("ckpt_path")
    _guard_results_dir(
        results_dir,
        {
            "ckpt_path": str(Path(str(ckpt)).expanduser().resolve()) if ckpt else None,
            "model_config": _plain(cfg.get("model_config")),
            "model_overrides": _plain(cfg.get("model_overrides")),
            "random_init": bool(cfg.get("random_init", False)),
            "precision": str(cfg.get("precision", "32")),
            "inference": settings,
        },
        skip_done,
    )
    start = time.perf_counter()
    results = segment_dataset(
        make_segmenter_factory(cfg, device, config),
        sequences,
        results_dir,
        skip_done=skip_done,
        progress=bool(cfg.get("progress", True)),
    )
    summary: dict[str, Any] = {
        "task": "dataset",
        "split": split,
        "device": str(device),
        "ckpt_path": cfg.get("ckpt_path"),
        "results_dir": str(results_dir),
        **summarize_results(results),
        "wall_seconds": time.perf_counter() - start,
    }
    metrics: dict[str, float] = {}
    per_object = None
    if cfg.get("score", True) and _scorable(sequences):
        metrics, per_object = _score(sequences, results_dir, output_dir, split, cfg.get("score_workers"))
    elif cfg.get("score", True):
        log.warning(
            "split %s has no ground truth beyond the first frames: results written, not scored "
            "(DAVIS test-dev is scored by the challenge server)",
            split,
        )
    summary["metrics"] = metrics
    summary["baselines"] = _baselines(cfg, sequences, split) if metrics else {}
    summary["sequences"] = {
        r.name: {
            "num_frames": r.num_frames,
            "fps": r.fps,
            "skipped": r.skipped,
            "path_counts": dict(r.path_counts),
        }
        for r in results
    }
    summary["inference"] = settings
    summary["overrides"] = _job_overrides()
    summary["config"] = _plain(cfg)
    sheet = None
    media = cfg.get("media") or {}
    if media.get("enabled", True):
        sheet = contact_sheet_of(
            sequences,
            results_dir,
            int(media.get("num_sequences", 4)),
            int(media.get("frames_per_sequence", 4)),
            int(media.get("tile_width", 240)),
        )
        if sheet is not None:
            from ovsnet.viz import save_png

            save_png(output_dir / "overlays.png", sheet)
    _write_json(output_dir / SUMMARY_FILE, summary)
    _log_to_loggers(loggers, summary, per_object, sheet)
    nan = float("nan")
    beside = "  ".join(f"{k} {v['J&F-Mean']:.4f}" for k, v in summary["baselines"].items())
    log.info(
        "J&F %.4f  J %.4f  F %.4f  (baselines: %s)  |  %.2f fps over %d frames  |  paths %s  |  %s",
        metrics.get("J&F-Mean", nan),
        metrics.get("J-Mean", nan),
        metrics.get("F-Mean", nan),
        beside or "off",
        summary["fps"],
        summary["num_frames"],
        summary["path_counts"],
        output_dir / SUMMARY_FILE,
    )
    return summary


def run_video(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """``task=video``: segment one video file / frame folder from its first-frame mask (``video_cli``)."""
    from ovsnet.inference.video_cli import segment_video

    cfg = _as_config(cfg)
    for key in ("video", "first_mask"):
        if not cfg.get(key):
            raise ValueError(f"task=video needs {key}=<path>")
        if not Path(str(cfg.get(key))).expanduser().exists():
            raise FileNotFoundError(f"{key}={cfg.get(key)}: not found")
    _check_model_source(cfg)
    device = resolve_device(cfg.get("device", "auto"))
    model = load_model_from_config(cfg, device)
    out_dir = Path(str(cfg.get("video_out_dir") or Path(str(cfg.output_dir)) / "video"))
    inference = cfg.get("inference") or {}
    result = segment_video(
        model,
        Path(str(cfg.video)),
        Path(str(cfg.first_mask)),
        out_dir,
        device=device,
        flow=make_flow(inference.get("flow")),
        cascade_config=resolved_cascade_config(cfg),
        overlay=bool(cfg.get("overlay", True)),
        autocast=autocast_dtype(cfg.get("precision"), device),
        progress=bool(cfg.get("progress", True)),
    )
    summary = {k: v for k, v in dataclasses.asdict(result).items() if k != "decisions"}
    summary.update(task="video", video=str(cfg.video), out_dir=str(out_dir))
    _write_json(Path(str(cfg.output_dir)) / SUMMARY_FILE, summary)
    return summary


# ---------------------------------------------------------------------------------------------- sweeps
def _strip_key(key: str) -> str:
    return key.lstrip("+~")


def swept_keys(overrides: Sequence[str]) -> list[str]:
    """Keys swept by Hydra multirun overrides (``a=1,2``, ``range(...)``, ``choice(...)``, group lists)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    return [_strip_key(o.key_or_group) for o in parsed if o.is_sweep_override()]


def _override_values(overrides: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if sep:
            out[_strip_key(key)] = value
    return out


def _number(value: Any) -> Any:
    if isinstance(value, (int, float)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _value_of(summary: Mapping[str, Any], key: str) -> Any:
    overrides = _override_values(summary.get("overrides") or [])
    if key in overrides:
        return _number(overrides[key])
    config = summary.get("config") or {}
    value = OmegaConf.select(OmegaConf.create(config), key, default=None) if config else None
    if isinstance(value, DictConfig) and "name" in value:
        value = value.name  # a config group (e.g. inference): its preset name
    return _number(_plain(value))


def _method_label(key: str, value: Any) -> str:
    leaf = key.split(".")[-1]
    if key == "inference" or leaf == "name":
        return _PRESET_LABELS.get(str(value), f"OVS-Net ({value})")
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"OVS-Net ({_SYMBOLS.get(leaf, leaf)} = {shown})"


def _read_runs(multirun_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(run dir, summary)`` of every dataset run below ``multirun_dir`` (video-task runs are skipped)."""
    runs = []
    for path in sorted(multirun_dir.rglob(SUMMARY_FILE)):
        try:
            summary = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("unreadable %s; left out of the sweep summary", path)
            continue
        if isinstance(summary, dict) and summary.get("task") == "dataset":
            runs.append((path.parent, summary))
    return runs


def _markdown(table: pd.DataFrame, columns: Sequence[str], best: Sequence[str]) -> str:
    """A GitHub markdown table; metric columns ×100 with one decimal, the best in bold (paper style)."""
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join(":---" if c == "Methods" else "---:" for c in columns) + "|"
    maxima = {c: table[c].max() for c in best if c in table and table[c].notna().any()}
    lines = [header, rule]
    for _, row in table.iterrows():
        cells = []
        for c in columns:
            v = row[c]
            if c in _PAPER_COLUMNS:
                text = "–" if pd.isna(v) else f"{100.0 * v:.1f}"
                cells.append(f"**{text}**" if c in maxima and v == maxima[c] else text)
            elif isinstance(v, float):
                cells.append(f"{v:.3g}" if not c.endswith("%") else f"{v:.1f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize_sweep(
    multirun_dir: str | os.PathLike, swept_key: str | None = None, out_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """The paper-style table of a multirun: one row per run (``summary.json``), sorted by the swept value.

    Columns: the swept key, ``Methods`` (paper-style label), ``J-Mean``, ``F-Mean``, ``J&F-Mean`` (the paper's
    G-mean), ``fps``, per-path percentages and the run directory. Writes ``sweep_<key>.csv`` (raw values in
    [0, 1]), ``sweep_<key>.md`` (×100, best in bold) and ``sweep_<key>.png`` (J/F/J&F against numeric
    values; bars per run otherwise) into ``out_dir`` (default: the multirun directory).
    """
    root = Path(multirun_dir)
    runs = _read_runs(root)
    if not runs:
        raise FileNotFoundError(
            f"{root}: no {SUMMARY_FILE} in any run directory (is it a multirun of evaluate.py?)"
        )
    if swept_key is None:
        values = [_override_values(s.get("overrides") or []) for _, s in runs]
        varying = sorted({k for v in values for k in v if len({str(x.get(k)) for x in values}) > 1})
        if len(varying) != 1:
            raise ValueError(
                f"{root}: cannot tell the swept key ({varying or 'no override varies'}); pass --key"
            )
        swept_key = varying[0]
    rows = []
    for run_dir, s in runs:
        value = _value_of(s, swept_key)
        metrics = s.get("metrics") or {}
        row = {swept_key: value, "Methods": _method_label(swept_key, value)}
        row.update({c: metrics.get(c, float("nan")) for c in _PAPER_COLUMNS})
        row["fps"] = s.get("fps", float("nan"))
        row.update({f"{p} %": 100.0 * float((s.get("path_fractions") or {}).get(p, 0.0)) for p in PATHS})
        row["run_dir"] = os.path.relpath(run_dir, root)
        rows.append(row)
    table = pd.DataFrame(rows)
    numeric = all(isinstance(v, (int, float)) for v in table[swept_key])
    table = table.sort_values(swept_key if numeric else "run_dir").reset_index(drop=True)
    out = Path(out_dir) if out_dir is not None else root
    stem = "sweep_" + swept_key.replace("/", "_")
    with atomic_path(out / f"{stem}.csv") as tmp:
        table.to_csv(tmp, index=False)
    columns = ["Methods", *_PAPER_COLUMNS, "fps", *[f"{p} %" for p in PATHS]]
    with atomic_path(out / f"{stem}.md") as tmp:
        tmp.write_text(_markdown(table, columns, _PAPER_COLUMNS))
    from ovsnet.viz import ablation_bar_plot, sweep_plot

    plot = out / f"{stem}.png"
    if table[list(_PAPER_COLUMNS)].notna().any().any():
        if numeric:
            sweep_plot(table, swept_key, plot, title=f"{swept_key} sweep ({len(table)} runs)")
        else:
            ablation_bar_plot(table, "Methods", plot, title=f"{swept_key} ({len(table)} runs)")
    else:
        log.warning("%s: no run has scores; no plot written", root)
    log.info(
        "sweep over %s (%d runs): %s, %s, %s",
        swept_key,
        len(table),
        out / f"{stem}.md",
        out / f"{stem}.csv",
        plot,
    )
    return table


class SweepSummaryCallback(Callback):
    """Hydra callback: after a multirun of ``evaluate.py``, write the sweep table(s) and plot(s).

    ``key`` names the swept config key; by default every key swept on the command line gets its summary.
    """

    def __init__(self, key: str | None = None) -> None:
        self.key = key

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        keys = [self.key] if self.key else swept_keys(list(config.hydra.overrides.task))
        if not keys:
            log.info("multirun without a swept key: no sweep summary")
            return
        for key in keys:
            try:
                summarize_sweep(sweep_dir, key)
            except Exception:  # noqa: BLE001 - a summary failure must not hide the runs' own results
                log.exception("sweep summary over %s in %s failed", key, sweep_dir)


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ovsnet.evaluation summarize MULTIRUN_DIR [--key inference.rho_reid] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m ovsnet.evaluation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    summarize = commands.add_parser("summarize", help="paper-style table + plot of an evaluate.py multirun")
    summarize.add_argument("multirun_dir", type=Path)
    summarize.add_argument("--key", default=None, help="the swept config key (default: the one that varies)")
    summarize.add_argument("--out", type=Path, default=None, help="output folder (default: multirun_dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        table = summarize_sweep(args.multirun_dir, args.key, args.out)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        log.error("%s", exc)
        return 2
    log.info("\n%s", table.drop(columns=["run_dir"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
