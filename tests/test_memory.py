"""ReIDBank: first embedding kept forever, bounded size, FIFO and diversity-preserving eviction."""

from __future__ import annotations

import pytest
import torch

from ovsnet.inference.memory import ReIDBank


def _e(value: float, dim: int = 4) -> torch.Tensor:
    return torch.full((dim,), float(value))


@pytest.mark.parametrize("policy", ["fifo", "diverse"])
def test_bank_is_bounded_and_keeps_first(policy: str) -> None:
    bank = ReIDBank(max_size=3, policy=policy)
    bank.add(_e(-100))
    for i in range(50):
        bank.add(_e(i))
    assert len(bank) == 4
    assert torch.equal(bank.embeddings[0], _e(-100))
    assert bank.embeddings.shape == (4, 4)


def test_fifo_evicts_oldest() -> None:
    bank = ReIDBank(max_size=3, policy="fifo")
    for v in [0, 1, 2, 3, 4, 5]:
        bank.add(_e(v))
    assert sorted(bank.embeddings[:, 0].tolist()) == [0.0, 3.0, 4.0, 5.0]


def test_diverse_drops_the_most_redundant() -> None:
    bank = ReIDBank(max_size=3, policy="diverse")
    for v in [0, 10, 20, 20.1]:
        bank.add(_e(v))
    bank.add(_e(40))  # bank full: 20 and 20.1 are each other's nearest neighbour, one of them goes
    values = sorted(bank.embeddings[:, 0].tolist())
    assert values[0] == 0.0 and 40.0 in values and 10.0 in values
    assert sum(abs(v - 20.0) < 0.2 for v in values) == 1
    bank.add(_e(10.05))  # a near-duplicate of a stored one: the incoming one is the redundant one
    assert len(bank) == 4 and 40.0 in bank.embeddings[:, 0].tolist()


def test_distances_shape_and_values() -> None:
    bank = ReIDBank(max_size=2)
    bank.add(torch.tensor([0.0, 0.0]))
    bank.add(torch.tensor([3.0, 4.0]))
    d = bank.distances(torch.tensor([[0.0, 0.0], [3.0, 0.0], [6.0, 8.0]]))
    assert d.shape == (3, 2)
    torch.testing.assert_close(d, torch.tensor([[0.0, 5.0], [3.0, 4.0], [10.0, 5.0]]))


def test_errors() -> None:
    with pytest.raises(ValueError, match="policy"):
        ReIDBank(policy="lru")
    with pytest.raises(ValueError, match="empty"):
        ReIDBank().distances(torch.zeros(1, 4))
    bank = ReIDBank()
    bank.add(torch.zeros(4))
    with pytest.raises(ValueError, match="embedding size"):
        bank.add(torch.zeros(5))
