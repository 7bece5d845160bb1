"""One-pass online video object segmentation: a stateful per-video object around an OVSNet model.

Per frame: a detector pass on key frames (``inference.detector.every``, and every frame while an object is
lost), flow from the previous frame at reduced resolution, the association cascade at reduced resolution (on
frames between key frames every present object follows flow), MGA refinement of the chosen objects only, the
appearance correction of every mask (features matched against the first frame and, every
``inference.appearance.update_every`` frames, the interiors of the frame just segmented) and a merge into one
label map. The
state is the previous frame, its label map and bounded Re-ID banks: O(1) in video length. Templates are
warped at the reduced IoU resolution; only flow-path objects are warped at full resolution.
The segmenter never looks ahead. It needs only :class:`~ovsnet.inference.protocol.SegmenterModel` from
the network, so any backend can stand behind it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import masks_to_boxes

from ovsnet.data.io import DataError
from ovsnet.data.sequence import object_ids_of
from ovsnet.inference.appearance import (
    AppearanceMemory,
    band_pixels,
    bounding_window,
    correct_masks,
    dilate,
)
from ovsnet.inference.cascade import (
    PATHS,
    Decision,
    TrackState,
    associate,
    box_intersection,
    box_mask_iou,
    coast,
    update_state,
)
from ovsnet.inference.flow import FlowEstimator, build_flow, resize_flow, warp
from ovsnet.inference.memory import ReIDBank
from ovsnet.inference.network_features import network_features
from ovsnet.inference.propagation import merge_probs, object_masks, warp_objects
from ovsnet.inference.protocol import FrameDetections, SegmenterModel
from ovsnet.inference.settings import InferenceSettings

__all__ = ["STAGES", "VideoSegmenter"]

logger = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("detect", "flow", "cascade", "mga", "appearance", "merge")


class VideoSegmenter:
    """Segments one video at a time: ``start`` on the annotated first frame, then ``step`` per frame.

    ``config``: the inference settings (None: the defaults; a checkpoint's calibrated settings come through
    :func:`~ovsnet.inference.settings.resolve`). ``decisions`` holds, per processed frame,
    ``{object_id: path}`` (``path`` in ``PATHS``); keep only the last ``decision_history`` frames for
    unbounded streams. ``timings`` are running totals in seconds.
    """

    def __init__(
        self,
        model: SegmenterModel,
        flow: FlowEstimator | None = None,
        config: InferenceSettings | None = None,
        device: str | torch.device = "cpu",
        autocast_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        decision_history: int | None = None,
    ) -> None:
        if not isinstance(model, SegmenterModel):  # fail here, not on the first frame's missing method
            raise TypeError(
                f"VideoSegmenter needs a SegmenterModel (detect, embed, paste_masks, refine_box_masks, "
                f"refine_image_masks); {type(model).__name__} lacks some of them"
            )
        self.device = torch.device(device)
        self.model = model.eval().to(self.device) if hasattr(model, "eval") else model
        if channels_last and hasattr(self.model, "to"):
            self.model = self.model.to(memory_format=torch.channels_last)
        self.flow = flow if flow is not None else build_flow("dis")
        self.config = config or InferenceSettings()
        self.autocast_dtype = autocast_dtype
        self._history = decision_history
        appearance = self.config.appearance
        self._appearance = None
        if appearance.backbone:
            network = network_features(self.model) if appearance.network_share > 0 else None
            if network is None and appearance.network_share > 0 and hasattr(self.model, "onnx_path"):
                logger.warning(
                    "the ONNX backend's backbone graph has the detector's fixed input size: the appearance "
                    "memory matches ImageNet features alone (inference.appearance.network_share is ignored)"
                )
            self._appearance = AppearanceMemory(appearance, device=self.device, network=network)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the current video (objects, banks, previous frame, decisions, timings)."""
        self.object_ids: list[int] = []
        self._banks: list[ReIDBank] = []
        self._states: list[TrackState] = []
        # whether the detector has returned a usable candidate in this video (first frame included): only
        # then is a frame without any candidate evidence that objects left (see AbsenceSettings)
        self._detector_alive = False
        self._since_detection = 0  # frames since the detector last ran (inference.detector.every)
        self.detected_frames = 0  # frames after the first on which the detector ran
        self._prev_frame: np.ndarray | None = None
        self._prev_labels: torch.Tensor | None = None  # (H, W) uint8 on the device
        self._last_features: Any = None
        self._size: tuple[int, int] | None = None
        self.frame_index = -1
        self.decisions: deque[dict[int, str]] | list[dict[int, str]] = (
            deque(maxlen=self._history) if self._history else []
        )
        self.path_counts: Counter[str] = Counter({p: 0 for p in PATHS})
        self.timings: dict[str, float] = {stage: 0.0 for stage in STAGES}
        if self._appearance is not None:
            self._appearance.reset()

    @property
    def banks(self) -> dict[int, ReIDBank]:
        return dict(zip(self.object_ids, self._banks, strict=True))

    @property
    def appearance_dtype(self) -> str | None:
        """The number format the appearance memory matches in (``inference.appearance.precision`` resolved for
        this machine: "bfloat16" or "float32"); None without an appearance memory."""
        return None if self._appearance is None else str(self._appearance.dtype).removeprefix("torch.")

    @property
    def present(self) -> dict[int, bool]:
        return {i: s.present for i, s in zip(self.object_ids, self._states, strict=True)}

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[stage] += time.perf_counter() - start

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _check_frame(self, frame: np.ndarray, what: str) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise DataError(f"{what}: frames must be uint8 HxWx3 RGB, got {frame.dtype} {frame.shape}")
        if self._size is not None and frame.shape[:2] != self._size:
            raise DataError(
                f"{what}: frame size {frame.shape[:2]} differs from the video's {self._size}; "
                "frames cannot change size mid-video"
            )
        return frame

    def _check_labels(self, frame: np.ndarray, label_map: np.ndarray, what: str) -> list[int]:
        label_map = np.asarray(label_map)
        if label_map.shape != frame.shape[:2]:
            raise DataError(
                f"{what}: mask size {label_map.shape} differs from the frame size {frame.shape[:2]}"
            )
        ids = object_ids_of(label_map)
        if not ids:
            raise DataError(f"{what}: the mask is empty (no object ids other than 0 and 255)")
        return ids

    def _detect(self, frame: np.ndarray) -> FrameDetections:
        image = (
            torch.from_numpy(frame).to(self.device, non_blocking=True).permute(2, 0, 1).float().div_(255.0)
        )
        with self._autocast():
            return self.model.detect([image])[0]

    def _register(self, frame: np.ndarray, label_map: np.ndarray, ids: list[int], features: Any) -> None:
        """Add objects from a ground-truth mask: seed their banks with ``embed`` of the GT boxes."""
        labels = torch.from_numpy(np.asarray(label_map)).to(self.device)
        masks = torch.stack([labels == i for i in ids]).float()
        with self._autocast():
            embeddings = self.model.embed(features, masks_to_boxes(masks > 0))
        for k, obj_id in enumerate(ids):
            bank = ReIDBank(self.config.reid.bank_size, self.config.reid.bank_policy)
            if embeddings is not None:
                bank.add(embeddings[k].float())
            self.object_ids.append(obj_id)
            self._banks.append(bank)
            self._states.append(TrackState())
        new = torch.isin(labels, torch.tensor(ids, device=labels.device, dtype=labels.dtype))
        if self._prev_labels is None:
            self._prev_labels = torch.where(new, labels, 0).to(torch.uint8)
        else:  # ground truth of the new objects wins over what the old ones held there
            self._prev_labels = torch.where(new, labels, self._prev_labels).to(torch.uint8)
        if self._appearance is not None:
            with self._timed("appearance"):
                self._appearance.remember(frame, label_map, ids)
        self._prev_frame = frame

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def start(self, frame: np.ndarray, label_map: np.ndarray) -> None:
        """Begin a video from its first frame and its annotation (object ids = the label values)."""
        self.reset()
        frame = self._check_frame(frame, "first frame")
        ids = self._check_labels(frame, label_map, "first-frame mask")
        self._size = frame.shape[:2]
        with self._timed("detect"):
            det = self._detect(frame)
        self._detector_alive = bool((det.scores >= self.config.cascade.min_candidate_score).any())
        self._register(frame, label_map, ids, det.features)
        self.frame_index = 0

    @torch.inference_mode()
    def add_objects(self, frame: np.ndarray, label_map: np.ndarray) -> np.ndarray:
        """Add objects whose first annotation is on ``frame`` (the frame just processed by ``step``).

        Returns the label map of ``frame`` with the new objects' ground truth pasted over it.
        """
        if self._size is None:
            raise DataError("add_objects called before start(); the first frame defines the video")
        frame = self._check_frame(frame, f"add_objects at frame {self.frame_index}")
        ids = self._check_labels(frame, label_map, f"mask for new objects at frame {self.frame_index}")
        new = [i for i in ids if i not in self.object_ids]
        if not new:
            return self._prev_labels.cpu().numpy()
        same = self._prev_frame is not None and np.array_equal(frame, self._prev_frame)
        features = (
            self._last_features if same and self._last_features is not None else self._detect(frame).features
        )
        self._register(frame, label_map, new, features)
        return self._prev_labels.cpu().numpy()

    @torch.inference_mode()
    def step(self, frame: np.ndarray) -> np.ndarray:
        """Segment the next frame; returns its uint8 HxW label map (0 = background)."""
        if self._size is None:
            raise DataError("step called before start(); give the first frame and its mask to start()")
        frame = self._check_frame(frame, f"frame {self.frame_index + 1}")
        det = None
        if self._detection_due():
            with self._timed("detect"):
                det = self._detect(frame)
        with self._timed("flow"):
            flow = self._flow(self._prev_frame, frame)
            templates = self._templates(flow)
        with self._timed("cascade"):
            if det is None:  # a frame between key frames: no candidates
                cand, decisions = {"embeddings": None}, coast(templates, self._states, self.config)
            else:
                cand, decisions = self._cascade(det, templates)
        with self._timed("mga"):
            probs = self._refine(det, cand, flow, decisions)
        if self._appearance is not None:
            with self._timed("appearance"):
                probs = self._correct(frame, probs)
        with self._timed("merge"):
            labels = self._merge(probs)
        if self._appearance is not None and self._appearance_update_due():
            with self._timed("appearance"):
                self._appearance.remember_segmentation(frame, self._prev_labels)
        self._update(cand, decisions, detected=det is not None)
        self._prev_frame, self._last_features = frame, None if det is None else det.features
        self.frame_index += 1
        return labels

    # ------------------------------------------------------------------ per-frame stages
    def _detection_due(self) -> bool:
        """Whether the detector runs on the next frame (``inference.detector.every``): always with ``every=1``
        or without the Flow path; else on key frames, and on every frame while an object is lost. Counts the
        frames since the last detection, so call it once per frame."""
        every = self.config.detector.every
        due = (
            every <= 1
            or not self.config.cascade.use_flow
            or self._since_detection + 1 >= every
            or not all(state.present for state in self._states)
        )
        self._since_detection = 0 if due else self._since_detection + 1
        return due

    def _appearance_update_due(self) -> bool:
        """Whether the frame being segmented updates the appearance memory (``appearance.update_every``)."""
        every = self.config.appearance.update_every
        return every is not None and (self.frame_index + 1) % every == 0

    def _small_size(self) -> tuple[int, int]:
        h, w = self._size
        return max(1, round(h * self.config.cascade.iou_scale)), max(
            1, round(w * self.config.cascade.iou_scale)
        )

    def _object_masks(self, labels: torch.Tensor, ks: list[int] | None = None) -> torch.Tensor:
        """(K, h, w) float binary masks of (some of) the tracked objects in a label map."""
        return object_masks(labels, self.object_ids if ks is None else [self.object_ids[k] for k in ks])

    def _flow(self, prev: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Backward flow at the estimator's working resolution when it offers one (``low_res``), else full.

        Templates need it at the IoU resolution and only flow-path objects at full resolution, so a
        full-resolution field every frame (~1 ms of resizing at 480p) is left to ``_warp_full``.
        """
        low_res = getattr(self.flow, "low_res", None)
        return low_res(prev, frame) if low_res is not None else self.flow(prev, frame)

    def _templates(self, flow: np.ndarray) -> torch.Tensor:
        """Previous object masks warped by flow (at any resolution), at the reduced IoU resolution (K, h, w)."""
        sh, sw = self._small_size()
        small_flow = resize_flow(flow, sh, sw)
        small_labels = F.interpolate(self._prev_labels[None, None].float(), size=(sh, sw), mode="nearest")[
            0, 0
        ]
        return warp(self._object_masks(small_labels), small_flow)

    def _warp_full(self, ks: list[int], flow: np.ndarray) -> torch.Tensor:
        """Full-resolution warp of some objects' previous masks (only flow-path objects need it): exactly
        the model-free flow propagation (:func:`~ovsnet.inference.propagation.propagate_labels`)."""
        ids = [self.object_ids[k] for k in ks]
        return warp_objects(self._prev_labels, ids, resize_flow(flow, *self._size))

    def _cascade(
        self, det: FrameDetections, templates: torch.Tensor
    ) -> tuple[dict[str, Any], list[Decision]]:
        keep = det.scores >= self.config.cascade.min_candidate_score
        cand = {
            "boxes": det.boxes[keep],
            "mask_probs": det.mask_probs[keep],
            "embeddings": det.embeddings[keep] if det.embeddings is not None else None,
        }
        iou = self._candidate_ious(cand, templates)
        self._detector_alive |= bool(keep.any())
        decisions = associate(
            templates, iou, cand["embeddings"], self._banks, self._states, self.config, self._detector_alive
        )
        return cand, decisions

    def _candidate_ious(self, cand: dict[str, Any], templates: torch.Tensor) -> torch.Tensor:
        """(K, N) template-candidate IoUs at the IoU resolution, computed only where the IoU path could pass.

        A candidate's mask lies in its box, so its IoU with a template of area ``a`` is at most
        ``inter(box, template box) / a``: a candidate whose box overlap is at most ``cascade.rho_iou * a`` with every
        present template cannot pass the IoU path and keeps IoU 0. This leaves out most of the ~100
        detections without changing any decision. The template boxes are widened by the reach of
        ``box_mask_iou``'s samples, so no candidate that could pass is dropped.
        """
        iou = templates.new_zeros((templates.shape[0], len(cand["boxes"])), dtype=torch.float32)
        binary = templates > 0.5
        live = [k for k, st in enumerate(self._states) if st.present and bool(binary[k].any())]
        threshold = self.config.candidate_iou_floor
        if not len(cand["boxes"]) or not live:
            return iou
        small = self._small_size()
        to_small = templates.new_tensor([small[1] / self._size[1], small[0] / self._size[0]] * 2)
        live_masks = binary[live]
        # pixel edges are [x0, x1 + 1] (masks_to_boxes gives inclusive indices), widened by one pixel: a
        # bilinear sample reads a pixel from up to half a pixel beyond its edge and stands for at most half a
        # pixel around itself (roi_align takes ceil(cell size) samples per cell)
        template_boxes = masks_to_boxes(live_masks) + templates.new_tensor([-1, -1, 2, 2])
        areas = live_masks.flatten(1).sum(1).float()
        boxes = cand["boxes"].float().to(templates.device) * to_small
        inter = box_intersection(boxes, template_boxes)
        hits = (inter >= threshold * areas[None]).any(dim=1).nonzero().flatten()
        if len(hits):
            probs = cand["mask_probs"][hits].to(templates.device)
            iou[:, hits] = box_mask_iou(binary.float(), boxes[hits], probs)
        return iou

    def _refine(
        self, det: FrameDetections | None, cand: dict[str, Any], flow: np.ndarray, decisions: list[Decision]
    ) -> torch.Tensor:
        """Full-resolution probabilities per object: MGA on the chosen candidates / flow templates only (none
        on a frame the detector did not see: MGA reads its features)."""
        probs = torch.zeros((len(decisions), *self._size), dtype=torch.float32, device=self.device)
        chosen = [k for k, d in enumerate(decisions) if d.candidate is not None]
        flowed = [k for k, d in enumerate(decisions) if d.path == "flow"]
        with self._autocast():
            if chosen:
                idx = torch.tensor([decisions[k].candidate for k in chosen], device=cand["boxes"].device)
                boxes, coarse = cand["boxes"][idx], cand["mask_probs"][idx]
                pasted = self.model.paste_masks(boxes, coarse, self._size).float().to(self.device)
                if self.config.mga.enabled:
                    refined = self.model.refine_box_masks(det.features, boxes, coarse)
                    pasted = self._accept_refinement(pasted, refined.float().to(self.device))
                if self.config.cascade.iou_flow_weight > 0:
                    weight = self.config.cascade.iou_flow_weight
                    pasted = (1 - weight) * pasted + weight * self._warp_full(chosen, flow).to(pasted)
                probs[chosen] = pasted
            if flowed:
                full = self._warp_full(flowed, flow).to(self.device).float()
                nonempty = (full > 0.5).flatten(1).any(1)  # masks_to_boxes needs a pixel per mask
                if det is not None and self.config.mga.enabled and bool(nonempty.any()):
                    keep = full[nonempty]
                    refined = self.model.refine_image_masks(det.features, masks_to_boxes(keep > 0.5), keep)
                    full[nonempty] = self._accept_refinement(keep, refined.float().to(self.device))
                probs[flowed] = full
        return probs

    def _correct(self, frame: np.ndarray, probs: torch.Tensor) -> torch.Tensor:
        """Every mask's outline corrected by appearance, within a band around where the cascade put it.

        A mask reaches at most one band (``appearance.band``) past the cascade's per correction. An object
        whose corrected mask touches its band's edge is corrected again from that mask, up to
        ``appearance.grow`` times: a rider whose mask shrank to a wheel while he was out of view comes back
        whole in a few frames instead of a band a frame (only the cells not matched yet are matched again).
        """
        band = band_pixels(self._size, self.config.appearance.band)
        allowed = dilate(probs > 0.5, band)
        corrected = self._correct_within(frame, probs, allowed)
        for _ in range(self.config.appearance.grow):
            held = corrected > 0.5
            reached = (dilate(held, 1) & ~allowed).flatten(1).any(1)
            if not bool(reached.any()):
                break
            allowed = dilate(held, band)
            again = self._correct_within(frame, corrected, allowed)
            corrected = torch.where(reached[:, None, None], again, corrected)
        return corrected

    def _correct_within(self, frame: np.ndarray, probs: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``probs`` corrected by appearance where ``allowed`` (K, H, W) lets each object go."""
        region = allowed.any(0)
        window = bounding_window(region)
        if window is None:
            return probs  # every object absent: nothing to match
        # outside every band no object may take a pixel: only the bands' bounding window is corrected
        y0, y1, x0, x1 = window
        looks = self._appearance.probabilities(frame, self.object_ids, region, window).to(probs.device)
        corrected = torch.zeros_like(probs)
        corrected[:, y0:y1, x0:x1] = correct_masks(
            probs[:, y0:y1, x0:x1], looks, allowed[:, y0:y1, x0:x1], self.config.appearance.prior_power
        )
        return corrected

    def _accept_refinement(self, proposal: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
        """MGA's masks where they agree with the masks they refine (IoU >= ``mga.min_iou``), else the input;
        kept ones are blended with the input by ``mga.weight``.

        MGA is trained on the detector's own masks and training objects; on a warped mask or an unfamiliar
        object it can return something unrelated. Refinement may sharpen the mask, never replace it.
        """
        a, b = proposal > 0.5, refined > 0.5
        inter = (a & b).flatten(1).sum(1).float()
        union = (a | b).flatten(1).sum(1).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(inter))
        weight = self.config.mga.weight
        blended = refined if weight >= 1.0 else weight * refined + (1.0 - weight) * proposal
        return torch.where((iou >= self.config.mga.min_iou)[:, None, None], blended, proposal)

    def _merge(self, probs: torch.Tensor) -> np.ndarray:
        """One label map: each pixel goes to the most probable object above 0.5, else background."""
        labels = merge_probs(probs, self.object_ids)
        self._prev_labels = labels
        return labels.cpu().numpy()

    def _update(self, cand: dict[str, Any], decisions: list[Decision], detected: bool = True) -> None:
        """Bank updates, track states and the decision log. On a frame the detector did not see, only a lost
        object changes state (no candidate was there to support or contradict the others)."""
        update_paths = {"iou": ("iou",), "iou+reid": ("iou", "reid"), "none": ()}[self.config.reid.update]
        self.detected_frames += int(detected)
        for k, d in enumerate(decisions):
            if d.path in update_paths and cand["embeddings"] is not None:
                self._banks[k].add(cand["embeddings"][d.candidate].float())
            if d.path == "absent" and self._states[k].present:
                logger.debug("object %d lost at frame %d", self.object_ids[k], self.frame_index + 1)
            if detected or d.path == "absent":
                self._states[k] = update_state(self._states[k], d, self.config.absence.support_iou)
            self.path_counts[d.path] += 1
        self.decisions.append({obj: d.path for obj, d in zip(self.object_ids, decisions, strict=True)})
