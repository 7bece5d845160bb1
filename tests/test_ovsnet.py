"""OVSNet: training losses, detach of MGA inputs, eval API shapes, ablations, one optimisation step."""

import pytest
import torch

from ovsnet.data.io import DataError
from ovsnet.models import Detections, OVSNet, build_ovsnet, group_losses
from tests.tiny_models import LOSS_KEYS

TINY = {
    "backbone": "resnet18",
    "min_size": 64,
    "max_size": 96,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 50,
    "box_detections_per_img": 20,
}


def make_target(h: int, w: int, boxes: list[list[int]], ids: list[int]) -> dict[str, torch.Tensor]:
    masks = torch.zeros(len(boxes), h, w, dtype=torch.uint8)
    for m, (x0, y0, x1, y1) in zip(masks, boxes, strict=True):
        m[y0:y1, x0:x1] = 1
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.ones(len(boxes), dtype=torch.int64),
        "masks": masks,
        "reid_ids": torch.tensor(ids, dtype=torch.int64),
    }


@pytest.fixture(scope="module")
def batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 80, generator=g) for _ in range(3)]
    targets = [
        make_target(64, 80, [[8, 8, 40, 48], [44, 10, 76, 60]], [1, 2]),
        make_target(64, 80, [[10, 12, 42, 50]], [1]),
        make_target(64, 80, [], []),
    ]  # a frame with no objects
    return images, targets


@pytest.fixture(scope="module")
def model() -> OVSNet:
    torch.manual_seed(0)
    return build_ovsnet(**TINY)


def test_training_losses(model: OVSNet, batch: tuple) -> None:
    model.train()
    losses = model(*batch)
    assert set(losses) == set(LOSS_KEYS)
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    assert losses["loss_refine"] > 0  # GT boxes are always candidates: two objects are refined
    images, targets = batch
    empty = model(images[2:], targets[2:])
    assert set(empty) == set(LOSS_KEYS) and empty["loss_reid"] == 0 and empty["loss_refine"] == 0
    group_losses(empty)["total"].backward()


def test_missing_target_key_names_it(model: OVSNet, batch: tuple) -> None:
    images, targets = batch
    broken = [{k: v for k, v in targets[0].items() if k != "reid_ids"}]
    model.train()
    with pytest.raises(DataError, match="reid_ids"):
        model(images[:1], broken)


def test_mga_inputs_are_detached(batch: tuple) -> None:
    torch.manual_seed(0)
    net = build_ovsnet(**TINY).train()
    net(*batch)["loss_refine"].backward()
    for part in (net.detector.backbone, net.detector.rpn, net.detector.roi_heads):
        assert all(p.grad is None or not p.grad.any() for p in part.parameters())
    assert any(p.grad is not None and p.grad.any() for p in net.mga.parameters())


def test_reid_loss_reaches_the_head(batch: tuple) -> None:
    torch.manual_seed(0)
    net = build_ovsnet(**TINY, reid_margin=100.0).train()  # a margin no random embedding satisfies
    loss = net(*batch)["loss_reid"]
    assert loss > 0
    loss.backward()
    assert net.reid_head.fc1.weight.grad.any()


def test_group_losses_and_lambda() -> None:
    d = {
        k: torch.tensor(v)
        for k, v in zip(sorted(LOSS_KEYS), [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0], strict=True)
    }
    # sorted: box_reg 1, classifier 2, mask 4, objectness 8, refine 16, reid 32, rpn_box_reg 64
    g = group_losses(d, lambda_refine=2.0)
    assert g["loc"] == 65 and g["cls"] == 10 and g["mask"] == 4 and g["reid"] == 32 and g["refine"] == 16
    assert g["total"] == 4 + 65 + 10 + 32 + 2.0 * 16
    assert OVSNet.group_losses(d)["total"] == pytest.approx(4 + 65 + 10 + 32 + 1.3 * 16)
    with pytest.raises(KeyError, match="loss_reid"):
        group_losses({k: v for k, v in d.items() if k != "loss_reid"})


def test_detect_and_refine_shapes(model: OVSNet) -> None:
    model.eval()
    image = torch.rand(3, 128, 160)  # detector works at 64x80: boxes must come back in 128x160 pixels
    dets = model.detect([image, torch.rand(3, 96, 120)])
    det = dets[0]
    assert isinstance(det, Detections) and len(det) > 0
    n = len(det)
    assert det.boxes.shape == (n, 4) and det.scores.shape == (n,) and det.labels.shape == (n,)
    assert det.mask_probs.shape == (n, 28, 28) and 0 <= det.mask_probs.min() and det.mask_probs.max() <= 1
    assert det.embeddings.shape == (n, 128)
    assert det.features.image_size == (64, 80) and det.features.original_size == (128, 160)
    assert det.boxes[:, 2].max() <= 160 and det.boxes[:, 3].max() <= 128
    assert dets[1].features.original_size == (96, 120)
    k = min(n, 3)
    assert model.embed(det.features, det.boxes[:k]) == pytest.approx(det.embeddings[:k], abs=1e-4)
    refined = model.refine_box_masks(det.features, det.boxes[:k], det.mask_probs[:k])
    assert refined.shape == (k, 128, 160) and 0 <= refined.min() and refined.max() <= 1
    full = model.refine_image_masks(det.features, det.boxes[:k], refined)
    assert full.shape == (k, 128, 160)
    with pytest.raises(ValueError, match="differs from the image size"):
        model.refine_image_masks(det.features, det.boxes[:k], refined[:, :64])


def test_paste_masks_takes_the_image_size_and_keeps_no_state(model: OVSNet) -> None:
    """Boxes are in pixels of the image of ``image_size``; an earlier ``detect`` changes nothing."""
    boxes = torch.tensor([[0.0, 0, 40, 32], [20, 16, 40, 32]])  # a 128x160 frame's boxes at quarter size
    probs = torch.ones(2, 28, 28)
    small = model.paste_masks(boxes, probs, (32, 40))
    assert small.shape == (2, 32, 40)
    # torchvision's paste blends the one-pixel box border with the zero padding; the interior is exact
    assert small[0, 1:, 1:].min() > 0.99
    assert small[1, :14, :].max() == 0 and small[1, 20:, 25:].min() > 0.99
    model.detect([torch.rand(3, 128, 160)])
    assert torch.equal(model.paste_masks(boxes, probs, (32, 40)), small)
    assert model.paste_masks(boxes[:0], probs[:0], (32, 40)).shape == (0, 32, 40)


def test_image_without_detections(model: OVSNet) -> None:
    model.eval()
    thresh = model.detector.roi_heads.score_thresh
    model.detector.roi_heads.score_thresh = 1.1
    try:
        det = model.detect([torch.rand(3, 64, 80)])[0]
    finally:
        model.detector.roi_heads.score_thresh = thresh
    assert (
        det.boxes.shape == (0, 4) and det.mask_probs.shape == (0, 28, 28) and det.embeddings.shape == (0, 128)
    )
    assert model.refine_box_masks(det.features, det.boxes, det.mask_probs).shape == (0, 64, 80)


def test_ablation_switches(batch: tuple) -> None:
    torch.manual_seed(0)
    net = build_ovsnet(**TINY, reid=False, mga=False).train()
    losses = net(*batch)
    assert losses["loss_reid"] == 0 and losses["loss_refine"] == 0
    assert net.reid_head is None and net.mga is None
    net.eval()
    det = net.detect([torch.rand(3, 64, 80)])[0]
    assert det.embeddings is None and net.embed(det.features, det.boxes[:1]) is None
    k = min(len(det), 2)
    pasted = net.paste_masks(det.boxes[:k], det.mask_probs[:k], (64, 80))
    assert torch.equal(net.refine_box_masks(det.features, det.boxes[:k], det.mask_probs[:k]), pasted)
    given = torch.rand(k, 64, 80)
    assert torch.equal(net.refine_image_masks(det.features, det.boxes[:k], given), given)


def test_autocast_cpu(model: OVSNet) -> None:
    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        det = model.detect([torch.rand(3, 64, 80)])[0]
        k = min(len(det), 2)
        out = model.refine_box_masks(det.features, det.boxes[:k], det.mask_probs[:k])
    assert out.shape == (k, 64, 80) and torch.isfinite(out).all()


def test_one_step_lowers_the_loss(batch: tuple) -> None:
    torch.manual_seed(0)
    net = build_ovsnet(**TINY).train()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def total() -> torch.Tensor:
        torch.manual_seed(123)  # same proposal sampling and dropout for both evaluations
        return group_losses(net(*batch))["total"]

    before = total()
    opt.zero_grad()
    before.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)  # as the trainer config does (from scratch)
    opt.step()
    with torch.no_grad():
        after = total()
    assert after < before


def test_mga_size_sets_the_refinement_resolution(batch: tuple) -> None:
    """``mga_size`` (100 in the paper) sets MGA's working grid in training and inference alike."""
    torch.manual_seed(0)
    net = build_ovsnet(**TINY, mga_size=24)
    assert net.mga.out_size == 24
    net.train()
    assert torch.isfinite(net(*batch)["loss_refine"])
    net.eval()
    det = net.detect([batch[0][0]])[0]
    logits = net.mga(
        [det.features.features[k] for k in net.level_names],
        torch.tensor([[0.0, 4.0, 4.0, 40.0, 40.0]]),
        det.features.padded_size,
        torch.full((1, 1, net.mga.crop_size, net.mga.crop_size), 0.5),
    )
    assert logits.shape == (1, 2, 24, 24)
    refined = net.refine_box_masks(det.features, det.boxes[:1], det.mask_probs[:1])
    assert refined.shape == (min(len(det), 1), 64, 80)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_drift_fraction_chooses_mga_guidance(batch: tuple, fraction: float, monkeypatch) -> None:
    """With ``mga_drift_fraction=1`` MGA is guided by the (drifted) ground-truth mask cropped at that mask's
    own box; with 0 by the detector's box-relative mask padded with 0.5 (the paper)."""
    from torchvision.ops import masks_to_boxes

    import ovsnet.models.ovsnet as ovsnet_module
    from ovsnet.models.mga import crop_attention, enlarge_boxes

    monkeypatch.setattr(ovsnet_module, "drift_masks", lambda masks, *a, **k: masks.float())  # no drift
    torch.manual_seed(0)
    net = build_ovsnet(**TINY, mga_drift_fraction=fraction).train()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    forward = net.mga.forward
    monkeypatch.setattr(
        net.mga,
        "forward",
        lambda lv, rois, size, att: seen.append((rois, att)) or forward(lv, rois, size, att),
    )
    images, targets = batch
    assert torch.isfinite(net(images[1:2], targets[1:2])["loss_refine"])
    rois, attention = seen[-1]
    gt = targets[1]["masks"].float()
    if fraction == 1.0:
        box = enlarge_boxes(masks_to_boxes(gt > 0.5), net.mga.enlarge)  # the guide's box, not a proposal
        assert torch.allclose(rois[:, 1:], box.expand(len(rois), 4))
        expected = crop_attention(gt[[0] * len(rois)], rois[:, 1:], net.mga.crop_size)
        assert torch.allclose(attention, expected)
    else:
        border = torch.cat([attention[..., 0, :], attention[..., -1, :]], -1)
        assert torch.allclose(border, torch.full_like(border, 0.5))  # box_attention's padding


def test_drift_fraction_is_validated() -> None:
    with pytest.raises(ValueError, match="drift_fraction"):
        build_ovsnet(**TINY, mga_drift_fraction=1.5)
