"""VideoSegmenter end to end on a 5-frame synthetic video: a scripted fake model and the real OVSNet."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from ovsnet.data.io import DataError
from ovsnet.inference.cascade import box_mask_iou
from ovsnet.inference.protocol import FrameDetections, SegmenterModel
from ovsnet.inference.segmenter import STAGES, VideoSegmenter
from ovsnet.inference.settings import resolve
from ovsnet.models.ovsnet import OVSNet, build_ovsnet
from tests.tiny_models import TINY_MODEL, VIDEO_H, VIDEO_W, FakeModel, make_video, paper_config

H, W = VIDEO_H, VIDEO_W


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
    assert model.refine_sizes == [2] * 4 and model.refine_image_sizes == []
    assert set(seg.timings) == set(STAGES) and seg.timings["appearance"] == 0  # off under the paper's rules
    assert all(v > 0 for stage, v in seg.timings.items() if stage != "appearance")
    assert all(len(bank) == 5 for bank in seg.banks.values())  # first embedding + 4 IoU-path updates


def test_missed_detection_falls_back_to_flow_then_recovers() -> None:
    frames, labels = make_video()
    model = FakeModel(blind_calls={3})  # call 1 = start, call 3 = frame 2
    seg = VideoSegmenter(model, config=paper_config())
    outputs = _run(seg, frames, labels[0])
    assert [d[1] for d in seg.decisions] == ["iou", "flow", "iou", "iou"]
    assert model.refine_image_sizes == [2]
    assert _iou(outputs[1] == 1, labels[2] == 1) > 0.6  # the flow-warped mask follows the object


def test_lost_object_returns_through_reid() -> None:
    frames, labels = make_video(hidden={2: {2}, 3: {2}}, jump={4: {2: (5, 95)}})
    config = resolve(overrides={"cascade.max_flow_streak": 1, "detector.every": 1})
    seg = VideoSegmenter(FakeModel(), config=config)
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
    seg = VideoSegmenter(model, config=paper_config({"mga.enabled": False}))
    _run(seg, frames, labels[0])
    assert model.pasted[0] == 2  # 3 candidates, the blob's mask is never pasted for the cascade
    assert len(model.detect([torch.from_numpy(frames[1]).permute(2, 0, 1).float() / 255])[0].boxes) == 3
    assert seg.decisions == [{1: "iou", 2: "iou"}]


def test_candidates_below_min_score_are_never_taken() -> None:
    """The segmenter drops detections under ``min_candidate_score`` before the cascade sees them."""
    frames, labels = make_video(num_frames=3)
    seg = VideoSegmenter(
        FakeModel(), config=paper_config({"cascade.min_candidate_score": 0.95})
    )  # fake scores: 0.9
    _run(seg, frames, labels[0])
    assert seg.decisions == [{1: "flow", 2: "flow"}] * 2
    seg = VideoSegmenter(FakeModel(), config=paper_config({"cascade.min_candidate_score": 0.9}))
    _run(seg, frames, labels[0])
    assert seg.decisions == [{1: "iou", 2: "iou"}] * 2


def test_mga_off_never_refines_and_banks_stay_bounded() -> None:
    frames, labels = make_video()
    model = FakeModel()
    seg = VideoSegmenter(model, config=paper_config({"mga.enabled": False, "reid.bank_size": 2}))
    _run(seg, frames, labels[0])
    assert model.refine_sizes == [] and model.refine_image_sizes == []
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
    torch.manual_seed(0)
    model = build_ovsnet(backbone="resnet18", min_size=96, max_size=128)
    assert isinstance(model, OVSNet) and isinstance(model, SegmenterModel)
    frames, labels = make_video()
    seg = VideoSegmenter(model, config=resolve(overrides={"cascade.min_candidate_score": 0.0}))
    assert isinstance(seg._detect(frames[0]), FrameDetections)
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
    config = paper_config(
        {"cascade.min_candidate_score": 0.0, "cascade.rho_iou": 0.3, "cascade.iou_scale": 0.5}
    )
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
    eligible = full > config.cascade.rho_iou
    skipped = (pruned == 0).all(0) & (full > 0).any(0)  # overlapping candidates left out by the box bound
    assert eligible.any() and skipped.any()
    assert torch.equal(pruned[eligible], full[eligible])
    assert (pruned <= config.cascade.rho_iou).logical_or(eligible).all()


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


PROTOCOL = ("detect", "embed", "paste_masks", "refine_box_masks", "refine_image_masks")
OPTIONAL = {"eval", "to"}  # read only when present (torch modules); settings travel beside the model


class AccessLog:
    """Delegates to a model and records every attribute the segmenter reads from it."""

    def __init__(self, inner: object) -> None:
        self.inner, self.seen = inner, set()

    def __getattr__(self, name: str) -> object:  # only for names this wrapper lacks: the model's
        self.seen.add(name)
        return getattr(self.inner, name)


def test_the_segmenter_needs_nothing_but_the_protocol() -> None:
    """A plain object with the protocol's five methods runs every path (IoU, flow with MGA on the warped
    mask, Re-ID after loss); the segmenter reads no other attribute of it."""
    assert all(callable(getattr(SegmenterModel, name)) for name in PROTOCOL)
    fake = FakeModel(blind_calls={3})
    assert not isinstance(fake, torch.nn.Module) and isinstance(fake, SegmenterModel)
    model = AccessLog(fake)
    frames, labels = make_video()
    seg = VideoSegmenter(model, config=paper_config())
    outputs = _run(seg, frames, labels[0])
    assert [d[1] for d in seg.decisions] == ["iou", "flow", "iou", "iou"]
    assert fake.refine_image_sizes == [2] and fake.refine_sizes == [2, 2, 2]
    assert _iou(outputs[-1] == 1, labels[-1] == 1) > 0.8
    assert set(PROTOCOL) <= model.seen <= set(PROTOCOL) | OPTIONAL


def test_a_model_without_the_protocol_is_refused_at_construction() -> None:
    class OldModel(FakeModel):  # the names before the protocol: refine / refine_full
        refine_box_masks = refine_image_masks = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="SegmenterModel"):
        VideoSegmenter(OldModel())


def test_an_object_the_detector_stops_seeing_leaves_and_returns_through_reid() -> None:
    """Object 2 is seen in frame 1, then hidden for frames 2-5: nothing overlaps its warped mask. With the
    detector's word alone (``absence.implausible_growth=None``) it is absent after ``absence.max_unsupported_streak`` frames,
    its mask gone, and the Re-ID path brings it back when it reappears. A detector that has found nothing
    in the video says nothing: the object stays on the flow path (the floor)."""
    frames, labels = make_video(num_frames=8, hidden={t: {2} for t in range(2, 6)})
    # the cascade's decisions alone, with the absence rule
    only_cascade = resolve(
        overrides={
            "absence.max_unsupported_streak": 2,
            "absence.implausible_growth": None,
            "appearance.backbone": None,
            "detector.every": 1,
        }
    )
    seg = VideoSegmenter(FakeModel(), config=only_cascade)
    outputs = _run(seg, frames, labels[0])
    assert [d[2] for d in seg.decisions] == ["iou", "flow", "flow", "absent", "absent", "reid", "iou"]
    assert not (outputs[4] == 2).any() and _iou(outputs[5] == 2, labels[6] == 2) > 0.8
    assert all(d[1] != "absent" for d in seg.decisions)  # object 1, always detected, stays
    blind = FakeModel(blind_calls=set(range(1, 9)))
    seg = VideoSegmenter(blind, config=only_cascade)
    _run(seg, frames, labels[0])  # no candidate in any frame
    assert all(d[2] == "flow" for d in seg.decisions)


def test_iou_flow_weight_mixes_the_warped_mask_into_the_iou_path() -> None:
    """With zero flow the warped mask stays where the object was: weight 1 keeps it (the detection still
    decides the path), weight 0 takes the detection alone (the paper), and in between the mask is their blend."""
    from ovsnet.inference.flow import ZeroFlow

    frames, labels = make_video(num_frames=3)  # the squares still overlap where they started
    outputs = {}
    for weight in (0.0, 0.75, 1.0):
        seg = VideoSegmenter(FakeModel(), ZeroFlow(), paper_config({"cascade.iou_flow_weight": weight}))
        outputs[weight] = _run(seg, frames, labels[0])
        assert seg.path_counts["iou"] == 4
    for out, gt in zip(outputs[0.0], labels[1:], strict=True):
        assert _iou(out == 1, gt == 1) > 0.8
    assert all(np.array_equal(out, labels[0]) for out in outputs[1.0])
    # 0.75: a pixel needs the warped mask (0.75 > 0.5); the detection alone (0.25) is not enough
    assert all(np.array_equal(out == 1, labels[0] == 1) for out in outputs[0.75])
    with pytest.raises(ValueError, match="cascade.iou_flow_weight"):
        resolve(overrides={"cascade.iou_flow_weight": 1.5})


def test_mga_weight_blends_a_kept_refinement_with_its_input() -> None:
    seg = VideoSegmenter(
        FakeModel(),
        config=resolve(overrides={"mga.min_iou": 0.0, "mga.weight": 0.25, "appearance.backbone": None}),
    )
    proposal = torch.ones(2, 4, 4)
    refined = torch.zeros(2, 4, 4)
    assert torch.allclose(seg._accept_refinement(proposal, refined), torch.full((2, 4, 4), 0.75))
    guarded = VideoSegmenter(
        FakeModel(),
        config=resolve(overrides={"mga.min_iou": 0.5, "mga.weight": 0.25, "appearance.backbone": None}),
    )
    assert torch.equal(
        guarded._accept_refinement(proposal, refined), proposal
    )  # rejected: the input as it was
    with pytest.raises(ValueError, match="mga.weight"):
        resolve(overrides={"mga.weight": -0.1})


def test_key_frames_detect_every_nth_frame_and_every_frame_while_an_object_is_lost() -> None:
    """``detector.every=3``: the detector sees the first frame and frames 3, 6, ...; between them the objects
    follow flow and nothing is evidence of absence. Object 2, hidden in frames 2-5, is found missing on key
    frame 3; from then on every frame is detected until the Re-ID path brings it back (frame 6)."""
    frames, labels = make_video(num_frames=9)
    model = FakeModel()
    seg = VideoSegmenter(model, config=paper_config({"detector.every": 3}))  # the IoU path on key frames
    outputs = _run(seg, frames, labels[0])
    assert model.detect_calls == 3 and seg.detected_frames == 2  # the first frame, then frames 3 and 6
    assert [d[1] for d in seg.decisions] == ["flow", "flow", "iou", "flow", "flow", "iou", "flow", "flow"]
    assert model.refine_sizes == [2, 2] and model.refine_image_sizes == []  # MGA reads key frames only
    for out, gt in zip(outputs, labels[1:], strict=True):
        assert all(_iou(out == obj, gt == obj) > 0.6 for obj in (1, 2))

    frames, labels = make_video(num_frames=8, hidden={t: {2} for t in range(2, 6)})
    config = {"appearance.backbone": None, "detector.every": 3}
    absence = {"absence.max_unsupported_streak": 0, "absence.implausible_growth": None}
    model = FakeModel()
    seg = VideoSegmenter(model, config=resolve(overrides={**config, **absence}))
    outputs = _run(seg, frames, labels[0])
    assert [d[2] for d in seg.decisions] == ["flow", "flow", "absent", "absent", "absent", "reid", "flow"]
    assert model.detect_calls == 5  # the first frame, key frame 3, frames 4-5 while lost, frame 6
    assert not (outputs[2] == 2).any() and _iou(outputs[5] == 2, labels[6] == 2) > 0.8


def test_detection_on_every_frame_without_the_flow_path() -> None:
    """Without flow (``inference=no_flow``) an object between key frames would have no mask: every frame is
    detected whatever ``detector.every`` says."""
    frames, labels = make_video(num_frames=4)
    model = FakeModel()
    config = {"appearance.backbone": None, "detector.every": 8, "cascade.use_flow": False}
    _run(VideoSegmenter(model, config=resolve(overrides=config)), frames, labels[0])
    assert model.detect_calls == 4
