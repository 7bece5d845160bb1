"""LightningDataModules for DAVIS-layout video folders (real or synthetic) and COCO instances."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ovsnet.data.io import DataError
from ovsnet.data.loading import ensure_synthetic, load_sequences, select_sequences
from ovsnet.data.sequence import VideoSequence
from ovsnet.data.transforms import SampleTransform
from ovsnet.data.video_batches import FrameRef, VideoBatchSampler, VideoFrameDataset, collate_detection

__all__ = ["COCODataModule", "DAVISDataModule", "ResumableBatches", "ResumableDataLoader"]

log = logging.getLogger(__name__)


def _loader_kwargs(num_workers: int, pin_memory: bool, persistent_workers: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "collate_fn": collate_detection,
    }
    if num_workers > 0:
        kw["persistent_workers"] = persistent_workers
    return kw


class ResumableBatches(Sampler[list[int]]):
    """A batch sampler that starts its next pass ``skip`` batches in, for a run resumed mid-epoch.

    The wrapped sampler is ``self.sampler`` (as in torch's ``BatchSampler``), where Lightning finds it to call
    ``set_epoch`` at every epoch start, so each epoch is shuffled anew. Skipped batches are never loaded.
    """

    def __init__(self, sampler: VideoBatchSampler) -> None:
        self.sampler = sampler
        self.skip = 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.sampler), skip, None)


class ResumableDataLoader(DataLoader):
    """The training DataLoader with Lightning's stateful-loader protocol (``state_dict``/``load_state_dict``).

    Lightning stores ``state_dict()`` in every checkpoint (``loops.fit_loop.state_dict.combined_loader``) and
    hands it back on resume: the epoch's shuffle and how many of its batches were consumed. A run resumed from
    a mid-epoch ``last.ckpt`` (written every N steps, then killed) finishes that epoch with the batches it had
    not seen (without it, the epoch restarted from its first batch, with a warning). ``current_epoch`` gives
    the trainer's restored epoch: when Lightning counts the saved epoch as finished (a checkpoint written
    after its last batch, or at the end of a run stopped by ``max_steps``), the next epoch starts from its
    first batch.
    """

    def __init__(
        self, *args: Any, current_epoch: Callable[[], int | None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.batch_sampler, ResumableBatches):
            raise TypeError("ResumableDataLoader needs batch_sampler=ResumableBatches(...)")
        self._current_epoch = current_epoch
        self._consumed = 0

    def __iter__(self) -> Iterator[Any]:
        self._consumed = self.batch_sampler.skip
        for batch in super().__iter__():
            self._consumed += 1  # Lightning does not prefetch from a loader of known length
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.batch_sampler.sampler.epoch), "batches": self._consumed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        current = self._current_epoch() if self._current_epoch is not None else epoch
        if current is not None and current != epoch:
            return  # Lightning finished that epoch: the next one starts from its first batch
        self.batch_sampler.sampler.set_epoch(epoch)
        self.batch_sampler.skip = batches
        if batches:
            log.info("resuming mid-epoch: epoch %d goes on after its first %d batches", epoch, batches)


class DAVISDataModule(pl.LightningDataModule):
    """Frames of a DAVIS-layout folder as detection samples, batched V videos × M/V frames.

    ``per_dataset_finetune`` adds the first-frame annotations of the videos to be segmented and
    ``lucid_samples_per_frame`` Lucid Data Dreaming samples of each (paper 4.1): those of ``adapt_root``'s
    ``adapt_split`` when given (a DAVIS 2016 or 2017 layout at any resolution, detected; only the first
    frame's annotation of each video is ever read, so a folder like DAVIS test-dev works), else the
    validation videos'.

    ``holdout`` names videos of ``train_split`` that training never sees: they are the validation videos
    (``val_split`` is then not read), so a dataset without a val split (DAVIS 2016 train alone) still has
    honest validation, and adapting to other videos never touches what validation measures.
    """

    def __init__(
        self,
        root: str,
        year: int = 2017,
        train_split: str = "train",
        val_split: str = "val",
        resolution: str = "480p",
        frames_per_video: int = 4,
        videos_per_batch: int = 8,
        per_dataset_finetune: bool = False,
        lucid_samples_per_frame: int = 0,
        lucid: Mapping[str, Any] | None = None,
        image_size: int | None = None,
        min_sizes: Sequence[int] | None = None,
        max_size: int | None = None,
        augment: bool = True,
        min_area: int = 16,
        val_frame_stride: int = 1,
        val_batch_size: int = 2,
        num_workers: int = 2,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        on_error: str = "skip",
        generate_synthetic: Mapping[str, Any] | None = None,
        eval_root: str | None = None,
        eval_layout: str = "davis",
        holdout: Sequence[str] | None = None,
        adapt_root: str | None = None,
        adapt_split: str = "val",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if eval_layout not in ("davis", "segtrack"):
            raise ValueError(f"eval_layout must be 'davis' or 'segtrack', got {eval_layout!r}")
        self.save_hyperparameters(logger=False)
        self.root = Path(root)
        self.eval_root = Path(eval_root) if eval_root else self.root
        self.data_train: VideoFrameDataset | None = None
        self.data_val: VideoFrameDataset | None = None

    @property
    def batch_size(self) -> int:
        """Frames per mini-batch on one device (M = V × M/V); used to scale the learning rate."""
        return int(self.hparams.frames_per_video * self.hparams.videos_per_batch)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset when the folder is missing and a synthetic config is given.

        Runs on one process per node, before ``setup``; the generator writes atomically.
        """
        ensure_synthetic(self.root, self.hparams.generate_synthetic)

    def _sequences(self, split: str, root: Path, layout: str, key: str) -> list[VideoSequence]:
        hp = self.hparams
        return load_sequences(
            root, split, layout=layout, year=hp.year, resolution=hp.resolution, source=f"data.{key}"
        )

    def _split_with_holdout(self) -> tuple[list[VideoSequence], list[VideoSequence]]:
        """``train_split`` divided into (training, held-out) videos by ``holdout``."""
        every = self._sequences(self.hparams.train_split, self.root, "davis", "root")
        held = select_sequences(every, list(self.hparams.holdout or []))
        names = {s.name for s in held}
        return [s for s in every if s.name not in names], held

    def train_sequences(self) -> list[VideoSequence]:
        """The training split's videos (``root``, DAVIS layout), less the ``holdout`` ones."""
        if self.hparams.holdout:
            return self._split_with_holdout()[0]
        return self._sequences(self.hparams.train_split, self.root, "davis", "root")

    def val_sequences(self) -> list[VideoSequence]:
        """The validation videos: the ``holdout`` videos of ``train_split`` when named, else ``val_split`` of
        ``eval_root`` in ``eval_layout`` ([] without a val split): what the video-segmentation callback scores
        (and what per-dataset fine-tuning adapts to when no ``adapt_root`` is given)."""
        hp = self.hparams
        if hp.holdout:
            return self._split_with_holdout()[1]
        if not hp.val_split:
            return []
        key = "eval_root" if hp.eval_root else "root"
        return self._sequences(hp.val_split, self.eval_root, hp.eval_layout, key)

    def adapt_sequences(self) -> list[VideoSequence]:
        """The videos per-dataset fine-tuning adapts to: ``adapt_split`` of ``adapt_root`` (layout and
        resolution detected), else the validation videos. Only their first frames are read for training."""
        hp = self.hparams
        if not hp.adapt_root:
            return self.val_sequences()
        from ovsnet.data.davis import detect_davis_layout

        year, resolution = detect_davis_layout(hp.adapt_root, hp.adapt_split)
        return load_sequences(
            hp.adapt_root, hp.adapt_split, year=year, resolution=resolution, source="data.adapt_root"
        )

    def _lucid(self) -> Any:
        from ovsnet.data.lucid import LucidConfig, LucidDreamer

        return LucidDreamer(LucidConfig(**dict(self.hparams.lucid or {})))

    def _train_refs(self, train: list[VideoSequence], evals: list[VideoSequence]) -> list[FrameRef]:
        refs = [FrameRef(v, i) for v, seq in enumerate(train) for i in seq.annotated_indices]
        for k, seq in enumerate(evals):
            v = len(train) + k
            if not seq.has_label(0):
                raise DataError(
                    f"sequence {seq.name!r} has no first-frame annotation for per-dataset finetuning"
                )
            refs.append(FrameRef(v, 0))
            refs.extend(FrameRef(v, 0, j) for j in range(self.hparams.lucid_samples_per_frame))
        return refs

    def setup(self, stage: str | None = None) -> None:
        if self.data_train is not None:
            return
        hp = self.hparams
        train = self.train_sequences()
        val = self.val_sequences()
        evals = self.adapt_sequences() if hp.per_dataset_finetune else []
        lucid = self._lucid() if hp.per_dataset_finetune and hp.lucid_samples_per_frame > 0 else None
        transform = SampleTransform(hp.image_size, hp.augment, hp.min_sizes, hp.max_size)
        self.data_train = VideoFrameDataset(
            train + evals,
            self._train_refs(train, evals),
            transform,
            lucid,
            min_area=hp.min_area,
            on_error=hp.on_error,
            seed=hp.seed,
        )
        if val:
            self.data_val = VideoFrameDataset.from_sequences(
                val,
                frame_stride=hp.val_frame_stride,
                transform=SampleTransform(hp.image_size),
                min_area=hp.min_area,
                on_error=hp.on_error,
                seed=hp.seed,
            )
        log.info(
            "DAVIS %s: %d train items (%d videos, %d adapted to by their first frame), %d val items",
            self.root,
            len(self.data_train),
            len(train) + len(evals),
            len(evals),
            len(self.data_val) if self.data_val else 0,
        )

    def _rank(self) -> tuple[int, int]:
        trainer = self._trainer if hasattr(self, "_trainer") else None
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self) -> DataLoader:
        assert self.data_train is not None, "call setup() first"
        world, rank = self._rank()
        sampler = VideoBatchSampler(
            self.data_train.video_of_item,
            self.hparams.videos_per_batch,
            self.hparams.frames_per_video,
            shuffle=True,
            seed=self.hparams.seed,
            num_replicas=world,
            rank=rank,
        )
        return ResumableDataLoader(
            self.data_train,
            batch_sampler=ResumableBatches(sampler),
            current_epoch=self._current_epoch,
            **_loader_kwargs(
                self.hparams.num_workers, self.hparams.pin_memory, self.hparams.persistent_workers
            ),
        )

    def _current_epoch(self) -> int | None:
        """The trainer's epoch (restored from the checkpoint when resuming); None without a trainer."""
        trainer = self._trainer if hasattr(self, "_trainer") else None
        return int(trainer.current_epoch) if trainer is not None else None

    def _eval_loader(self, dataset: Dataset | None) -> DataLoader:
        if dataset is None:
            raise DataError(f"{self.root}: no validation split configured (val_split)")
        return DataLoader(
            dataset,
            batch_size=self.hparams.val_batch_size,
            shuffle=False,
            **_loader_kwargs(
                self.hparams.num_workers, self.hparams.pin_memory, self.hparams.persistent_workers
            ),
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.data_val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.data_val)


class COCODataModule(pl.LightningDataModule):
    """COCO instance segmentation (pre-training); multi-scale shortest edge from ``min_sizes``."""

    def __init__(
        self,
        image_dir: str,
        ann_file: str,
        val_image_dir: str | None = None,
        val_ann_file: str | None = None,
        class_agnostic: bool = False,
        min_sizes: Sequence[int] | None = (640, 720, 800, 920, 1080),
        max_size: int | None = 1900,
        augment: bool = False,
        batch_size: int = 2,
        min_area: int = 1,
        num_workers: int = 2,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        on_error: str = "skip",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.data_train: Dataset | None = None
        self.data_val: Dataset | None = None

    @property
    def batch_size(self) -> int:
        return int(self.hparams.batch_size)

    def _dataset(self, image_dir: str, ann_file: str, train: bool) -> Dataset:
        from ovsnet.data.coco import COCOInstances

        hp = self.hparams
        if not os.path.isdir(image_dir):
            raise DataError(
                f"COCO image folder not found: {image_dir} (expected <image_dir>/<file_name> "
                f"for every image of {ann_file})"
            )
        transform = SampleTransform(None, hp.augment and train, hp.min_sizes if train else None, hp.max_size)
        if not train and hp.min_sizes:
            transform = SampleTransform(None, False, [min(hp.min_sizes)], hp.max_size)
        return COCOInstances(
            image_dir,
            ann_file,
            class_agnostic=hp.class_agnostic,
            transform=transform,
            min_area=hp.min_area,
            on_error=hp.on_error,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.data_train is not None:
            return
        hp = self.hparams
        self.data_train = self._dataset(hp.image_dir, hp.ann_file, train=True)
        if hp.val_ann_file:
            self.data_val = self._dataset(hp.val_image_dir or hp.image_dir, hp.val_ann_file, train=False)

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise DataError("COCO validation data not configured (val_ann_file)")
        trainer = getattr(self, "_trainer", None)
        sampler = None
        if trainer is not None and trainer.world_size > 1:  # trainers here run use_distributed_sampler=False
            sampler = DistributedSampler(dataset, trainer.world_size, trainer.global_rank, shuffle=shuffle)
            shuffle = False
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            **_loader_kwargs(
                self.hparams.num_workers, self.hparams.pin_memory, self.hparams.persistent_workers
            ),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.data_train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.data_val, shuffle=False)
