"""Bounded per-object Re-ID memory: the first-frame embedding plus at most ``max_size`` later ones.

The bank must stay O(1) in video length (10,000-frame streams) while keeping the ground-truth
appearance from frame 0, which is the only embedding known to be correct.
"""

from __future__ import annotations

import torch

__all__ = ["ReIDBank"]

_POLICIES = ("fifo", "diverse")


class ReIDBank:
    """First embedding (never evicted) + a bounded set of later ones, evicted FIFO or by redundancy.

    ``policy="diverse"`` drops, when full, the later embedding (the incoming one included) whose nearest
    neighbour in the bank is closest: near-duplicates go first so the bank covers more appearances.
    """

    def __init__(self, max_size: int = 64, policy: str = "fifo") -> None:
        if max_size < 0:
            raise ValueError(f"ReIDBank max_size must be >= 0, got {max_size}")
        if policy not in _POLICIES:
            raise ValueError(f"unknown ReIDBank policy {policy!r}; choose one of {_POLICIES}")
        self.max_size = max_size
        self.policy = policy
        self._first: torch.Tensor | None = None
        self._others: torch.Tensor | None = None  # (max_size, D) preallocated ring / slot buffer
        self._count = 0
        self._next = 0  # FIFO write position

    def __len__(self) -> int:
        return (self._first is not None) + self._count

    @property
    def first(self) -> torch.Tensor | None:
        return self._first

    @property
    def embeddings(self) -> torch.Tensor:
        """(len, D): the first embedding, then the stored later ones."""
        if self._first is None:
            raise ValueError("ReIDBank is empty: seed it with the first-frame embedding")
        if self._count == 0:
            return self._first[None]
        return torch.cat((self._first[None], self._others[: self._count]), dim=0)

    def add(self, embedding: torch.Tensor) -> None:
        """Store one (D,) embedding; the first one ever added is kept for the whole video."""
        embedding = embedding.detach().reshape(-1).float()
        if self._first is None:
            self._first = embedding.clone()
            return
        if embedding.numel() != self._first.numel():
            raise ValueError(
                f"embedding size {embedding.numel()} differs from the bank's {self._first.numel()}"
            )
        if self.max_size == 0:
            return
        if self._others is None:
            self._others = embedding.new_zeros((self.max_size, embedding.numel()))
        if self._count < self.max_size:
            self._others[self._count] = embedding
            self._count += 1
        elif self.policy == "fifo":
            self._others[self._next] = embedding
            self._next = (self._next + 1) % self.max_size
        else:
            self._add_diverse(embedding)

    def _add_diverse(self, embedding: torch.Tensor) -> None:
        candidates = torch.cat((self._others, embedding[None]), dim=0)  # (M+1, D), last = incoming
        everything = torch.cat((self._first[None], candidates), dim=0)
        dist = torch.cdist(candidates, everything)
        dist[torch.arange(len(candidates)), torch.arange(1, len(candidates) + 1)] = float("inf")  # self
        victim = int(dist.min(dim=1).values.argmin())
        if victim < self.max_size:
            self._others[victim] = embedding

    def distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, len) Euclidean distances from each candidate embedding to every stored embedding."""
        stored = self.embeddings
        return torch.cdist(embeddings.float().to(stored.device), stored)

    def clear(self) -> None:
        self._first, self._others, self._count, self._next = None, None, 0, 0
