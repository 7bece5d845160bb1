"""The association cascade with scripted candidates: path order, the 30% rule, one candidate per object."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import paste_masks_in_image

from ovsnet.inference.cascade import (
    Decision,
    TrackState,
    associate,
    box_intersection,
    box_mask_iou,
    update_state,
)
from ovsnet.inference.memory import ReIDBank
from ovsnet.inference.settings import InferenceSettings, resolve
from tests.tiny_models import paper_config

H = W = 20


def _box(y0: int, x0: int, size: int = 6) -> torch.Tensor:
    m = torch.zeros(H, W)
    m[y0 : y0 + size, x0 : x0 + size] = 1.0
    return m


def _bank(*vectors: list[float], size: int = 64) -> ReIDBank:
    bank = ReIDBank(max_size=size)
    for v in vectors:
        bank.add(torch.tensor(v, dtype=torch.float32))
    return bank


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(K, N) pixel IoU of binary masks (K,h,w) x (N,h,w): the reference the cascade's IoUs are checked on."""
    fa, fb = a.flatten(1).float(), b.flatten(1).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-6), torch.zeros_like(inter))


def _run(
    templates, cands, embs, banks, states=None, guarded: bool = False, alive: bool = True, cfg=None
) -> list[Decision]:
    """The paper's rules unless ``guarded`` (the library's default guards on the IoU path, plus the absence
    rule after 2 unsupported frames: ``inference=realtime``'s, off by default since the appearance
    correction), with ``cfg`` (dotted keys) over them; candidates are given as masks and their pixel IoUs
    with the templates go to ``associate``."""
    states = states or [TrackState() for _ in banks]
    stacked = torch.stack(templates)
    masks = torch.stack(cands) if cands else torch.zeros(0, H, W)
    return associate(
        stacked,
        mask_iou(stacked > 0.5, masks > 0.5),
        embs,
        banks,
        states,
        resolve(None, None, {"absence.max_unsupported_streak": 2, **(cfg or {})})
        if guarded
        else paper_config(cfg),
        alive,
    )


def test_reference_mask_iou() -> None:
    a = torch.stack([_box(0, 0), _box(10, 10)]) > 0
    b = torch.stack([_box(0, 0), _box(0, 3), torch.zeros(H, W)]) > 0
    iou = mask_iou(a, b)
    torch.testing.assert_close(iou, torch.tensor([[1.0, 18 / 54, 0.0], [0.0, 0.0, 0.0]]))


def test_box_mask_iou_is_exact_when_cells_are_pixels() -> None:
    """6x6 mask grids over 6-pixel boxes: one cell per pixel, so the IoU equals the pixel IoU."""
    templates = torch.stack([_box(0, 0), _box(10, 10)])
    boxes = torch.tensor([[0.0, 0.0, 6.0, 6.0], [3.0, 0.0, 9.0, 6.0], [10.0, 10.0, 16.0, 16.0]])
    probs = torch.ones(3, 6, 6)
    probs[2, :, 3:] = 0.2  # only the left half of the third candidate is foreground
    iou = box_mask_iou(templates, boxes, probs)
    expected = torch.tensor([[1.0, 18 / 54, 0.0], [0.0, 0.0, 18 / 36]])
    torch.testing.assert_close(iou, expected)
    assert box_mask_iou(templates, boxes[:0], probs[:0]).shape == (2, 0)


def test_box_mask_iou_is_as_accurate_as_pasting_at_the_reduced_resolution() -> None:
    """Against the full-resolution IoU it errs no more than pasting each candidate at 1/4 scale did."""
    g = torch.Generator().manual_seed(0)
    size, s = 384, 4
    xy = torch.rand(60, 2, generator=g) * 160
    boxes = torch.cat([xy, xy + 64 + torch.rand(60, 2, generator=g) * 160], dim=1)
    probs = F.interpolate(torch.rand(60, 1, 4, 4, generator=g), size=(28, 28), mode="bilinear")[:, 0]
    templates = paste_masks_in_image(probs[:3, None], boxes[:3] + 4.0, (size, size))[:, 0] > 0.5
    truth = mask_iou(templates, paste_masks_in_image(probs[:, None], boxes, (size, size))[:, 0] > 0.5)
    small = F.interpolate(templates[None].float(), size=(size // s, size // s), mode="nearest")[0]
    pasted = paste_masks_in_image(probs[:, None], boxes / s, (size // s, size // s))[:, 0] > 0.5
    err_paste = (mask_iou(small > 0.5, pasted) - truth).abs()
    err_box = (box_mask_iou(small, boxes / s, probs) - truth).abs()
    overlapping = truth > 0.2
    assert overlapping.sum() >= 3
    assert err_box[overlapping].mean() <= err_paste[overlapping].mean() + 0.01
    assert err_box.max() < 0.15


def test_associate_takes_the_iou_matrix() -> None:
    iou = torch.tensor([[0.2, 0.85, 0.5]])
    template, bank = torch.stack([_box(0, 0)]), [_bank([0.0])]
    d = associate(template, iou, None, bank, [TrackState()], InferenceSettings())
    assert d[0].path == "iou" and d[0].candidate == 1 and d[0].iou == pytest.approx(0.85)
    assert d[0].reid_distance is None and d[0].flow_area == 36.0  # the warped area, not what decided
    with pytest.raises(ValueError, match="IoU matrix"):
        associate(template, iou.T, None, bank, [TrackState()], InferenceSettings())
    with pytest.raises(ValueError, match="2 embeddings for 3 candidates"):
        associate(template, iou, torch.zeros(2, 4), bank, [TrackState()], InferenceSettings())


def test_iou_path_wins_and_best_candidate_is_taken() -> None:
    d = _run([_box(0, 0)], [_box(0, 3), _box(0, 1)], torch.zeros(2, 2), [_bank([9.0, 9.0])])
    assert d[0].path == "iou" and d[0].candidate == 1 and d[0].iou == pytest.approx(30 / 42)


def test_iou_below_threshold_falls_to_reid_then_flow() -> None:
    template = _box(0, 0)
    far = _box(12, 12)
    near_emb = torch.tensor([[0.5, 0.0]])
    d = _run([template], [far], near_emb, [_bank([0.0, 0.0])])
    assert d[0] == Decision("reid", 0, reid_distance=0.5)
    d = _run([template], [far], torch.tensor([[5.0, 0.0]]), [_bank([0.0, 0.0])])
    assert d[0].path == "flow" and d[0].candidate is None and d[0].flow_area == 36
    d = _run(
        [template], [far], torch.tensor([[5.0, 0.0]]), [_bank([0.0, 0.0])], cfg={"cascade.use_flow": False}
    )
    assert d[0].path == "absent"
    d = _run([template], [far], near_emb, [_bank([0.0, 0.0])], cfg={"reid.enabled": False})
    assert d[0].path == "flow"


@pytest.mark.parametrize("close,qualifies", [(3, True), (2, False)])
def test_reid_fraction_rule_at_the_boundary(close: int, qualifies: bool) -> None:
    """Bank of 10: exactly 3 stored embeddings (30%) within rho_reid qualifies, 2 does not."""
    vectors = [[0.0, 0.0]] * close + [[10.0, 0.0]] * (10 - close)
    d = _run([torch.zeros(H, W)], [_box(5, 5)], torch.tensor([[0.0, 0.0]]), [_bank(*vectors)])
    assert (d[0].path == "reid") is qualifies


def test_reid_ranking_min_vs_mean() -> None:
    bank = _bank([0.0, 0.0], [1.9, 0.0], [1.9, 0.0])
    embs = torch.tensor([[0.1, 0.0], [1.8, 0.0]])  # mean: cand 1 closer; min: cand 0 closer
    cands = [_box(0, 0), _box(10, 10)]
    assert _run([torch.zeros(H, W)], cands, embs, [bank], cfg={"reid.distance": "mean"})[0].candidate == 1
    assert _run([torch.zeros(H, W)], cands, embs, [bank], cfg={"reid.distance": "min"})[0].candidate == 0


def test_one_candidate_never_serves_two_objects() -> None:
    # both templates overlap candidate 0 best; the assignment gives the other object candidate 1
    t1, t2 = _box(0, 0), _box(0, 2)
    d = _run([t1, t2], [_box(0, 1), _box(0, 3)], torch.zeros(2, 2), [_bank([0.0, 0.0]), _bank([0.0, 0.0])])
    assert {d[0].path, d[1].path} == {"iou"}
    assert d[0].candidate != d[1].candidate
    # Re-ID: two objects with the same appearance, one candidate: one gets it, the other falls to flow
    d = _run(
        [_box(0, 0), _box(10, 10)], [_box(0, 12)], torch.zeros(1, 2), [_bank([0.0, 0.0]), _bank([0.0, 0.0])]
    )
    assert sorted(x.path for x in d) == ["flow", "reid"]


def test_absent_objects_come_back_only_through_reid() -> None:
    gone = [TrackState(present=False)]
    cand = [_box(0, 0)]
    # the template still overlaps the candidate perfectly, but an absent object ignores IoU and flow
    d = _run([_box(0, 0)], cand, torch.tensor([[9.0, 9.0]]), [_bank([0.0, 0.0])], states=gone)
    assert d[0].path == "absent"
    d = _run([_box(0, 0)], cand, torch.tensor([[0.1, 0.0]]), [_bank([0.0, 0.0])], states=gone)
    assert d[0].path == "reid"


def test_flow_streak_and_min_area_mark_absent() -> None:
    emb = torch.zeros(0, 2)
    streak = [TrackState(present=True, flow_streak=3)]
    assert (
        _run([_box(0, 0)], [], emb, [_bank([0.0])], states=streak, cfg={"cascade.max_flow_streak": 3})[0].path
        == "absent"
    )
    assert (
        _run([_box(0, 0)], [], emb, [_bank([0.0])], states=streak, cfg={"cascade.max_flow_streak": 4})[0].path
        == "flow"
    )
    assert (
        _run([_box(0, 0, 2)], [], emb, [_bank([0.0])], cfg={"cascade.min_flow_area": 5})[0].path == "absent"
    )
    state = TrackState()
    for _ in range(3):
        state = update_state(state, Decision("flow"))
    assert state.flow_streak == 3
    assert update_state(state, Decision("iou", 0)).flow_streak == 0
    assert not update_state(state, Decision("absent")).present


def test_config_and_shape_errors() -> None:
    with pytest.raises(ValueError, match="reid.update"):
        resolve(overrides={"reid.update": "always"})
    with pytest.raises(ValueError, match="1 templates but 2 banks"):
        associate(
            torch.zeros(1, 4, 4),
            torch.zeros(1, 0),
            None,
            [_bank([0.0])] * 2,
            [TrackState()],
            InferenceSettings(),
        )


def test_box_intersection() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 40.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 2.0, 3.0], [40.0, 40.0, 50.0, 50.0]])
    assert box_intersection(a, b).tolist() == [[25.0, 6.0, 0.0], [0.0, 0.0, 0.0]]


def test_guarded_iou_path_keeps_the_flow_proposal_for_a_half_overlapping_detection() -> None:
    """IoU 18/54 passes the paper's rho_iou=0.3 but not switch_iou: the warped mask is kept; IoU 30/42
    passes switch_iou=0.5 but not the default 0.8."""
    emb, bank = torch.zeros(1, 2), _bank([0.0, 0.0])
    assert _run([_box(0, 0)], [_box(0, 3)], emb, [bank])[0].path == "iou"
    assert (
        _run([_box(0, 0)], [_box(0, 3)], emb, [bank], guarded=True, cfg={"cascade.switch_iou": 0.5})[0].path
        == "flow"
    )
    assert (
        _run([_box(0, 0)], [_box(0, 1)], emb, [bank], guarded=True, cfg={"cascade.switch_iou": 0.5})[0].path
        == "iou"
    )
    assert _run([_box(0, 0)], [_box(0, 1)], emb, [bank], guarded=True)[0].path == "flow"


def test_guarded_iou_path_rejects_an_overlapping_detection_of_another_appearance() -> None:
    """Same place, wrong Re-ID embedding (far from every bank entry): not the object, flow path instead."""
    far, near = torch.tensor([[9.0, 9.0]]), torch.tensor([[0.1, 0.0]])
    bank, switch = _bank([0.0, 0.0]), {"cascade.switch_iou": 0.5}
    assert _run([_box(0, 0)], [_box(0, 1)], far, [bank], guarded=True, cfg=switch)[0].path == "flow"
    assert _run([_box(0, 0)], [_box(0, 1)], near, [bank], guarded=True, cfg=switch)[0].path == "iou"
    unchecked = {**switch, "cascade.iou_reid_check": False}
    assert _run([_box(0, 0)], [_box(0, 1)], far, [bank], guarded=True, cfg=unchecked)[0].path == "iou"
    no_reid = {**switch, "reid.enabled": False}
    assert _run([_box(0, 0)], [_box(0, 1)], far, [bank], guarded=True, cfg=no_reid)[0].path == "iou"


def test_absence_needs_evidence_by_default() -> None:
    """Without a flow limit an object whose warped mask is still there stays on the flow path."""
    streak = [TrackState(present=True, flow_streak=1000)]
    emb = torch.zeros(0, 2)
    assert _run([_box(0, 0)], [], emb, [_bank([0.0])], states=streak, guarded=True)[0].path == "flow"
    assert _run([torch.zeros(H, W)], [], emb, [_bank([0.0])], states=streak, guarded=True)[0].path == "absent"


@pytest.mark.parametrize(
    "key,value",
    [
        ("cascade.switch_iou", 1.5),
        ("mga.min_iou", -0.1),
        ("cascade.max_flow_streak", -1),
        ("absence.max_unsupported_streak", -1),
        ("absence.support_iou", 1.5),
        ("absence.implausible_growth", 0.5),
    ],
)
def test_guard_settings_are_checked(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"inference.{key}"):
        resolve(overrides={key: value})


def _unsupported(streak: int, ref_area: float | None) -> list[TrackState]:
    return [TrackState(present=True, flow_streak=streak, unsupported_streak=streak, ref_area=ref_area)]


def test_unsupported_warped_mask_leaves_only_when_it_looks_like_flow_failure() -> None:
    """No candidate overlaps the warped mask for more than max_unsupported_streak frames: absent only if the
    mask also changed size since it was last supported, or shrinks against the frame border."""
    emb, bank = torch.tensor([[9.0, 9.0]]), [_bank([0.0, 0.0])]
    middle, border = _box(7, 7), _box(0, 7)  # 36 pixels each
    elsewhere = [_box(15, 15, 4)]  # the detector works, but sees nothing where the warped mask is

    def path(template: torch.Tensor, states: list[TrackState], cands=elsewhere, cfg=None) -> str:
        return _run([template], cands, emb[: len(cands)], bank, states=states, guarded=True, cfg=cfg)[0].path

    assert path(middle, _unsupported(2, 36.0)) == "flow"  # same size, in the frame: a missed detection
    assert path(middle, _unsupported(2, 12.0)) == "absent"  # grew 3x: smeared over the background
    assert path(middle, _unsupported(2, 100.0)) == "absent"  # shrank to a third
    assert path(middle, _unsupported(1, 12.0)) == "flow"  # the second unsupported frame: not yet
    assert path(border, _unsupported(2, 40.0)) == "absent"  # shrinking against the border: it left
    assert path(border, _unsupported(2, 30.0)) == "flow"  # growing at the border: entering, kept
    assert (
        path(middle, _unsupported(2, 36.0), cfg={"absence.implausible_growth": None}) == "absent"
    )  # the detector alone
    assert path(middle, _unsupported(2, 12.0), cands=[]) == "absent"  # an empty frame: the object left
    # ... unless this detector has never returned a candidate in the video: then it says nothing
    assert (
        _run([middle], [], emb[:0], bank, _unsupported(2, 12.0), guarded=True, alive=False)[0].path == "flow"
    )
    assert path(border, _unsupported(2, None)) == "absent"  # no reference yet: the border alone
    assert path(middle, _unsupported(2, None)) == "flow"
    assert (
        path(middle, _unsupported(2, 12.0), cfg={"absence.max_unsupported_streak": None}) == "flow"
    )  # rule off
    paper = _run([middle], elsewhere, emb, bank, states=_unsupported(2, 12.0))[0].path
    assert paper == "flow"


def test_an_overlapping_candidate_supports_the_warped_mask_without_replacing_it() -> None:
    emb, bank = torch.zeros(1, 2), [_bank([9.0, 9.0])]  # far embedding: no IoU or Re-ID path
    state = _unsupported(5, 12.0)
    d = _run([_box(7, 7)], [_box(9, 9)], emb, bank, states=state, guarded=True)[0]
    assert d.path == "flow" and d.support == pytest.approx(16 / 56)
    d = _run(
        [_box(7, 7)], [_box(9, 9)], emb, bank, states=state, guarded=True, cfg={"absence.support_iou": 0.5}
    )[0]
    assert d.path == "absent"


def test_a_candidate_taken_by_another_object_supports_nobody_else() -> None:
    """Object 0 takes the candidate on the IoU path; object 1's smeared mask overlapping it stays unsupported."""
    near = torch.tensor([[0.1, 0.0]])
    banks = [_bank([0.0, 0.0]), _bank([5.0, 5.0])]
    smear = torch.zeros(H, W)
    smear[5:15, 5:15] = 1.0
    states = [TrackState(), *_unsupported(2, 20.0)]
    d = _run([_box(7, 7), smear], [_box(7, 7)], near, banks, states=states, guarded=True)
    assert [x.path for x in d] == ["iou", "absent"]


def test_update_state_counts_unsupported_frames_and_keeps_the_last_supported_area() -> None:
    state = update_state(TrackState(), Decision("flow", flow_area=36.0, support=0.6), 0.1)
    assert (state.unsupported_streak, state.ref_area) == (0, 36.0)
    for area in (50.0, 70.0):
        state = update_state(state, Decision("flow", flow_area=area, support=0.0), 0.1)
    assert (state.unsupported_streak, state.ref_area, state.flow_streak) == (2, 36.0, 3)
    state = update_state(state, Decision("flow", flow_area=80.0, support=0.3), 0.1)
    assert (state.unsupported_streak, state.ref_area) == (0, 80.0)
    assert update_state(state, Decision("reid", 0), 0.1) == TrackState()  # back, maybe at another size
    assert update_state(state, Decision("iou", 0, flow_area=90.0), 0.1) == TrackState(ref_area=90.0)
    assert update_state(TrackState(), Decision("flow", flow_area=36.0, support=0.0), 0.1).ref_area == 36.0
