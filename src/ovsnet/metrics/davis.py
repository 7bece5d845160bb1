"""DAVIS 2017 semi-supervised evaluation: region similarity J, boundary F-measure and their statistics.

Every figure equals the official DAVIS 2017 evaluation tool (``davis2017-evaluation``, semi-supervised task);
the same integer counts go through the same floating-point operations, so the numbers agree bit for bit.
What differs is only how the counts are obtained:

* J of every object of a frame is counted on one crop holding all labelled pixels, instead of on the full
  image per object;
* the boundary maps and the tolerance dilation of F run on each object's bounding box only (the union of its
  ground-truth and result masks, one pixel wider; ground truth and result as two channels of one array),
  which yields the same counts as full-image maps because every boundary pixel lies inside that box;
* sequences are spread over one process per core (this one included), OpenCV single-threaded in each.

Conventions reproduced from the official tool (they decide the numbers, so they are kept even where odd):

* the number of objects of a sequence is the largest label of its first ground-truth frame (void excluded);
  a label the first frame lacks is an object that is empty throughout; larger labels in later ground-truth
  frames count as background;
* the first and the last annotated frames are not evaluated (and their result masks are not read);
* void pixels (255) of the ground truth count as background and are *not* excluded (the official tool
  passes no void mask for the semi-supervised task); :func:`db_eval_iou` and :func:`db_eval_boundary` still
  accept an explicit ``void_pixels`` mask with the official semantics;
* an object missing from a result is an empty mask; a result label above the object count is an error;
* J = |A∩B| / |A∪B|, and 1 when the union is empty. F uses one-pixel boundaries (``seg2bmap``) matched within
  a disk of radius ``ceil(0.008 · image diagonal)``; an empty result boundary against a non-empty ground-truth
  boundary scores precision 1, recall 0 (and vice versa), two empty boundaries score 1;
* per object: mean, recall (fraction of frames > 0.5) and decay (mean of the first minus the last of 4
  frame bins, whose bin edges are cast to ``uint8`` as upstream does: they wrap beyond 255 frames);
* global: each statistic averaged over all objects of all sequences; J&F-Mean = (J-Mean + F-Mean) / 2.

``python -m ovsnet.metrics`` is the command-line front end (see :mod:`ovsnet.metrics.__main__`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ovsnet.data.davis import load_davis
from ovsnet.data.io import VOID_LABEL, DataError, atomic_path, read_label_map
from ovsnet.data.loading import select_sequences
from ovsnet.data.sequence import VideoSequence

__all__ = [
    "BOUND_TH",
    "GLOBAL_COLUMNS",
    "PER_OBJECT_COLUMNS",
    "PER_SEQUENCE_COLUMNS",
    "DavisEvaluation",
    "SequenceEvaluation",
    "boundary_radius",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "disk",
    "evaluate_folder",
    "evaluate_label_maps",
    "evaluate_sequence",
    "evaluate_sequences",
    "seg2bmap",
]

log = logging.getLogger(__name__)

BOUND_TH = 0.008
"""Boundary tolerance as a fraction of the image diagonal (values >= 1 are a radius in pixels)."""
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
_STATISTICS = ("Mean", "Recall", "Decay")
_N_BINS = 4
_MIN_FRAMES_PER_WORKER = 40


# --------------------------------------------------------------------------------------------- primitives


def disk(radius: float) -> np.ndarray:
    """Disk structuring element, ``uint8``; the same array as ``skimage.morphology.disk(radius)``.

    Reproduced with numpy (pixels of the ``[-r, r]`` grid whose squared distance is at most ``r²``) so that the
    evaluation needs no scikit-image.
    """
    coords = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(coords, coords)
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def boundary_radius(shape: Sequence[int], bound_th: float = BOUND_TH) -> float:
    """Tolerance radius in pixels: ``bound_th`` itself when >= 1, else ``ceil(bound_th · diagonal)``."""
    if bound_th >= 1:
        return bound_th
    return float(np.ceil(bound_th * np.linalg.norm(shape[-2:])))


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary map of a binary mask (the official ``_seg2bmap``, no resizing).

    A pixel is a boundary pixel when it differs from its east, south or south-east neighbour; on the last row
    only the east neighbour counts, on the last column only the south one, and the bottom-right pixel is never
    a boundary. The boundary thus sits half a pixel towards the origin from the true contour.
    """
    seg = np.asarray(seg).astype(bool)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap expects an HxW mask, got shape {seg.shape}")
    return _bmap(seg, bottom_edge=True, right_edge=True)


def _bmap(seg: np.ndarray, bottom_edge: bool, right_edge: bool) -> np.ndarray:
    """``seg2bmap`` of a crop ``(h, w[, channels])``: pixels past the crop are zero; the edge rules apply only
    where the crop ends at the image's last row / column."""
    h, w = seg.shape[:2]
    padded = np.zeros((h + 1, w + 1, *seg.shape[2:]), dtype=bool)
    padded[:h, :w] = seg
    east = padded[:h, 1:]
    south = padded[1:, :w]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ padded[1:, 1:])
    if bottom_edge:
        boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    if right_edge:
        boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    if bottom_edge and right_edge:
        boundary[-1, -1] = False
    return boundary


def _f_from_counts(
    n_fg: np.ndarray, n_gt: np.ndarray, fg_match: np.ndarray, gt_match: np.ndarray
) -> np.ndarray:
    """Boundary F-measure from boundary and match counts, with the official empty-boundary conventions."""
    n_fg = np.asarray(n_fg, dtype=np.float64)
    n_gt = np.asarray(n_gt, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_fg > 0, np.asarray(fg_match, dtype=np.float64) / n_fg, 1.0)
        recall = np.where(n_gt > 0, np.asarray(gt_match, dtype=np.float64) / n_gt, 1.0)
        precision = np.where((n_fg > 0) & (n_gt == 0), 0.0, precision)
        recall = np.where((n_fg == 0) & (n_gt > 0), 0.0, recall)
        total = precision + recall
        return np.where(total == 0, 0.0, 2 * precision * recall / np.where(total == 0, 1.0, total))


def _channel_counts(pairs: np.ndarray) -> tuple[int, int]:
    """Non-zero counts of the two channels of a contiguous (h, w, 2) boolean array, in one pass each.

    Each pixel's two bytes read as one uint16: masking the low / high byte counts one channel without a strided
    view (several times faster than counting ``pairs[..., 0]``).
    """
    words = pairs.view(np.uint16)
    first, second = (0x00FF, 0xFF00) if sys.byteorder == "little" else (0xFF00, 0x00FF)
    return int(np.count_nonzero(words & first)), int(np.count_nonzero(words & second))


def _boundary_counts(
    gt: np.ndarray, res: np.ndarray, kernel: np.ndarray, bottom_edge: bool = True, right_edge: bool = True
) -> tuple[int, int, int, int]:
    """(n_fg, n_gt, fg_match, gt_match) of two boolean masks, computed on their bounding box.

    The masks are the full image, or a crop of it past which both masks are empty; ``bottom_edge`` /
    ``right_edge`` say whether the crop's last row / column is the image's.
    """
    x, y, w, h = cv2.boundingRect((gt | res).view(np.uint8))
    if w == 0 or h == 0:
        return 0, 0, 0, 0
    height, width = gt.shape
    # One pixel up/left (boundaries sit half a pixel towards the origin) and one down/right (neighbours).
    y0, y1 = max(y - 1, 0), min(y + h + 1, height)
    x0, x1 = max(x - 1, 0), min(x + w + 1, width)
    bottom, right = bottom_edge and y1 == height, right_edge and x1 == width
    # Both masks as the two channels of one crop: one boundary pass and one dilation serve both.
    pair = np.stack((gt[y0:y1, x0:x1], res[y0:y1, x0:x1]), axis=-1)
    boundaries = _bmap(pair, bottom, right)
    n_gt, n_fg = _channel_counts(boundaries)
    if n_gt == 0 or n_fg == 0:
        return n_fg, n_gt, 0, 0
    # Every boundary pixel lies in the crop, so dilating the crop gives the full-image values inside it.
    dilated = cv2.dilate(boundaries.view(np.uint8), kernel)
    # Swapping the two bytes of each pixel pairs ground-truth boundaries with the dilated result and back.
    matches = boundaries.view(np.uint16) & dilated.view(np.uint16).byteswap()
    gt_match, fg_match = _channel_counts(matches.view(bool))
    return n_fg, n_gt, fg_match, gt_match


def db_eval_iou(
    annotation: np.ndarray, segmentation: np.ndarray, void_pixels: np.ndarray | None = None
) -> float | np.ndarray:
    """Region similarity J (Jaccard index) of binary masks ``(..., H, W)``; 1 where the union is empty.

    ``void_pixels`` (same shape) are left out of both intersection and union. Returns a float for one HxW pair,
    else an array over the leading axes.
    """
    annotation = np.asarray(annotation).astype(bool)
    segmentation = np.asarray(segmentation).astype(bool)
    if annotation.shape != segmentation.shape:
        raise ValueError(
            f"annotation {annotation.shape} and segmentation {segmentation.shape} differ in shape"
        )
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels).astype(bool)
        if void_pixels.shape != annotation.shape:
            raise ValueError(
                f"annotation {annotation.shape} and void pixels {void_pixels.shape} differ in shape"
            )
        keep = ~void_pixels
        inters = np.count_nonzero(annotation & segmentation & keep, axis=(-2, -1))
        union = np.count_nonzero((annotation | segmentation) & keep, axis=(-2, -1))
    else:
        inters = np.count_nonzero(annotation & segmentation, axis=(-2, -1))
        union = np.count_nonzero(annotation | segmentation, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.where(union == 0, 1.0, np.asarray(inters, dtype=np.float64) / np.where(union == 0, 1, union))
    return float(j) if j.ndim == 0 else j


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> float | np.ndarray:
    """Boundary F-measure of binary masks ``(..., H, W)`` (official ``db_eval_boundary``).

    ``void_pixels`` (same shape) are removed from both masks before their boundaries are taken. Returns a float
    for one HxW pair, else an array over the leading axes.
    """
    annotation = np.asarray(annotation).astype(bool)
    segmentation = np.asarray(segmentation).astype(bool)
    if annotation.shape != segmentation.shape:
        raise ValueError(
            f"annotation {annotation.shape} and segmentation {segmentation.shape} differ in shape"
        )
    if annotation.ndim < 2:
        raise ValueError(f"db_eval_boundary expects (..., H, W) masks, got shape {annotation.shape}")
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels).astype(bool)
        if void_pixels.shape != annotation.shape:
            raise ValueError(
                f"annotation {annotation.shape} and void pixels {void_pixels.shape} differ in shape"
            )
        annotation = annotation & ~void_pixels
        segmentation = segmentation & ~void_pixels
    lead = annotation.shape[:-2]
    gts = annotation.reshape(-1, *annotation.shape[-2:])
    ress = segmentation.reshape(-1, *segmentation.shape[-2:])
    kernel = disk(boundary_radius(annotation.shape, bound_th))
    counts = np.array(
        [_boundary_counts(g, r, kernel) for g, r in zip(gts, ress, strict=True)], dtype=np.int64
    )
    f = _f_from_counts(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3]).reshape(lead)
    return float(f) if f.ndim == 0 else f


def db_statistics(per_frame_values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame values (NaNs ignored by mean and decay).

    Recall is the fraction of frames above 0.5; decay is the mean of the first of 4 frame bins minus that of the
    last, with the official bin edges (``uint8``-cast, so they wrap for sequences longer than 255 frames).
    """
    values = np.asarray(per_frame_values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > 0.5))
        edges = (np.round(np.linspace(1, len(values), _N_BINS + 1) + 1e-10) - 1).astype(np.int64) % 256
        first = values[edges[0] : (edges[1] + 1) % 256]
        last = values[edges[_N_BINS - 1] : (edges[_N_BINS] + 1) % 256]
        decay = float(np.nanmean(first) - np.nanmean(last))
    return mean, recall, decay


# --------------------------------------------------------------------------------------------- sequences


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
            for i, statistic in enumerate(_STATISTICS):
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
                counts[obj - 1] = _boundary_counts(gt_mask, res_mask, self.kernel, y1 == height, x1 == width)
        f = _f_from_counts(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
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


# --------------------------------------------------------------------------------------------- folders


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
        folder = Path(results_dir)
        return folder / f"global_results-{self.split}.csv", folder / f"per-sequence_results-{self.split}.csv"

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


def _default_workers(sequences: Sequence[VideoSequence]) -> int:
    """One process per available core, no more than the sequences, and fewer for small jobs: a helper can take
    a fraction of a second to start (forkserver), the time of about ``_MIN_FRAMES_PER_WORKER`` frames."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    frames = sum(max(len(seq.annotated_indices) - 2, 0) for seq in sequences)
    return max(1, min(cores, len(sequences), frames // _MIN_FRAMES_PER_WORKER))


@contextlib.contextmanager
def _single_threaded_opencv() -> Iterator[None]:
    """OpenCV's own threads only add synchronisation to these small per-frame operations (and stall when a
    core is busy elsewhere); parallelism comes from evaluating sequences in separate processes."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _evaluate_task(args: tuple[VideoSequence, str, float]) -> SequenceEvaluation:
    sequence, results_dir, bound_th = args
    return evaluate_sequence(sequence, results_dir, bound_th)


def _pool_context() -> multiprocessing.context.BaseContext:
    """How helper processes start.

    ``fork`` (instant) on Linux when this process runs a single Python thread: the helpers only use numpy,
    Pillow and OpenCV, and OpenCV's thread pool is switched off before forking (see
    :func:`_single_threaded_opencv`), so nothing they touch can be left locked. Otherwise (a training run with
    logger threads, other platforms) ``forkserver`` with this module preloaded, or ``spawn``: safe, but a
    fraction of a second to start.
    """
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _main_is_importable() -> bool:
    """Worker processes (forkserver/spawn) re-import the parent's ``__main__`` file; ``python - < x`` has none."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.isfile(path)


def _evaluate_in_pool(
    sequences: list[VideoSequence],
    results_dir: str,
    bound_th: float,
    n_workers: int,
    context: multiprocessing.context.BaseContext,
) -> list[SequenceEvaluation]:
    """``n_workers - 1`` helper processes take sequences from the front while this process, instead of waiting
    for them to start, takes not-yet-started ones from the back."""
    done: list[SequenceEvaluation | None] = [None] * len(sequences)
    try:
        with ProcessPoolExecutor(n_workers - 1, mp_context=context, initializer=_init_worker) as pool:
            with warnings.catch_warnings():  # Python >= 3.12 warns on fork with (idle) native threads around
                warnings.filterwarnings(
                    "ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning
                )
                futures = [pool.submit(_evaluate_task, (seq, results_dir, bound_th)) for seq in sequences]
            try:
                for i in reversed(range(len(sequences))):
                    if futures[i].cancel():  # no helper has it yet
                        done[i] = evaluate_sequence(sequences[i], results_dir, bound_th)
                for i, future in enumerate(futures):
                    if done[i] is None:
                        done[i] = future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except BrokenProcessPool as exc:
        # a helper died (killed, out of memory): same numbers, computed here
        log.warning("process pool failed (%s); evaluating the remaining sequences in this process", exc)
        done = [
            d if d is not None else evaluate_sequence(seq, results_dir, bound_th)
            for d, seq in zip(done, sequences, strict=True)
        ]
    return [d for d in done if d is not None]


def evaluate_sequences(
    sequences: Sequence[VideoSequence],
    results_dir: str | os.PathLike,
    split: str = "val",
    workers: int | None = None,
    bound_th: float = BOUND_TH,
) -> DavisEvaluation:
    """Evaluate already-loaded sequences against ``<results_dir>/<sequence>/<frame>.png``.

    ``workers``: processes, this one included (default: one per available core, at most one per sequence, a
    single one for small jobs; 0 or 1 runs in this process only). The tables keep the order given.
    """
    start = time.perf_counter()
    results_dir = str(results_dir)
    if not Path(results_dir).is_dir():
        raise DataError(f"results folder {results_dir} does not exist")
    sequences = list(sequences)
    n_workers = _default_workers(sequences) if workers is None else max(1, min(int(workers), len(sequences)))
    context = _pool_context()
    if n_workers > 1 and context.get_start_method() != "fork" and not _main_is_importable():
        log.info("the __main__ script cannot be re-imported by worker processes; evaluating in this process")
        n_workers = 1
    with _single_threaded_opencv():
        if n_workers <= 1:
            evaluated = [evaluate_sequence(seq, results_dir, bound_th) for seq in sequences]
        else:
            evaluated = _evaluate_in_pool(sequences, results_dir, bound_th, n_workers, context)
    evaluation = DavisEvaluation(sequences=evaluated, split=split)
    log.info(
        "evaluated %d sequences (%d objects) in %.2f s with %d worker(s): J&F-Mean %.4f",
        len(evaluated),
        len(evaluation.per_object),
        time.perf_counter() - start,
        n_workers,
        evaluation.scores["J&F-Mean"],
    )
    return evaluation


def evaluate_folder(
    davis_root: str | os.PathLike,
    results_dir: str | os.PathLike,
    split: str = "val",
    year: int = 2017,
    resolution: str = "480p",
    sequences: Sequence[str] | None = None,
    workers: int | None = None,
) -> DavisEvaluation:
    """Evaluate a results folder against a DAVIS-layout dataset split (the official semi-supervised protocol).

    ``sequences`` restricts the evaluation to the named sequences of the split (in the given order).
    """
    loaded = load_davis(davis_root, year=year, split=split, resolution=resolution)
    if sequences is not None:
        try:
            loaded = select_sequences(loaded, sequences)
        except DataError as exc:
            raise DataError(f"DAVIS {year} split {split!r} of {davis_root}: {exc}") from None
    return evaluate_sequences(loaded, results_dir, split=split, workers=workers)
