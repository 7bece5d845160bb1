"""The result tables of an evaluation, as the official tool prints and writes them (CSV), and JSON.

:class:`DavisEvaluation` turns per-sequence J/F arrays into the global row, the per-sequence and per-object
tables, and writes them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ovsnet.data.io import atomic_path
from ovsnet.metrics.sequences import SequenceEvaluation

__all__ = ["GLOBAL_COLUMNS", "PER_OBJECT_COLUMNS", "PER_SEQUENCE_COLUMNS", "DavisEvaluation", "csv_paths"]

log = logging.getLogger(__name__)

GLOBAL_COLUMNS: tuple[str, ...] = (
    "J&F-Mean",
    "J-Mean",
    "J-Recall",
    "J-Decay",
    "F-Mean",
    "F-Recall",
    "F-Decay",
)
PER_SEQUENCE_COLUMNS: tuple[str, ...] = ("Sequence", "J-Mean", "F-Mean")
PER_OBJECT_COLUMNS: tuple[str, ...] = ("Sequence", *GLOBAL_COLUMNS)


def csv_paths(results_dir: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """Where the official tool writes its tables: ``global_results-<split>.csv``,
    ``per-sequence_results-<split>.csv`` in the results folder."""
    folder = Path(results_dir)
    return folder / f"global_results-{split}.csv", folder / f"per-sequence_results-{split}.csv"


@dataclass
class DavisEvaluation:
    """Results of a DAVIS-style evaluation: tables as the official tool prints them, plus raw per-frame scores.

    ``global_results``: one row, :data:`GLOBAL_COLUMNS`. ``per_sequence_results``: one row per object,
    :data:`PER_SEQUENCE_COLUMNS` (``Sequence`` is ``<sequence>_<object>``). ``per_object``: the same rows with
    every statistic (:data:`PER_OBJECT_COLUMNS`). ``sequences`` keeps the per-frame J/F arrays.
    """

    sequences: list[SequenceEvaluation]
    split: str = "val"
    global_results: pd.DataFrame = field(init=False, repr=False)
    per_sequence_results: pd.DataFrame = field(init=False, repr=False)
    per_object: pd.DataFrame = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows: dict[str, list[Any]] = {column: [] for column in PER_OBJECT_COLUMNS}
        for seq in self.sequences:
            stats = seq.statistics()
            rows["Sequence"].extend(seq.object_names)
            for column, values in stats.items():
                rows[column].extend(values)
        rows["J&F-Mean"] = [(j + f) / 2.0 for j, f in zip(rows["J-Mean"], rows["F-Mean"], strict=True)]
        self.per_object = pd.DataFrame({column: rows[column] for column in PER_OBJECT_COLUMNS})
        self.per_sequence_results = self.per_object.loc[:, list(PER_SEQUENCE_COLUMNS)].copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            means = {
                column: float(np.mean(np.asarray(rows[column], dtype=np.float64)))
                for column in GLOBAL_COLUMNS[1:]
            }
        means["J&F-Mean"] = (means["J-Mean"] + means["F-Mean"]) / 2.0
        self.global_results = pd.DataFrame([[means[c] for c in GLOBAL_COLUMNS]], columns=list(GLOBAL_COLUMNS))

    @property
    def scores(self) -> dict[str, float]:
        """The global figures as a plain dict (``"J&F-Mean"``, ``"J-Mean"``, ...)."""
        return {column: float(self.global_results.at[0, column]) for column in GLOBAL_COLUMNS}

    @property
    def per_frame(self) -> dict[str, dict[str, np.ndarray]]:
        """``{"<sequence>_<object>": {"J": (frames,), "F": (frames,)}}``."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for seq in self.sequences:
            for k, object_name in enumerate(seq.object_names):
                out[object_name] = {"J": seq.j[k], "F": seq.f[k]}
        return out

    def csv_paths(self, results_dir: str | os.PathLike) -> tuple[Path, Path]:
        return csv_paths(results_dir, self.split)

    def write_csv(
        self, results_dir: str | os.PathLike, float_format: str | None = "%.3f"
    ) -> tuple[Path, Path]:
        """Write ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv`` atomically.

        Columns and the default 3-decimal format are those of the official tool; ``float_format=None`` keeps
        full precision.
        """
        global_path, per_sequence_path = self.csv_paths(results_dir)
        for table, path in (
            (self.global_results, global_path),
            (self.per_sequence_results, per_sequence_path),
        ):
            with atomic_path(path) as tmp:
                table.to_csv(tmp, index=False, float_format=float_format)
        log.info("wrote %s and %s", global_path, per_sequence_path)
        return global_path, per_sequence_path

    def to_dict(self) -> dict[str, Any]:
        """Every figure at full precision (non-finite values become ``None``)."""
        per_object = [
            {column: _json_value(value) for column, value in row.items()}
            for row in self.per_object.to_dict(orient="records")
        ]
        per_frame = {}
        for seq in self.sequences:
            for k, object_name in enumerate(seq.object_names):
                per_frame[object_name] = {
                    "frames": list(seq.frame_names),
                    "J": [_json_value(v) for v in seq.j[k].tolist()],
                    "F": [_json_value(v) for v in seq.f[k].tolist()],
                }
        return {
            "split": self.split,
            "global": {column: _json_value(value) for column, value in self.scores.items()},
            "per_object": per_object,
            "per_frame": per_frame,
        }

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically."""
        target = Path(path)
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
        log.info("wrote %s", target)
        return target


def _json_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
