"""Re-ID head and batch-hard triplet loss (eq. 1)."""

import pytest
import torch

from ovsnet.models.reid import ReIDHead, batch_hard_triplet_loss, select_reid_samples


def reference_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> float:
    """Brute-force eq. 1 over valid anchors."""
    terms = []
    for a in range(len(emb)):
        pos = [
            float(((emb[a] - emb[p]) ** 2).sum())
            for p in range(len(emb))
            if p != a and labels[p] == labels[a]
        ]
        neg = [float(((emb[a] - emb[n]) ** 2).sum()) for n in range(len(emb)) if labels[n] != labels[a]]
        if pos and neg:
            terms.append(max(max(pos) - min(neg) + margin, 0.0))
    return sum(terms) / len(terms)


def test_head_shapes_and_dropout_only_in_training() -> None:
    head = ReIDHead(in_channels=8, resolution=7, hidden_dim=32, embed_dim=128)
    x = torch.randn(5, 8, 7, 7)
    head.eval()
    out = head(x)
    assert out.shape == (5, 128)
    assert torch.equal(out, head(x))
    head.train()
    assert (head(x) == 0).any()  # dropout 0.2 zeroes some of the 640 outputs


def test_hand_made_value() -> None:
    emb = torch.tensor([[0.0], [1.0], [3.0], [5.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # anchor 2: hardest positive d(3,5)=4, hardest negative d(3,1)=4 -> 1; the others are 0
    assert batch_hard_triplet_loss(emb, labels, margin=1.0).item() == pytest.approx(0.25)


def test_matches_brute_force_and_uses_hardest_pairs() -> None:
    torch.manual_seed(0)
    emb = torch.randn(9, 4)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])
    for margin in (0.5, 1.0, 5.0):
        assert batch_hard_triplet_loss(emb, labels, margin).item() == pytest.approx(
            reference_loss(emb, labels, margin), rel=1e-5
        )
    emb2 = torch.tensor([[0.0], [1.0], [4.0], [9.0]], requires_grad=True)
    loss = batch_hard_triplet_loss(emb2, torch.tensor([0, 0, 1, 2]), margin=100.0)
    loss.backward()
    # anchors 0,1 valid; anchor 0: pos 1 (d=1), neg 2 (d=16); anchor 1: pos 0, neg 2 (d=9)
    assert loss.item() == pytest.approx(((1 - 16 + 100) + (1 - 9 + 100)) / 2)
    assert emb2.grad[3, 0] == 0  # never the hardest negative
    assert emb2.grad[2, 0] != 0


def test_anchors_without_positive_are_skipped() -> None:
    emb = torch.tensor([[0.0], [1.0], [1.5]])
    labels = torch.tensor([0, 0, 1])
    # anchor 0: 1 - 2.25 + 1 = -0.25 -> 0; anchor 1: 1 - 0.25 + 1 = 1.75; anchor 2 skipped
    assert batch_hard_triplet_loss(emb, labels).item() == pytest.approx(0.875)


@pytest.mark.parametrize("labels", [[0, 0, 0], [0, 1, 2], [4]])
def test_no_valid_anchor_gives_zero_that_backprops(labels: list[int]) -> None:
    emb = torch.randn(len(labels), 3, requires_grad=True)
    loss = batch_hard_triplet_loss(emb, torch.tensor(labels))
    assert loss.item() == 0.0
    loss.backward()
    assert emb.grad is not None and torch.all(emb.grad == 0)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="expected embeddings"):
        batch_hard_triplet_loss(torch.randn(3, 2), torch.tensor([0, 1]))


def test_select_top_n_proposals_per_gt() -> None:
    gt = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]])
    props = torch.tensor(
        [[0.0, 0, 10, 9], [0, 0, 10, 5], [0, 0, 10, 10], [51, 50, 60, 60], [100, 100, 110, 110]]
    )
    boxes, ids, gt_index = select_reid_samples(props, gt, torch.tensor([7, 9]), per_gt=2)
    assert ids.tolist() == [7, 7, 9, 9]
    assert gt_index.tolist() == [0, 0, 1, 1]
    assert (
        torch.equal(boxes[0], props[2])
        and torch.equal(boxes[1], props[0])
        and torch.equal(boxes[2], props[3])
    )
    boxes, ids, _ = select_reid_samples(props, gt, torch.tensor([7, 9]), per_gt=2, min_iou=0.5)
    assert ids.tolist() == [7, 7, 9]  # the second proposal for gt 1 has IoU 0
    for empty in (
        select_reid_samples(props, gt[:0], torch.tensor([], dtype=torch.int64)),
        select_reid_samples(props[:0], gt, torch.tensor([7, 9])),
    ):
        assert empty[0].shape == (0, 4) and len(empty[1]) == 0


def test_layer_norm_keeps_the_head_alive_when_features_shift() -> None:
    """A drifting backbone can push every hidden pre-activation below zero: the bare head then gives one
    constant embedding for every box (the Re-ID collapse), the LayerNorm head still tells boxes apart."""
    torch.manual_seed(0)
    x = torch.randn(6, 8, 7, 7)
    heads = {
        norm: ReIDHead(8, 7, hidden_dim=32, embed_dim=16, norm=norm).eval() for norm in ("none", "layer")
    }
    for head in heads.values():
        with torch.no_grad():
            head.fc1.bias.fill_(-100.0)  # every ReLU input negative
    dead = heads["none"](x)
    assert torch.allclose(dead, dead[:1].expand_as(dead))
    alive = heads["layer"](x)
    assert torch.cdist(alive, alive).max() > 0.1
    with pytest.raises(ValueError, match="norm"):
        ReIDHead(8, 7, norm="batch")
