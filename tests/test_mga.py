"""Mask-Guided Attention: enlargement, 0.5 padding, crops, shapes and loss."""

import pytest
import torch

from ovsnet.models.guidance import drift_masks
from ovsnet.models.mga import (
    MGA_PRESETS,
    AdvancedASPP,
    MaskGuidedAttention,
    box_attention,
    crop_attention,
    crop_mask_targets,
    enlarge_boxes,
    paste_probs,
    refine_loss,
)


def test_enlarge_by_20_percent_about_centre() -> None:
    out = enlarge_boxes(torch.tensor([[10.0, 10, 30, 50]]))
    assert out[0].tolist() == pytest.approx([8.0, 6.0, 32.0, 54.0])


def test_box_attention_centres_the_mask_and_pads_with_half() -> None:
    probs = torch.ones(2, 28, 28)
    probs[1] = 0.0
    att = box_attention(probs, size=60)
    assert att.shape == (2, 1, 60, 60)
    assert att[0, 0, 30, 30].item() == pytest.approx(1.0)
    assert att[1, 0, 30, 30].item() == pytest.approx(0.0)
    for a in att[:, 0]:
        assert a[0, 0].item() == pytest.approx(0.5) and a[-1, 30].item() == pytest.approx(0.5)
    row = att[0, 0, 30]
    assert int((row > 0.75).sum()) == pytest.approx(50, abs=1)  # 60 / 1.2 pixels hold the mask
    assert torch.all(row[:4] == 0.5) and torch.all(row[-4:] == 0.5)


def test_crop_attention_and_targets_follow_the_enlarged_box() -> None:
    full = torch.zeros(1, 60, 60)
    full[0, 10:40, 20:50] = 1.0
    enlarged = enlarge_boxes(torch.tensor([[20.0, 10, 50, 40]]))
    att = crop_attention(full, enlarged, 24)
    assert att.shape == (1, 1, 24, 24)
    assert att[0, 0, 12, 12] == pytest.approx(1.0) and att[0, 0, 0, 0] == pytest.approx(0.0)
    masks = torch.zeros(2, 60, 60, dtype=torch.uint8)
    masks[1, 10:40, 20:50] = 1
    tgt = crop_mask_targets(masks, enlarged, torch.tensor([1]), size=100)
    assert tgt.shape == (1, 100, 100) and tgt.dtype == torch.int64
    assert tgt[0, 50, 50] == 1 and tgt[0, 2, 2] == 0
    assert int(tgt[0, 50].sum()) == pytest.approx(100 / 1.2, abs=2)
    assert crop_mask_targets(masks, enlarged, torch.tensor([0]), size=100).sum() == 0


@pytest.mark.parametrize("preset", sorted(MGA_PRESETS))
def test_forward_shapes(preset: str) -> None:
    torch.manual_seed(0)
    widths = dict(MGA_PRESETS[preset])
    if preset == "paper":
        widths.update(stage_blocks=1)  # keep the test fast; width is what the preset is about
    mga = MaskGuidedAttention(in_channels=16, num_levels=2, crop_size=16, out_size=40, **widths)
    feats = [torch.randn(2, 16, 16, 20), torch.randn(2, 16, 8, 10)]
    rois = torch.tensor([[0.0, 4, 4, 40, 30], [1.0, 0, 0, 80, 64], [1.0, 10, 10, 20, 20]])
    att = box_attention(torch.rand(3, 28, 28), 16)
    logits = mga(feats, rois, (64, 80), att)
    assert logits.shape == (3, 2, 40, 40)
    assert mga(feats, rois[:0], (64, 80), att[:0]).shape == (0, 2, 40, 40)
    with pytest.raises(ValueError, match="FPN levels"):
        mga(feats[:1], rois, (64, 80), att)


def test_attention_gates_the_features() -> None:
    torch.manual_seed(0)
    mga = MaskGuidedAttention(in_channels=8, num_levels=1, crop_size=8, out_size=20).eval()
    feats = [torch.randn(1, 8, 16, 16)]
    rois = torch.tensor([[0.0, 2, 2, 30, 30]])
    a = mga(feats, rois, (64, 64), torch.ones(1, 1, 8, 8))
    b = mga(feats, rois, (64, 64), torch.zeros(1, 1, 8, 8))
    c = mga([feats[0] * 5], rois, (64, 64), torch.zeros(1, 1, 8, 8))
    assert not torch.allclose(a, b)
    assert torch.allclose(b, c)  # zero attention removes all feature information


def test_advanced_aspp_trains_with_a_single_sample() -> None:
    aspp = AdvancedASPP(16, 8).train()
    out = aspp(torch.randn(1, 16, 25, 25))
    assert out.shape == (1, 8, 25, 25)
    out.sum().backward()


def test_loss_and_paste() -> None:
    logits = torch.zeros(2, 2, 10, 10, requires_grad=True)
    tgt = torch.ones(2, 10, 10, dtype=torch.int64)
    loss = refine_loss(logits, tgt)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    loss.backward()
    empty = refine_loss(logits[:0], tgt[:0])
    assert empty.item() == 0.0
    strong = torch.zeros(1, 2, 10, 10)
    strong[:, 1] = 20.0
    pasted = paste_probs(strong, torch.tensor([[10.0, 5, 30, 25]]), (40, 50))
    assert pasted.shape == (1, 40, 50)
    assert pasted[0, 15, 20] == pytest.approx(1.0, abs=1e-3) and pasted[0, 35, 45] == 0
    assert paste_probs(strong[:0], torch.zeros(0, 4), (40, 50)).shape == (0, 40, 50)


def test_drift_masks_move_and_reshape_like_a_warped_mask() -> None:
    masks = torch.zeros(16, 64, 80)
    masks[:, 20:44, 30:54] = 1
    drifted = drift_masks(masks, torch.Generator().manual_seed(0))
    assert drifted.shape == masks.shape and set(drifted.unique().tolist()) <= {0.0, 1.0}
    inter = (drifted * masks).flatten(1).sum(1)
    iou = inter / ((drifted + masks) > 0).flatten(1).sum(1)
    assert (iou < 1).all() and (iou > 0.4).all()  # the right object, the wrong outline
    assert len({round(v, 3) for v in iou.tolist()}) > 8  # every sample drifts its own way
    still = drift_masks(masks, max_shift=0, max_scale=0, max_radius=0)
    assert torch.equal(still, masks)
    assert drift_masks(torch.zeros(0, 8, 8)).shape == (0, 8, 8)


def test_drift_masks_dilate_and_erode() -> None:
    masks = torch.zeros(40, 32, 32)
    masks[:, 10:20, 10:20] = 1
    areas = drift_masks(masks, torch.Generator().manual_seed(1), max_shift=0, max_scale=0).flatten(1).sum(1)
    assert {64.0, 100.0, 144.0} <= set(areas.tolist())  # eroded by 1, untouched, dilated by 1 pixel
