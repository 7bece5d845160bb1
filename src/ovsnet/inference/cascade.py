"""The association cascade of OVS-Net (paper section 3.2): IoU path -> Re-ID path -> Flow path -> absent.

Pure and stateless: given flow-warped templates, candidate masks and embeddings (all at reduced
resolution) and each object's Re-ID bank and track state, decide per object which path holds and which
candidate it takes. Each path solves one ``linear_sum_assignment`` over all its objects, so one candidate
never serves two objects.

The Flow path is the floor: the warped mask is the model-free propagation (``inference/propagation.py``),
so a detection replaces it only with evidence that it is the same object and a better mask. Beyond the
paper's rules (``inference=paper`` restores them exactly; the values are
:class:`~ovsnet.inference.settings.InferenceSettings`):

- ``cascade.switch_iou``: an IoU-path candidate must overlap the warped mask at least this much (the
  paper's ``rho_iou`` lets a neighbouring or half-right detection take the object over);
- ``cascade.iou_reid_check``: an IoU-path candidate must also pass the Re-ID rule against the object's bank
  (a wrong object that happens to overlap has the wrong appearance);
- ``reid.lost_only``: the Re-ID path retrieves lost objects; an object still followed by flow is not moved
  to a look-alike elsewhere;
- ``mga.min_iou``: MGA's refinement is kept only where it agrees with the mask it refines (the segmenter);
- ``cascade.max_flow_streak=None``: an object does not leave because no detection *replaced* its warped mask
  for a number of frames (the paper's rule: a weak detector then loses every object);
- ``absence.max_unsupported_streak``: instead, an object leaves when no detection even *overlaps* its warped
  mask (IoU >= ``absence.support_iou``) for that many frames in a row. Flow cannot see an object leave the frame or hide
  behind another: its warped mask sticks to the border or smears over the background. The detector can:
  nothing is there. The mask must also look like such a failure (``absence.implausible_growth``), and a frame with
  no candidate at all counts only once the detector has returned one in the video, so a detector that finds
  nothing leaves exactly the flow propagation. Once absent, only the Re-ID path brings the object back.
- ``appearance``: after the cascade, each mask's outline is corrected by what its pixels look like in
  features (the trained network's, or frozen ImageNet ones) matched against the first frame
  (``inference/appearance.py``, the segmenter): the cascade decides where an object is, appearance stops
  its outline drifting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import roi_align

from ovsnet.inference.memory import ReIDBank
from ovsnet.inference.settings import AbsenceSettings, InferenceSettings

__all__ = [
    "PATHS",
    "Decision",
    "TrackState",
    "associate",
    "box_intersection",
    "box_mask_iou",
    "coast",
    "reid_scores",
    "update_state",
]

PATHS: tuple[str, ...] = ("iou", "reid", "flow", "absent")
_FRACTION_EPS = 1e-9


@dataclass
class TrackState:
    """What the cascade needs to remember about one object between frames."""

    present: bool = True
    flow_streak: int = 0
    unsupported_streak: int = 0  # consecutive flow-path frames with no candidate overlapping the warped mask
    # warped-mask area (cascade pixels) when a candidate last overlapped it (or on the first flow frame)
    ref_area: float | None = None


@dataclass(frozen=True)
class Decision:
    """One object's outcome for one frame: the path taken, the candidate it took (if any) and the evidence.

    Each path is decided on its own measure, kept under its own name (None where that path did not decide):
    ``iou`` with the warped mask (IoU path), ``reid_distance`` to the object's bank (Re-ID path),
    ``flow_area`` of the warped mask in pixels at the cascade's resolution (Flow and IoU paths) and
    ``support``, the best IoU of a candidate not taken by another object with that warped mask (Flow path).
    """

    path: str
    candidate: int | None = None
    iou: float | None = field(default=None, kw_only=True)
    reid_distance: float | None = field(default=None, kw_only=True)
    flow_area: float | None = field(default=None, kw_only=True)
    support: float | None = field(default=None, kw_only=True)


def box_mask_iou(templates: torch.Tensor, boxes: torch.Tensor, mask_probs: torch.Tensor) -> torch.Tensor:
    """(K, N) IoU of binary templates (K,h,w) with candidates given as box-relative masks, without pasting.

    A detection's mask is an MxM grid over its box (``boxes`` (N,4) xyxy in template pixels).
    ``roi_align`` averages each template over every cell of every candidate's grid in one call, so the
    intersection is measured on the candidate's own grid: no per-candidate paste into the image, which cost
    ~0.3 ms per candidate on a CPU.
    """
    k, n, side = templates.shape[0], boxes.shape[0], mask_probs.shape[-1]
    if k == 0 or n == 0:
        return templates.new_zeros((k, n), dtype=torch.float32)
    fg = (mask_probs > 0.5).float()
    boxes = boxes.float()
    rois = torch.cat([boxes.new_zeros((n, 1)), boxes], dim=1)
    # aligned=True: pixel i covers [i, i+1); sampling_ratio=0: ceil(cell size) samples per cell and axis
    cover = roi_align(
        templates.float()[None], rois, (side, side), 1.0, sampling_ratio=0, aligned=True
    )  # (N, K, side, side): the fraction of each cell inside each template
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
    cell = wh[:, 0] * wh[:, 1] / side**2  # one cell's area in template pixels
    inter = (cover * fg[:, None]).sum(dim=(2, 3)) * cell[:, None]
    union = templates.flatten(1).float().sum(1)[None] + (fg.sum(dim=(1, 2)) * cell)[:, None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-6), torch.zeros_like(inter)).T


def box_intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, K) intersection areas of xyxy boxes (N,4) x (K,4) (``box_iou`` gives the ratio, not the area)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    return (rb - lt).clamp(min=0).prod(dim=2)


def _assign(cost: np.ndarray, feasible: np.ndarray) -> list[tuple[int, int]]:
    """Min-cost matching restricted to feasible pairs (rows = objects, columns = candidates)."""
    if cost.size == 0 or not feasible.any():
        return []
    big = float(np.abs(cost[feasible]).max()) * 10.0 + 1e6
    rows, cols = linear_sum_assignment(np.where(feasible, cost, big))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if feasible[r, c]]


def reid_scores(
    bank: ReIDBank, embeddings: torch.Tensor, config: InferenceSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: whether it qualifies (distance < ``reid.rho`` to >= ``reid.fraction`` of the bank) and its
    ranking distance (mean or min over the bank)."""
    dist = bank.distances(embeddings)  # (N, len)
    fraction = (dist < config.reid.rho).float().mean(dim=1)
    qualifies = fraction >= config.reid.fraction - _FRACTION_EPS
    ranking = dist.mean(dim=1) if config.reid.distance == "mean" else dist.min(dim=1).values
    return qualifies.cpu().numpy(), ranking.cpu().numpy()


def _iou_path(
    iou: np.ndarray,
    objects: list[int],
    free: list[int],
    config: InferenceSettings,
    out: dict[int, Decision],
    embeddings: torch.Tensor | None = None,
    banks: Sequence[ReIDBank] | None = None,
    areas: np.ndarray | None = None,
) -> None:
    """``areas``: the warped masks' areas, kept on the decisions (the absence rule's reference)."""
    if not objects or not free:
        return
    sub = iou[np.ix_(objects, free)]
    feasible = (sub > config.cascade.rho_iou) & (sub >= config.cascade.switch_iou)
    if config.cascade.iou_reid_check and config.reid.enabled and embeddings is not None and banks is not None:
        for r, k in enumerate(objects):
            cols = np.flatnonzero(feasible[r])
            if len(cols) and len(banks[k]):
                qualifies, _ = reid_scores(banks[k], embeddings[[free[c] for c in cols]], config)
                feasible[r, cols] &= qualifies
    for r, c in _assign(-sub, feasible):
        area = None if areas is None else float(areas[objects[r]])
        out[objects[r]] = Decision("iou", free[c], iou=float(sub[r, c]), flow_area=area)


def _reid_path(
    embeddings: torch.Tensor | None,
    banks: Sequence[ReIDBank],
    objects: list[int],
    free: list[int],
    config: InferenceSettings,
    out: dict[int, Decision],
) -> None:
    if not config.reid.enabled or embeddings is None or not objects or not free:
        return
    cost = np.zeros((len(objects), len(free)))
    feasible = np.zeros((len(objects), len(free)), dtype=bool)
    for r, k in enumerate(objects):
        if len(banks[k]) == 0:
            continue
        feasible[r], cost[r] = reid_scores(banks[k], embeddings[free], config)
    for r, c in _assign(cost, feasible):
        out[objects[r]] = Decision("reid", free[c], reid_distance=float(cost[r, c]))


def _implausible(mask: torch.Tensor, state: TrackState, config: InferenceSettings) -> bool:
    """Whether a warped mask looks like one of flow's failures: grown or shrunk by ``absence.implausible_growth``
    since a candidate last overlapped it (smeared over the background, squeezed behind an occluder), or
    stuck to the frame border while shrinking (the object left; backward flow keeps its border pixels).

    Without a reference area yet (an object's first flow frame) only the border counts.
    ``absence.implausible_growth=None``: every unsupported mask counts.
    """
    if config.absence.implausible_growth is None:
        return True
    border = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    if state.ref_area is None:
        return border
    ratio = float(mask.sum()) / max(state.ref_area, 1.0)
    return (
        border and ratio < 1.0
    ) or not 1.0 / config.absence.implausible_growth <= ratio <= config.absence.implausible_growth


def _flow_or_absent(
    mask: torch.Tensor,
    area: float,
    state: TrackState,
    config: InferenceSettings,
    support: float | None,
    detector_alive: bool,
) -> Decision:
    """Flow path, or absent. ``support`` is None when the frame has no candidate at all: that is evidence
    only from a detector that has found candidates in this video before (``detector_alive``: the frame is
    empty because the object left), not from one that never finds anything (the floor: a detector that
    finds nothing gives exactly flow propagation)."""
    if not config.cascade.use_flow or not state.present:
        return Decision("absent")
    if config.cascade.max_flow_streak is not None and state.flow_streak + 1 > config.cascade.max_flow_streak:
        return Decision("absent")
    if area < config.cascade.min_flow_area:
        return Decision("absent")
    unsupported = (
        state.unsupported_streak + 1 if support is None or support < config.absence.support_iou else 0
    )
    if (
        (support is not None or detector_alive)
        and config.absence.max_unsupported_streak is not None
        and unsupported > config.absence.max_unsupported_streak
        and _implausible(mask, state, config)
    ):
        return Decision("absent", flow_area=area, support=support)
    return Decision("flow", flow_area=area, support=support)


def associate(
    templates: torch.Tensor,
    iou: torch.Tensor,
    candidate_embeddings: torch.Tensor | None,
    banks: Sequence[ReIDBank],
    states: Sequence[TrackState],
    config: InferenceSettings,
    detector_alive: bool = True,
) -> list[Decision]:
    """Decide per object: IoU path, else Re-ID path, else Flow path, else absent.

    ``templates`` (K,h,w) are the previous masks warped by flow (their area decides the Flow path);
    ``iou`` (K,N) holds the template-candidate IoUs (``box_mask_iou``) of the N candidates, which the caller
    has already filtered (``cascade.min_candidate_score``); ``candidate_embeddings`` (N,D) their Re-ID embeddings.
    Absent objects take part only in the Re-ID path: once lost, only appearance can bring them back.
    ``detector_alive``: whether the detector has returned any candidate in this video so far (a frame with
    none is then evidence that the objects left, see ``absence.max_unsupported_streak``).
    """
    num_objects = templates.shape[0]
    if not len(banks) == len(states) == num_objects:
        raise ValueError(
            f"associate: {num_objects} templates but {len(banks)} banks and {len(states)} states"
        )
    if iou.ndim != 2 or iou.shape[0] != num_objects:
        raise ValueError(f"associate: IoU matrix {tuple(iou.shape)} for {num_objects} templates")
    if candidate_embeddings is not None and len(candidate_embeddings) != iou.shape[1]:
        raise ValueError(
            f"associate: {len(candidate_embeddings)} embeddings for {iou.shape[1]} candidates in the IoU matrix"
        )
    iou_np = iou.float().cpu().numpy()
    free = list(range(iou_np.shape[1]))
    out: dict[int, Decision] = {}
    present = [k for k in range(num_objects) if states[k].present]
    masks = templates > 0.5
    areas = masks.flatten(1).sum(1).float().cpu().numpy()
    _iou_path(iou_np, present, free, config, out, candidate_embeddings, banks, areas)
    taken = {d.candidate for d in out.values()}
    free = [i for i in free if i not in taken]
    retrieve = [k for k in range(num_objects) if k not in out]
    if config.reid.lost_only:
        retrieve = [k for k in retrieve if not states[k].present or not bool(masks[k].any())]
    _reid_path(candidate_embeddings, banks, retrieve, free, config, out)
    taken = {d.candidate for d in out.values()}
    free = [i for i in free if i not in taken]
    support = iou_np[:, free].max(axis=1) if free else np.zeros(num_objects)
    blind = iou_np.shape[1] == 0
    return [
        out[k]
        if k in out
        else _flow_or_absent(
            masks[k], float(areas[k]), states[k], config, None if blind else float(support[k]), detector_alive
        )
        for k in range(num_objects)
    ]


def coast(templates: torch.Tensor, states: Sequence[TrackState], config: InferenceSettings) -> list[Decision]:
    """Decisions for a frame the detector did not see (``detector.every``): each present object follows flow,
    unless its warped mask fell under ``cascade.min_flow_area``; an absent object stays absent. Without
    candidates there is no evidence either way, so the caller leaves the flow objects' states as they were."""
    areas = (templates > 0.5).flatten(1).sum(1).float().cpu().numpy()
    return [
        Decision("flow", flow_area=float(area))
        if state.present and config.cascade.use_flow and area >= config.cascade.min_flow_area
        else Decision("absent")
        for state, area in zip(states, areas, strict=True)
    ]


def update_state(
    state: TrackState, decision: Decision, support_iou: float = AbsenceSettings.support_iou
) -> TrackState:
    """Track state after a decision: a flow streak counts consecutive flow-path frames, the unsupported
    streak those of them with no overlapping candidate (``support`` below ``support_iou`` or no candidate
    at all); ``ref_area`` is the warped mask's area when a candidate last overlapped it, or on the first
    flow frame (an IoU-path frame counts; forgotten when the object is lost or comes back through Re-ID,
    possibly at another size)."""
    if decision.path == "flow":
        supported = decision.support is not None and decision.support >= support_iou
        return TrackState(
            present=True,
            flow_streak=state.flow_streak + 1,
            unsupported_streak=0 if supported else state.unsupported_streak + 1,
            ref_area=decision.flow_area if supported or state.ref_area is None else state.ref_area,
        )
    if decision.path == "iou":
        return TrackState(ref_area=decision.flow_area)
    return TrackState(present=decision.path != "absent")
