"""Media for Lightning loggers: overlay contact sheets, images and tables to W&B / TensorBoard.

Shared by the validation callback (``lightning``) and evaluation, which must not import each other; media
are a nicety, so a logger that refuses one is reported with a warning and never fails a run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

from ovsnet.data.io import read_label_map
from ovsnet.data.sequence import VideoSequence

__all__ = ["contact_sheet_of", "log_image", "log_table"]

log = logging.getLogger(__name__)


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
        step = (len(seq) - 1) / max(frames_per_sequence - 1, 1)
        for index in sorted({round(i * step) for i in range(frames_per_sequence)}):
            png = root / seq.name / f"{seq.frame_names[index]}.png"
            if png.is_file():
                tiles.append(overlay(seq.frame(index), read_label_map(png)))
                labels.append(f"{seq.name}:{seq.frame_names[index]}")
    if not tiles:
        return None
    return contact_sheet(
        tiles, columns=min(frames_per_sequence, len(tiles)), tile_width=tile_width, labels=labels
    )


def log_image(loggers: Sequence[Any], key: str, image: np.ndarray, step: int = 0) -> None:
    """Log an RGB uint8 image to the W&B / TensorBoard loggers among ``loggers`` (others are ignored)."""
    for logger in loggers:
        try:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[image], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")
        except Exception:  # noqa: BLE001 - media are a nicety; never fail a run over them
            log.warning("could not log image %s to %s", key, type(logger).__name__, exc_info=True)


def log_table(loggers: Sequence[Any], key: str, table: pd.DataFrame) -> None:
    """Log a table to the W&B loggers among ``loggers`` (the others have no table type)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            try:
                logger.log_table(key=key, dataframe=table)
            except Exception:  # noqa: BLE001 - media are a nicety
                log.warning("could not log table %s to W&B", key, exc_info=True)
