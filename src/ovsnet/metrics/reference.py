"""The oracle of :mod:`ovsnet.metrics`: a literal re-implementation of the official DAVIS 2017
semi-supervised evaluation, plus a random DAVIS-layout dataset to run it on (the unit tests and
``bench/metrics_speed.py`` check the fast path against it; nothing else uses it).

Every ground-truth and result mask of a sequence is read into one-hot stacks, then for every object and
every frame a full-image IoU, full-image one-pixel boundary maps and two full-image dilations by the
tolerance disk: slow and obviously right, which is what the fast library path is compared against.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ovsnet.data.io import write_frame, write_label_map
from ovsnet.metrics.measures import disk
from ovsnet.metrics.tables import GLOBAL_COLUMNS, DavisEvaluation

# --------------------------------------------------------------------------------------------- reference


def reference_iou(gt: np.ndarray, res: np.ndarray, void: np.ndarray | None = None) -> float:
    """J of two HxW binary masks, literally: counts over the full image, 1 for an empty union."""
    gt = gt.astype(bool)
    res = res.astype(bool)
    keep = np.ones_like(gt) if void is None else ~void.astype(bool)
    inters = np.sum(gt & res & keep)
    union = np.sum((gt | res) & keep)
    if union == 0:
        return 1.0
    return float(inters / union)


def reference_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a full HxW mask: differs from its east, south or south-east neighbour."""
    seg = seg.astype(bool)
    height, width = seg.shape
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, : width - 1] = seg[:, 1:]
    south[: height - 1, :] = seg[1:, :]
    south_east[: height - 1, : width - 1] = seg[1:, 1:]
    boundary = np.logical_or(np.logical_or(seg != east, seg != south), seg != south_east)
    boundary[height - 1, :] = seg[height - 1, :] != east[height - 1, :]
    boundary[:, width - 1] = seg[:, width - 1] != south[:, width - 1]
    boundary[height - 1, width - 1] = False
    return boundary


def reference_f(
    res: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> float:
    """Boundary F of a full HxW result mask against the ground truth, literally (full-image dilations)."""
    keep = np.ones(gt.shape, dtype=bool) if void is None else ~void.astype(bool)
    radius = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(res.shape))
    fg_boundary = reference_seg2bmap(res.astype(bool) & keep)
    gt_boundary = reference_seg2bmap(gt.astype(bool) & keep)
    kernel = disk(radius)
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), kernel)
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), kernel)
    n_fg = int(np.sum(fg_boundary))
    n_gt = int(np.sum(gt_boundary))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = np.sum(fg_boundary * gt_dil) / float(n_fg)
        recall = np.sum(gt_boundary * fg_dil) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def reference_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall (> 0.5) and decay (first minus last of 4 bins, uint8 bin edges) of per-frame values."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


def reference_evaluate_masks(
    gt_labels: np.ndarray, res_labels: np.ndarray, bound_th: float = 0.008
) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F of one sequence from label stacks of *all* annotated frames.

    The first and last frames are dropped; void (255) becomes background; objects are 1..max(first frame);
    missing result objects are empty; a result label above the object count raises ``ValueError``.
    """
    gt_labels = np.where(gt_labels == 255, 0, gt_labels).astype(np.float64)
    num_objects = int(np.max(gt_labels[0]))
    gt = gt_labels[1:-1]
    res = res_labels[1:-1].astype(np.float64)
    ids = np.arange(1, num_objects + 1)[:, None, None, None]
    gt_masks = ids == gt[None]
    res_objects = int(np.max(res)) if res.size else 0
    if res_objects > num_objects:
        raise ValueError(f"result index {res_objects} above the {num_objects} objects of the sequence")
    res_masks = ids == res[None]
    j = np.zeros(gt_masks.shape[:2])
    f = np.zeros(gt_masks.shape[:2])
    for obj in range(num_objects):
        for t in range(gt.shape[0]):
            j[obj, t] = reference_iou(gt_masks[obj, t], res_masks[obj, t])
            f[obj, t] = reference_f(res_masks[obj, t], gt_masks[obj, t], bound_th=bound_th)
    return j, f


def _read_png(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def reference_evaluate_folder(
    davis_root: str | os.PathLike,
    results_dir: str | os.PathLike,
    split: str = "val",
    resolution: str = "480p",
) -> dict:
    """The plain per-frame loop over a DAVIS 2017 folder: ``{"global": {...}, "objects": {name: (J, F)}}``."""
    root = Path(davis_root)
    names = [
        n.strip()
        for n in (root / "ImageSets" / "2017" / f"{split}.txt").read_text().splitlines()
        if n.strip()
    ]
    stats: dict[str, list[float]] = {c: [] for c in GLOBAL_COLUMNS[1:]}
    objects: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in names:
        ann_paths = sorted((root / "Annotations" / resolution / name).glob("*.png"))
        gt_labels = np.stack([_read_png(p) for p in ann_paths])
        res_labels = np.zeros_like(gt_labels)
        for i, p in enumerate(ann_paths[1:-1], start=1):
            res_labels[i] = _read_png(Path(results_dir) / name / p.name)
        j, f = reference_evaluate_masks(gt_labels, res_labels)
        for obj in range(j.shape[0]):
            objects[f"{name}_{obj + 1}"] = (j[obj], f[obj])
            for measure, values in (("J", j[obj]), ("F", f[obj])):
                for column, value in zip(
                    ("Mean", "Recall", "Decay"), reference_statistics(values), strict=True
                ):
                    stats[f"{measure}-{column}"].append(value)
    figures = {c: float(np.mean(v)) for c, v in stats.items()}
    figures["J&F-Mean"] = (figures["J-Mean"] + figures["F-Mean"]) / 2.0
    return {"global": {c: figures[c] for c in GLOBAL_COLUMNS}, "objects": objects}


# --------------------------------------------------------------------------------------------- data


def _draw_blobs(
    shape: tuple[int, int], centres: np.ndarray, radii: np.ndarray, angles: np.ndarray, void_width: int
) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.uint8)
    for obj, ((cy, cx), (ry, rx), angle) in enumerate(zip(centres, radii, angles, strict=True), start=1):
        blob = np.zeros(shape, dtype=np.uint8)
        cv2.ellipse(blob, (int(cx), int(cy)), (max(1, int(rx)), max(1, int(ry))), float(angle), 0, 360, 1, -1)
        labels[blob > 0] = obj
    if void_width > 0:  # DAVIS marks a thin void band along object contours
        edges = cv2.morphologyEx(
            (labels > 0).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((void_width, void_width), np.uint8)
        )
        labels[edges > 0] = 255
    return labels


def _perturb(labels: np.ndarray, rng: np.random.Generator, num_objects: int) -> np.ndarray:
    """A plausible 'result': shifted, grown or shrunk objects, sometimes dropped, plus spurious blobs."""
    gt = np.where(labels == 255, 0, labels)
    out = np.zeros_like(gt)
    for obj in range(1, num_objects + 1):
        mask = (gt == obj).astype(np.uint8)
        if rng.random() < 0.08:
            continue  # lost object
        dy, dx = rng.integers(-6, 7, size=2)
        mask = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
        size = int(rng.integers(1, 6))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        mask = cv2.dilate(mask, kernel) if rng.random() < 0.5 else cv2.erode(mask, kernel)
        out[mask > 0] = obj
    if rng.random() < 0.3:
        h, w = gt.shape
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        r = int(rng.integers(3, max(4, min(h, w) // 10)))
        spurious = np.zeros_like(out)
        cv2.circle(spurious, (cx, cy), r, 1, -1)
        out[spurious > 0] = int(rng.integers(1, num_objects + 1))
    return out


def make_dataset(
    root: str | os.PathLike,
    results: str | os.PathLike,
    sequences: int = 10,
    frames: int = 30,
    size: tuple[int, int] = (480, 854),
    objects: int = 3,
    seed: int = 0,
    split: str = "val",
) -> None:
    """Write a DAVIS 2017-layout dataset (``root``) and perturbed results (``results``)."""
    root, results = Path(root), Path(results)
    rng = np.random.default_rng(seed)
    h, w = size
    blank = np.zeros((h, w, 3), dtype=np.uint8)
    names = [f"seq{i:02d}" for i in range(sequences)]
    for name in names:
        centres = rng.uniform((0.2 * h, 0.2 * w), (0.8 * h, 0.8 * w), size=(objects, 2))
        radii = rng.uniform(0.05 * min(h, w), 0.2 * min(h, w), size=(objects, 2))
        angles = rng.uniform(0, 180, size=objects)
        for t in range(frames):
            frame = f"{t:05d}"
            labels = _draw_blobs((h, w), centres, radii, angles, void_width=int(rng.integers(0, 4)))
            write_frame(root / "JPEGImages" / "480p" / name / f"{frame}.jpg", blank)
            write_label_map(root / "Annotations" / "480p" / name / f"{frame}.png", labels)
            write_label_map(results / name / f"{frame}.png", _perturb(labels, rng, objects))
            # random walk; objects may leave the image (empty masks) and touch its edges
            centres = centres + rng.normal(0, 0.02 * min(h, w), size=centres.shape)
            radii = np.clip(radii * rng.uniform(0.9, 1.1, size=radii.shape), 1, 0.4 * min(h, w))
            angles = angles + rng.normal(0, 5, size=angles.shape)
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / f"{split}.txt").write_text("\n".join(names) + "\n")


# --------------------------------------------------------------------------------------------- comparison


def max_difference(evaluation: DavisEvaluation, reference: dict) -> float:
    """Largest absolute difference over every global figure and every per-frame J/F value (NaN == NaN)."""
    worst = 0.0

    def compare(a: np.ndarray, b: np.ndarray) -> float:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
            return math.inf
        both = ~np.isnan(a)
        return float(np.max(np.abs(a[both] - b[both]), initial=0.0))

    ours = evaluation.scores
    for column in GLOBAL_COLUMNS:
        worst = max(worst, compare(ours[column], reference["global"][column]))
    per_frame = evaluation.per_frame
    if set(per_frame) != set(reference["objects"]):
        return math.inf
    for name, (j, f) in reference["objects"].items():
        worst = max(worst, compare(per_frame[name]["J"], j), compare(per_frame[name]["F"], f))
    return worst
