"""Weights & Biases around a run: offline without an API key, closed in ``finally``.

Shared by ``train.py``, ``evaluate.py`` and the scripted stages; W&B itself is imported only when a run
is open, so this module costs nothing when W&B is not used.
"""

from __future__ import annotations

import os
import sys

__all__ = ["finish_wandb", "use_wandb_offline_without_key"]


def use_wandb_offline_without_key() -> None:
    """W&B runs offline (kept under the output dir, syncable later) unless an API key is configured."""
    if not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")


def finish_wandb() -> None:
    """Close a W&B run if one is open (called in ``finally``: a crashed run must not poison a multirun).

    A process that never imported W&B has no run: it is not imported here (a second of start-up).
    """
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
