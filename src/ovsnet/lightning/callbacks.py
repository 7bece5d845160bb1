"""Video-segmentation stage of validation: the online segmenter over the validation videos, scored with J&F.

:class:`VideoSegmentationCallback` runs every ``every_n_epochs`` validation epochs, on the trainer's device,
with the model being trained; under DDP the videos are split over ranks and the per-object sums are reduced
before logging, so every rank logs the same ``val/J``, ``val/F`` and ``val/JF``.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from ovsnet.data.sequence import VideoSequence
from ovsnet.inference.cascade import PATHS
from ovsnet.inference.settings import InferenceSettings, dotted, resolve
from ovsnet.utils import autocast_dtype

__all__ = ["VideoSegmentationCallback", "truncate_sequence"]

log = logging.getLogger(__name__)

_MIN_FRAMES = 3  # the DAVIS protocol scores neither the first nor the last annotated frame


def truncate_sequence(sequence: VideoSequence, max_frames: int | None) -> VideoSequence:
    """The first ``max_frames`` frames of a sequence (annotations and per-frame masks cut alike)."""
    if not max_frames or len(sequence) <= max_frames:
        return sequence
    keep = int(max_frames)
    changes: dict[str, Any] = {
        "frame_paths": list(sequence.frame_paths)[:keep],
        "annotation_paths": {i: p for i, p in sequence.annotation_paths.items() if i < keep},
    }
    mask_paths = getattr(sequence, "mask_paths", None)
    if isinstance(mask_paths, Mapping):  # SegTrack v2: one binary mask per object per frame
        changes["mask_paths"] = {i: m for i, m in mask_paths.items() if i < keep}
    return dataclasses.replace(sequence, **changes)


class VideoSegmentationCallback(pl.Callback):
    """Every ``every_n_epochs`` validation epochs: segment the validation videos online and log J / F / J&F.

    Args:
        every_n_epochs: run on validation epochs whose ``current_epoch + 1`` is a multiple of it.
        max_sequences: the first N validation videos only (None: all).
        max_frames: the first N frames of each video only (None: all; at least 3 frames are kept, as the DAVIS
            protocol scores neither the first nor the last annotated frame).
        inference: settings as in ``conf/inference/*.yaml`` (``InferenceSettings`` sections plus ``name`` and
            ``flow: {_target_: <estimator>, ...}``, instantiated by Hydra; none: the segmenter's default DIS
            flow); the module's stored ``inference_settings`` (calibrated for it) replace its values.
        overrides: settings that beat the module's stored ones too (dotted or nested keys:
            ``{"reid.rho": 1.5}``), as a user's command-line keys beat a checkpoint's in evaluate.py.
        log_media: log an overlay contact sheet of rank zero's first videos to W&B / TensorBoard loggers.
        media_sequences / media_frames / media_width: size of that sheet.
        keep_results: keep the result PNGs (``<log dir>/video_segmentation/epoch<E>_rank<R>_*``).
        prefix: metric prefix (``val`` → ``val/J``, ``val/F``, ``val/JF``, ``val/fps``,
            ``val/paths/<path>``).

    Sequences come from the trainer's datamodule: its ``val_sequences()``
    (:meth:`~ovsnet.lightning.datamodules.DAVISDataModule.val_sequences`).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_sequences: int | None = None,
        max_frames: int | None = None,
        inference: Mapping[str, Any] | None = None,
        log_media: bool = True,
        media_sequences: int = 2,
        media_frames: int = 4,
        media_width: int = 200,
        keep_results: bool = False,
        prefix: str = "val",
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if max_frames is not None and max_frames < _MIN_FRAMES:
            raise ValueError(
                f"max_frames must be >= {_MIN_FRAMES} (first and last frames are not scored), "
                f"got {max_frames}"
            )
        self.every_n_epochs = int(every_n_epochs)
        self.max_sequences = max_sequences
        self.max_frames = max_frames
        spec = dict(inference or {})
        self.flow_spec = spec.pop("flow", None)
        if self.flow_spec is not None and "_target_" not in self.flow_spec:
            raise ValueError(
                f"VideoSegmentationCallback: flow must name its estimator with _target_ (as "
                f"conf/inference/flow/*.yaml do), got {dict(self.flow_spec)}"
            )
        # checked now (unknown keys, bad values), not after an epoch of training
        self.preset = spec
        self.overrides = dotted(overrides, "VideoSegmentationCallback overrides")
        self.config = resolve(self.preset, None, self.overrides)
        self.log_media = log_media
        self.media_sequences = media_sequences
        self.media_frames = media_frames
        self.media_width = media_width
        self.keep_results = keep_results
        self.prefix = prefix
        self._sequences: list[VideoSequence] | None = None

    # ------------------------------------------------------------------ helpers
    def _due(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def _all_sequences(self, trainer: pl.Trainer) -> list[VideoSequence]:
        if self._sequences is None:
            dm = trainer.datamodule
            if dm is None:
                raise RuntimeError(
                    "VideoSegmentationCallback needs a datamodule with validation videos "
                    "(trainer.fit(..., datamodule=...))"
                )
            getter = getattr(dm, "val_sequences", None)
            if not callable(getter):
                raise RuntimeError(f"{type(dm).__name__} provides no validation videos (val_sequences())")
            sequences = list(getter())
            sequences = sequences[: self.max_sequences] if self.max_sequences else sequences
            self._sequences = [truncate_sequence(s, self.max_frames) for s in sequences]
        return self._sequences

    @staticmethod
    def _autocast(trainer: pl.Trainer, device: torch.device) -> torch.dtype | None:
        precision = str(getattr(trainer, "precision", "32"))
        return autocast_dtype(precision if "mixed" in precision else "32", device)

    def _results_root(self, trainer: pl.Trainer) -> Path:
        base = Path(trainer.log_dir or trainer.default_root_dir) / "video_segmentation"
        base.mkdir(parents=True, exist_ok=True)
        return base

    def _config_for(self, pl_module: pl.LightningModule) -> InferenceSettings:
        """The settings with the module's calibrated ``inference_settings`` (as its checkpoint will have)."""
        stored = getattr(pl_module, "hparams", {}).get("inference_settings")
        return resolve(self.preset, stored, self.overrides)

    # ------------------------------------------------------------------ hook
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        from ovsnet.inference.runner import segment_dataset
        from ovsnet.inference.segmenter import VideoSegmenter
        from ovsnet.metrics.davis import evaluate_sequences
        from ovsnet.utils_logging import contact_sheet_of, log_image

        world, rank = trainer.world_size, trainer.global_rank
        mine = self._all_sequences(trainer)[rank::world]
        model = getattr(pl_module.model, "_orig_mod", pl_module.model)
        device = pl_module.device
        was_training = model.training
        out = Path(
            tempfile.mkdtemp(
                prefix=f"epoch{trainer.current_epoch:03d}_rank{rank}_", dir=self._results_root(trainer)
            )
        )
        # [J sum, F sum, objects, frames, seconds, path counts...] summed over ranks
        totals = torch.zeros(5 + len(PATHS), dtype=torch.float64, device=device)
        sheet = None
        try:
            if mine:
                segmenter = VideoSegmenter(
                    model,
                    instantiate(dict(self.flow_spec)) if self.flow_spec else None,
                    self._config_for(pl_module),
                    device,
                    autocast_dtype=self._autocast(trainer, device),
                )
                results = segment_dataset(lambda: segmenter, mine, out, skip_done=False, progress=False)
                scores = evaluate_sequences(mine, out, workers=0).per_object
                totals[0] = float(scores["J-Mean"].fillna(0.0).sum())
                totals[1] = float(scores["F-Mean"].fillna(0.0).sum())
                totals[2] = float(len(scores))
                totals[3] = float(sum(r.num_frames for r in results))
                totals[4] = float(sum(r.seconds for r in results))
                for k, path in enumerate(PATHS):
                    totals[5 + k] = float(sum(r.path_counts.get(path, 0) for r in results))
                if self.log_media and rank == 0 and trainer.loggers:
                    sheet = contact_sheet_of(
                        mine, out, self.media_sequences, self.media_frames, self.media_width
                    )
        finally:
            model.train(was_training)
            if not self.keep_results:
                shutil.rmtree(out, ignore_errors=True)
        if world > 1:
            totals = trainer.strategy.reduce(totals, reduce_op="sum")
        j_sum, f_sum, objects, frames, seconds = (float(v) for v in totals[:5])
        if objects == 0:
            log.warning("video segmentation: no object scored (no validation videos?)")
            return
        metrics = {f"{self.prefix}/J": j_sum / objects, f"{self.prefix}/F": f_sum / objects}
        metrics[f"{self.prefix}/JF"] = (metrics[f"{self.prefix}/J"] + metrics[f"{self.prefix}/F"]) / 2.0
        metrics[f"{self.prefix}/fps"] = frames / seconds if seconds > 0 else 0.0
        metrics.update({f"{self.prefix}/paths/{p}": float(totals[5 + k]) for k, p in enumerate(PATHS)})
        for name, value in metrics.items():  # already reduced: equal on every rank (sync_dist only averages)
            pl_module.log(name, value, on_step=False, on_epoch=True, sync_dist=world > 1)
        log.info(
            "epoch %d video segmentation: J&F %.4f (J %.4f, F %.4f) over %d objects, %.1f fps",
            trainer.current_epoch,
            metrics[f"{self.prefix}/JF"],
            metrics[f"{self.prefix}/J"],
            metrics[f"{self.prefix}/F"],
            int(objects),
            metrics[f"{self.prefix}/fps"],
        )
        if sheet is not None:
            log_image(trainer.loggers, f"{self.prefix}/overlays", sheet, step=trainer.global_step)
