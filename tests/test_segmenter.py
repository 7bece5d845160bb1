"""VideoSegmenter end to end on a 5-frame synthetic video: a scripted fake model and the real OVSNet."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from tiny_models import TINY_MODEL
from torchvision.models.detection.roi_heads import paste_masks_in_image

from ovsnet.data.io import DataError
from ovsnet.inference.cascade import PAPER_RULES, CascadeConfig, box_mask_iou
from ovsnet.inference.segmenter import STAGES, VideoSegmenter
from ovsnet.models.ovsnet import build_ovsnet

H, W, SIDE = 96, 128, 24


def paper_config(**overrides: Any) -> CascadeConfig:
    """The paper's cascade (no switch guard): these tests pin its path mechanics on perfect detections.

    The default guard (``switch_iou`` 0.8 at quarter resolution) keeps flow on these 24-pixel squares,
    whose warped masks overlap the detections by 0.68-0.84; tests/test_cascade.py covers the guard."""
    return CascadeConfig(**{**PAPER_RULES, **overrides})


def make_video(
    num_frames: int = 5,
    seed: int = 0,
    hidden: dict[int, set[int]] | None = None,
    jump: dict[int, dict[int, tuple[int, int]]] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two textured squares (1 red, 2 green) moving over a static textured background.

    ``hidden[t]`` lists objects not drawn at frame t; ``jump[t][obj]`` overrides an object's (y, x).
    """
    rng = np.random.default_rng(seed)
    background = cv2.resize(rng.integers(0, 70, (H // 4, W // 4, 3), dtype=np.uint8), (W, H))
    textures = {}
    for obj, channel in ((1, 0), (2, 1)):
        tex = rng.integers(0, 40, (SIDE, SIDE, 3), dtype=np.uint8)
        tex[..., channel] = rng.integers(170, 255, (SIDE, SIDE), dtype=np.uint8)
        textures[obj] = tex
    frames, labels = [], []
    for t in range(num_frames):
        frame, label = background.copy(), np.zeros((H, W), np.uint8)
        for obj, (y, x) in {1: (10 + 3 * t, 10 + 4 * t), 2: (55, 90 - 3 * t)}.items():
            y, x = (jump or {}).get(t, {}).get(obj, (y, x))
            if obj in (hidden or {}).get(t, set()):
                continue
            frame[y : y + SIDE, x : x + SIDE] = textures[obj]
            label[y : y + SIDE, x : x + SIDE] = obj
        frames.append(frame)
        labels.append(label)
    return frames, labels


@dataclass
class FakeDetections:
    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    mask_probs: torch.Tensor
    embeddings: torch.Tensor | None
    features: Any


class FakeModel(torch.nn.Module):
    """Follows the OVSNet eval contract; candidates are the bright connected components of the frame,
    embeddings the (scaled) mean colour in the box. ``blind_calls`` are detect calls returning nothing."""

    def __init__(self, blind_calls: set[int] | None = None) -> None:
        super().__init__()
        self.blind_calls = blind_calls or set()
        self.detect_calls = 0
        self.refine_sizes: list[int] = []
        self.refine_full_sizes: list[int] = []
        self.pasted: list[int] = []

    def detect(self, images: list[torch.Tensor]) -> list[FakeDetections]:
        self.detect_calls += 1
        return [self._detect_one(img, self.detect_calls in self.blind_calls) for img in images]

    def _detect_one(self, img: torch.Tensor, blind: bool) -> FakeDetections:
        fg = (img.max(0).values > 0.6).cpu().numpy().astype(np.uint8)
        count, comp, stats, _ = cv2.connectedComponentsWithStats(fg)
        boxes, masks = [], []
        for i in range(1, 0 if blind else count):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area >= 16:
                boxes.append([x, y, x + w, y + h])
                crop = (comp[y : y + h, x : x + w] == i).astype(np.float32)
                masks.append(cv2.resize(crop, (28, 28), interpolation=cv2.INTER_LINEAR))
        dev = img.device
        box_t = torch.tensor(boxes, dtype=torch.float32, device=dev).reshape(-1, 4)
        mask_t = torch.from_numpy(np.stack(masks)).to(dev) if masks else torch.zeros(0, 28, 28, device=dev)
        n = len(box_t)
        return FakeDetections(
            box_t,
            torch.full((n,), 0.9, device=dev),
            torch.ones(n, dtype=torch.int64),
            mask_t,
            self.embed(img, box_t),
            img,
        )

    def embed(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(boxes), 128, device=features.device)
        for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
            out[i, :3] = features[:, y0:y1, x0:x1].reshape(3, -1).float().mean(1) * 10.0
        return out

    def paste_masks(
        self, boxes: torch.Tensor, mask_probs: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        self.pasted.append(len(boxes))
        scale = torch.tensor([size[1] / W, size[0] / H, size[1] / W, size[0] / H], device=boxes.device)
        return paste_masks_in_image(mask_probs[:, None], boxes * scale, tuple(size), padding=1)[:, 0]

    def refine(self, features: torch.Tensor, boxes: torch.Tensor, mask_probs: torch.Tensor) -> torch.Tensor:
        self.refine_sizes.append(len(boxes))
        return self.paste_masks(boxes, mask_probs, tuple(features.shape[-2:]))

    def refine_full(
        self, features: torch.Tensor, boxes: torch.Tensor, full_probs: torch.Tensor
    ) -> torch.Tensor:
        self.refine_full_sizes.append(len(boxes))
        return full_probs


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def _run(segmenter: VideoSegmenter, frames: list[np.ndarray], first: np.ndarray) -> list[np.ndarray]:
    segmenter.start(frames[0], first)
    return [segmenter.step(f) for f in frames[1:]]


def test_end_to_end_iou_path_tracks_both_objects() -> None:
    frames, labels = make_video()
    model = FakeModel()
    seg = VideoSegmenter(model, config=paper_config())
    outputs = _run(seg, frames, labels[0])
    for out, gt in zip(outputs, labels[1:], strict=True):
        assert out.shape == (H, W) and out.dtype == np.uint8
        assert set(np.unique(out)) <= {0, 1, 2}
        for obj in (1, 2):
            assert _iou(out == obj, gt == obj) > 0.8
    assert seg.decisions == [{1: "iou", 2: "iou"}] * 4
    assert seg.path_counts["iou"] == 8 and seg.path_counts["flow"] == 0
    assert model.refine_sizes == [2] * 4 and model.refine_full_sizes == []
    assert set(seg.timings) == set(STAGES) and all(v > 0 for v in seg.timings.values())
    assert all(len(bank) == 5 for bank in seg.banks.values())  # first embedding + 4 IoU-path updates


def test_missed_detection_falls_back_to_flow_then_recovers() -> None:
    frames, labels = make_video()
    model = FakeModel(blind_calls={3})  # call 1 = start, call 3 = frame 2
    seg = VideoSegmenter(model, config=paper_config())
    outputs = _run(seg, frames, labels[0])
    assert [d[1] for d in seg.decisions] == ["iou", "flow", "iou", "iou"]
    assert model.refine_full_sizes == [2]
    assert _iou(outputs[1] == 1, labels[2] == 1) > 0.6  # the flow-warped mask follows the object


def test_lost_object_returns_through_reid() -> None:
    frames, labels = make_video(hidden={2: {2}, 3: {2}}, jump={4: {2: (5, 95)}})
    seg = VideoSegmenter(FakeModel(), config=CascadeConfig(max_flow_streak=1))
    outputs = _run(seg, frames, labels[0])
    paths = [d[2] for d in seg.decisions]
    assert paths[0] == "iou" and paths[1] in ("flow", "absent") and paths[2] == "absent"
    assert paths[3] == "reid"
    assert _iou(outputs[3] == 2, labels[4] == 2) > 0.8
    assert not (outputs[2] == 2).any()


def test_only_candidates_near_a_template_are_pasted() -> None:
    frames, labels = make_video(num_frames=2)
    frames[1][70:90, 5:25] = 250  # an untracked bright blob far from both objects
    model = FakeModel()
    seg = VideoSegmenter(model, config=paper_config(use_mga=False))
    _run(seg, frames, labels[0])
    assert model.pasted[0] == 2  # 3 candidates, the blob's mask is never pasted for the cascade
    assert len(model.detect([torch.from_numpy(frames[1]).permute(2, 0, 1).float() / 255])[0].boxes) == 3
    assert seg.decisions == [{1: "iou", 2: "iou"}]


def test_mga_off_never_refines_and_banks_stay_bounded() -> None:
    frames, labels = make_video()
    model = FakeModel()
    seg = VideoSegmenter(model, config=paper_config(use_mga=False, bank_size=2))
    _run(seg, frames, labels[0])
    assert model.refine_sizes == [] and model.refine_full_sizes == []
    assert all(len(bank) == 3 for bank in seg.banks.values())


def test_add_objects_later_in_the_video() -> None:
    frames, labels = make_video()
    seg = VideoSegmenter(FakeModel(), config=paper_config())
    seg.start(frames[0], np.where(labels[0] == 1, 1, 0).astype(np.uint8))
    seg.step(frames[1])
    merged = seg.add_objects(frames[1], labels[1])
    assert seg.object_ids == [1, 2]
    assert _iou(merged == 2, labels[1] == 2) == 1.0
    out = seg.step(frames[2])
    assert seg.decisions[-1] == {1: "iou", 2: "iou"}
    assert _iou(out == 2, labels[2] == 2) > 0.8


def test_reset_forgets_the_video() -> None:
    frames, labels = make_video(num_frames=2)
    seg = VideoSegmenter(FakeModel())
    _run(seg, frames, labels[0])
    seg.reset()
    assert seg.decisions == [] and seg.object_ids == [] and sum(seg.path_counts.values()) == 0
    with pytest.raises(DataError, match="before start"):
        seg.step(frames[1])


def test_bad_inputs_raise_clear_errors() -> None:
    frames, labels = make_video(num_frames=2)
    seg = VideoSegmenter(FakeModel())
    with pytest.raises(DataError, match=r"first-frame mask.*mask size \(48, 64\)"):
        seg.start(frames[0], labels[0][::2, ::2])
    with pytest.raises(DataError, match="first-frame mask.*empty"):
        seg.start(frames[0], np.zeros((H, W), np.uint8))
    seg.start(frames[0], labels[0])
    with pytest.raises(DataError, match=r"frame 1.*size \(48, 64\).*\(96, 128\)"):
        seg.step(np.ascontiguousarray(frames[1][::2, ::2]))
    with pytest.raises(DataError, match="uint8 HxWx3"):
        seg.step(frames[1].astype(np.float32))


def test_decision_history_is_bounded() -> None:
    frames, labels = make_video()
    seg = VideoSegmenter(FakeModel(), config=paper_config(), decision_history=2)
    _run(seg, frames, labels[0])
    assert len(seg.decisions) == 2 and seg.path_counts["iou"] == 8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_cuda_autocast_channels_last(dtype: torch.dtype | None) -> None:
    frames, labels = make_video()
    seg = VideoSegmenter(
        FakeModel(), config=paper_config(), device="cuda", autocast_dtype=dtype, channels_last=True
    )
    outputs = _run(seg, frames, labels[0])
    assert seg.decisions == [{1: "iou", 2: "iou"}] * 4
    assert _iou(outputs[-1] == 1, labels[-1] == 1) > 0.8


def test_real_ovsnet_end_to_end() -> None:
    """Tiny real model (resnet18, random weights): contract plumbing, not accuracy."""
    ovsnet = pytest.importorskip("ovsnet.models.ovsnet")
    torch.manual_seed(0)
    model = ovsnet.build_ovsnet(backbone="resnet18", min_size=96, max_size=128)
    frames, labels = make_video()
    seg = VideoSegmenter(model, config=CascadeConfig(min_candidate_score=0.0))
    outputs = _run(seg, frames, labels[0])
    assert all(o.shape == (H, W) and o.dtype == np.uint8 for o in outputs)
    assert all(set(np.unique(o)) <= {0, 1, 2} for o in outputs)
    assert len(seg.decisions) == 4 and all(set(d) == {1, 2} for d in seg.decisions)
    assert all(seg.timings[s] > 0 for s in ("detect", "flow", "cascade", "merge"))
    assert Counter(p for d in seg.decisions for p in d.values()).total() == 8


def test_pruned_candidate_ious_keep_every_iou_path_decision() -> None:
    """IoUs are computed only for candidates that could pass ρ_iou; every IoU the IoU path can accept is unchanged."""
    torch.manual_seed(0)
    model = build_ovsnet(**{**TINY_MODEL, "min_size": H, "max_size": W, "box_detections_per_img": 100}).eval()
    config = CascadeConfig(**{**PAPER_RULES, "min_candidate_score": 0.0, "rho_iou": 0.3, "iou_scale": 0.5})
    seg = VideoSegmenter(model, config=config)
    frames, labels = make_video(num_frames=3)
    seg.start(frames[0], labels[0])
    seg.step(frames[1])
    det = seg._detect(frames[2])
    templates = seg._templates(seg.flow(frames[1], frames[2]))
    cand = {"boxes": det.boxes, "mask_probs": det.mask_probs}
    pruned = seg._candidate_ious(cand, templates)
    sh, sw = seg._small_size()
    full = box_mask_iou(
        (templates > 0.5).float(), det.boxes * torch.tensor([sw / W, sh / H] * 2), det.mask_probs
    )
    assert pruned.shape == full.shape == (2, len(det.boxes))
    eligible = full > config.rho_iou
    skipped = (pruned == 0).all(0) & (full > 0).any(0)  # overlapping candidates left out by the box bound
    assert eligible.any() and skipped.any()
    assert torch.equal(pruned[eligible], full[eligible])
    assert (pruned <= config.rho_iou).logical_or(eligible).all()


def test_merge_gives_each_pixel_to_the_most_probable_object_above_half() -> None:
    frames, labels = make_video(num_frames=1)
    seg = VideoSegmenter(FakeModel())
    seg.start(frames[0], labels[0])
    probs = torch.zeros(2, H, W)
    probs[0, :, :10] = 0.9  # object 1 alone
    probs[1, :, 5:20] = 0.7  # overlaps object 1 on columns 5-9, where object 1 is more probable
    probs[0, :, 30:40] = probs[1, :, 30:40] = 0.8  # a tie goes to the first object, as an argmax would
    probs[1, :, 50:60] = 0.5  # exactly 0.5 is background
    merged = seg._merge(probs)
    assert merged.dtype == np.uint8 and merged.shape == (H, W)
    assert (merged[:, :10] == 1).all() and (merged[:, 10:20] == 2).all() and (merged[:, 30:40] == 1).all()
    assert (merged[:, 20:30] == 0).all() and (merged[:, 50:60] == 0).all()
    assert (seg._merge(torch.zeros(0, H, W)) == 0).all()
