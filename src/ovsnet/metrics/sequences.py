"""J and F of every object and frame of one sequence, from label maps in memory or a results folder.

The official protocol's sequence-level rules live here: the object count comes from the first ground-truth
frame, the first and last annotated frames are not evaluated, missing objects are empty masks and a result
label above the object count is an error naming the sequence and frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ovsnet.data.io import VOID_LABEL, DataError, read_label_map
from ovsnet.data.sequence import VideoSequence
from ovsnet.metrics.measures import (
    BOUND_TH,
    STATISTICS,
    boundary_counts,
    boundary_radius,
    db_statistics,
    disk,
    f_from_counts,
)

__all__ = ["SequenceEvaluation", "evaluate_label_maps", "evaluate_sequence"]


@dataclass
class SequenceEvaluation:
    """Per-object, per-frame J and F of one sequence (first and last annotated frames excluded).

    ``j`` and ``f`` have shape (objects, frames); object ``k`` (row ``k - 1``) is named ``<name>_<k>`` as in
    the official per-sequence table.
    """

    name: str
    frame_names: list[str]
    j: np.ndarray
    f: np.ndarray

    @property
    def num_objects(self) -> int:
        return int(self.j.shape[0])

    @property
    def object_names(self) -> list[str]:
        return [f"{self.name}_{k}" for k in range(1, self.num_objects + 1)]

    def statistics(self) -> dict[str, list[float]]:
        """``J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay``: one value per object."""
        table: dict[str, list[float]] = {}
        for measure, values in (("J", self.j), ("F", self.f)):
            stats = [db_statistics(row) for row in values]
            for i, statistic in enumerate(STATISTICS):
                table[f"{measure}-{statistic}"] = [s[i] for s in stats]
        return table


class _FrameScorer:
    """J and F of every object of one frame; holds what depends only on the sequence (the tolerance disk)."""

    def __init__(self, num_objects: int, shape: tuple[int, int], bound_th: float) -> None:
        self.num_objects = num_objects
        self.kernel = disk(boundary_radius(shape, bound_th))

    def __call__(self, gt: np.ndarray, res: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``gt``: ground-truth labels (void and labels above K are background); ``res``: labels <= K."""
        k = self.num_objects
        j = np.ones(k)
        counts = np.zeros((k, 4), dtype=np.int64)  # n_fg, n_gt, fg_match, gt_match; all 0 scores F = 1
        boxes = [(x, y, x + w, y + h) for x, y, w, h in (cv2.boundingRect(gt), cv2.boundingRect(res)) if w]
        if k and boxes:
            # One crop holds every labelled pixel of both maps, plus one pixel for neighbours and half-pixel
            # boundaries; all objects are counted on it.
            height, width = gt.shape
            y0, y1 = max(min(b[1] for b in boxes) - 1, 0), min(max(b[3] for b in boxes) + 1, height)
            x0, x1 = max(min(b[0] for b in boxes) - 1, 0), min(max(b[2] for b in boxes) + 1, width)
            gt, res = gt[y0:y1, x0:x1], res[y0:y1, x0:x1]
            for obj in range(1, k + 1):
                gt_mask, res_mask = gt == obj, res == obj
                gt_area, res_area = np.count_nonzero(gt_mask), np.count_nonzero(res_mask)
                if gt_area == 0 and res_area == 0:
                    continue  # empty union: J = 1, F = 1
                inters = np.count_nonzero(gt_mask & res_mask)
                j[obj - 1] = inters / (gt_area + res_area - inters)
                counts[obj - 1] = boundary_counts(gt_mask, res_mask, self.kernel, y1 == height, x1 == width)
        f = f_from_counts(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
        return j, f


def _num_objects(first_gt: np.ndarray) -> int:
    """Official object count: the largest label of the first ground-truth frame, void excluded."""
    labels = np.where(first_gt == VOID_LABEL, 0, first_gt)
    return int(labels.max()) if labels.size else 0


def _check_result(name: str, frame: str, gt: np.ndarray, res: np.ndarray, num_objects: int) -> np.ndarray:
    res = np.asarray(res)
    if res.shape != gt.shape:
        raise DataError(
            f"sequence {name!r}, frame {frame!r}: result mask has size {res.shape[:2]} but the ground "
            f"truth is {gt.shape}"
        )
    if res.dtype != np.uint8:
        if res.size and (res.min() < 0 or res.max() > 255):
            raise DataError(f"sequence {name!r}, frame {frame!r}: result labels outside 0..255")
        res = res.astype(np.uint8)
    res = np.ascontiguousarray(res)  # OpenCV needs contiguous rows
    top = int(res.max()) if res.size else 0
    if top > num_objects:
        raise DataError(
            f"sequence {name!r}, frame {frame!r}: result has object index {top} but the ground truth "
            f"has {num_objects} object(s) (counted on its first frame)"
        )
    return res


def evaluate_label_maps(
    name: str,
    ground_truth: Sequence[np.ndarray],
    results: Sequence[np.ndarray | None],
    frame_names: Sequence[str] | None = None,
    bound_th: float = BOUND_TH,
) -> SequenceEvaluation:
    """Evaluate in-memory label maps of one sequence.

    ``ground_truth`` holds the label maps of every annotated frame in order, first and last included;
    ``results`` the predicted label maps of the same frames (entries for the first and last frames are not
    used and may be ``None``). Raises :class:`DataError` naming the sequence and frame on bad input.
    """
    if len(results) != len(ground_truth):
        raise DataError(
            f"sequence {name!r}: {len(results)} result masks for {len(ground_truth)} annotated frames"
        )
    names = list(frame_names) if frame_names is not None else [f"{i:05d}" for i in range(len(ground_truth))]
    if len(names) != len(ground_truth):
        raise DataError(
            f"sequence {name!r}: {len(names)} frame names for {len(ground_truth)} annotated frames"
        )
    if not ground_truth:
        raise DataError(f"sequence {name!r} has no annotated frames")
    frames = ((names[i], ground_truth[i], results[i]) for i in range(1, len(ground_truth) - 1))
    return _evaluate_frames(name, np.asarray(ground_truth[0]), frames, bound_th)


def _evaluate_frames(
    name: str,
    first_gt: np.ndarray,
    frames: Iterable[tuple[str, np.ndarray, np.ndarray | None]],
    bound_th: float,
) -> SequenceEvaluation:
    """Shared loop: frames come as (name, ground truth, result) triples, lazily read by the caller."""
    num_objects = _num_objects(first_gt)
    scorer = _FrameScorer(num_objects, first_gt.shape[:2], bound_th)
    evaluated: list[str] = []
    j_cols: list[np.ndarray] = []
    f_cols: list[np.ndarray] = []
    for frame, gt, res in frames:
        gt = np.asarray(gt)
        if gt.shape != first_gt.shape:
            raise DataError(
                f"sequence {name!r}, frame {frame!r}: ground truth has size {gt.shape} but the first "
                f"frame is {first_gt.shape}"
            )
        if res is None:
            raise DataError(f"sequence {name!r}, frame {frame!r}: result mask is missing")
        res = _check_result(name, frame, gt, res, num_objects)
        j, f = scorer(np.ascontiguousarray(gt, dtype=np.uint8), res)
        evaluated.append(frame)
        j_cols.append(j)
        f_cols.append(f)
    shape = (num_objects, len(evaluated))
    j_all = np.stack(j_cols, axis=1) if j_cols else np.zeros(shape)
    f_all = np.stack(f_cols, axis=1) if f_cols else np.zeros(shape)
    return SequenceEvaluation(
        name=name, frame_names=evaluated, j=j_all.reshape(shape), f=f_all.reshape(shape)
    )


def _read_result(name: str, frame: str, path: Path) -> np.ndarray:
    try:
        return read_label_map(path)  # raises "missing file: <path>" for an absent mask
    except DataError as exc:
        raise DataError(f"sequence {name!r}, frame {frame!r}: result mask: {exc}") from exc


def evaluate_sequence(
    sequence: VideoSequence, results_dir: str | os.PathLike, bound_th: float = BOUND_TH
) -> SequenceEvaluation:
    """Evaluate ``<results_dir>/<sequence.name>/<frame>.png`` against the sequence's annotations.

    Result masks are read only for the evaluated frames (annotated frames except the first and the last) and
    are named like the input frames. For single-object sequences (DAVIS 2016) every non-zero result label is
    the object, as every non-zero ground-truth label is.
    """
    annotated = sequence.annotated_indices
    if not annotated:
        raise DataError(f"sequence {sequence.name!r} has no annotated frames")
    folder = Path(results_dir) / sequence.name
    frame_names = sequence.frame_names

    def frames() -> Iterable[tuple[str, np.ndarray, np.ndarray]]:
        for index in annotated[1:-1]:
            frame = frame_names[index]
            gt = sequence.label_map(index)
            assert gt is not None  # annotated by construction
            res = _read_result(sequence.name, frame, folder / f"{frame}.png")
            if sequence.single_object:  # DAVIS 2016 protocol: every labelled pixel is the one object
                res = (res != 0).astype(np.uint8)
            yield frame, gt, res

    first = sequence.label_map(annotated[0])
    assert first is not None
    return _evaluate_frames(sequence.name, first, frames(), bound_th)
