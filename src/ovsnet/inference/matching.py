"""Matching pixels against an appearance memory: the mean of each query's top-k cosine similarities to a bank
(:func:`best_matches`, :func:`top_k_mean`) and the number format to compute them in (:func:`matching_dtype`).

Split from :mod:`ovsnet.inference.appearance`, which decides what is matched; here is only how fast.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from ovsnet.inference.settings import APPEARANCE_PRECISIONS

__all__ = ["MATCH_BLOCK", "TOP_K_GROUP", "best_matches", "matching_dtype", "top_k_mean"]

# similarities matched in one block (1024 queries of a 4096-pixel memory: 16 MB, the fastest block)
MATCH_BLOCK = 1 << 22
# memory columns per group of top_k_mean's first pass (64: the fastest of 16-256 for 4096-pixel memories)
TOP_K_GROUP = 64


@functools.lru_cache(maxsize=1)
def _cpu_has_amx() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in AMX tiles (Intel Sapphire Rapids and later)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def matching_dtype(precision: str, device: str | torch.device) -> torch.dtype:
    """The number format of the network's pass and of the matching (``inference.appearance.precision``):
    ``auto`` is bfloat16 on a CPU with AMX, float32 elsewhere.

    On an AMX CPU (2 cores, 854x480) bfloat16 ran the network's pass over a 256x456 window in 24 against
    42 ms and a 2500x6144 matching of 192-long vectors in 16 against 28 ms. A CPU without AMX converts
    bfloat16 in software, slower than float32; a GPU is left in float32 (not measured here).
    """
    if precision not in APPEARANCE_PRECISIONS:
        raise ValueError(
            f"inference.appearance.precision must be one of {list(APPEARANCE_PRECISIONS)}, got {precision!r}"
        )
    if precision == "auto":
        precision = "bfloat16" if torch.device(device).type == "cpu" and _cpu_has_amx() else "float32"
    return getattr(torch, precision)


def top_k_mean(sim: Tensor, k: int, group: int = TOP_K_GROUP) -> Tensor:
    """The mean of the ``k`` largest values in each row of an (M, N) matrix (exactly
    ``sim.topk(k, dim=1).values.mean(1)``).

    ``torch.topk`` over a 4096-pixel memory cost as much as the product that made the similarities. The k
    largest values of a row lie in the k groups of ``group`` columns with the largest maxima, so a max per
    group, a top-k among the group maxima and a top-k among those k groups' values give the same result
    in half the time.
    """
    m, n = sim.shape
    k = min(k, n)
    whole = n // group
    if whole <= k:
        return sim.topk(k, dim=1, sorted=False).values.mean(1)
    groups = sim[:, : whole * group].unflatten(1, (whole, group))
    best = groups.amax(2).topk(k, dim=1, sorted=False).indices
    picked = torch.gather(groups, 1, best[:, :, None].expand(m, k, group)).flatten(1)
    candidates = torch.cat([picked, sim[:, whole * group :]], dim=1)  # and the columns past the last group
    return candidates.topk(k, dim=1, sorted=False).values.mean(1)


def best_matches(queries: Tensor, bank: Tensor, k: int) -> Tensor:
    """(M,) the mean of each query's ``k`` largest cosine similarities to a (C, N) memory bank, for (M, C)
    unit query vectors.

    The similarities go through :func:`top_k_mean` a block of about :data:`MATCH_BLOCK` values at a time:
    a block stays in the CPU's cache between the product and the reductions, where a whole 2500x4096 matrix
    (40 MB) did not (9 against 20 ms on 2 threads).
    """
    rows = max(1, MATCH_BLOCK // bank.shape[1])
    if len(queries) <= rows:
        return top_k_mean((queries @ bank).float(), k)
    # a bfloat16 product is read back as float32: the top-k and max reductions are slow in bfloat16
    return torch.cat([top_k_mean((block @ bank).float(), k) for block in queries.split(rows)])
