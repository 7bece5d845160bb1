"""Small helpers every layer above ``data`` shares: atomic JSON, config → plain containers, device, precision.

Each existed in two to four copies (evaluation, the video CLI, the validation callback, training, the
baselines); one definition keeps their behaviour the same everywhere. Imports nothing from ``ovsnet`` but
``data.io``, so any module from ``metrics`` up may use it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from ovsnet.data.io import atomic_path

__all__ = ["autocast_dtype", "plain", "remove_stale_temporaries", "resolve_device", "write_json_atomic"]

log = logging.getLogger(__name__)

_FLOAT32 = ("32", "64", "none", "fp32")
_BFLOAT16 = ("bf16",)
_FLOAT16 = ("16", "fp16")


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any], *, sort_keys: bool = False) -> Path:
    """Write ``data`` as indented JSON through a temporary file, so a crash never leaves half a file."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys, default=str))
    return target


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the hidden temporaries an atomic write of ``path`` left behind when its process was killed.

    :func:`~ovsnet.data.io.atomic_path` writes ``.<stem>.<random><suffix>`` beside the target and removes it
    itself on any error, but a SIGKILL skips that; the next run calls this before writing ``path`` again.
    """
    target = Path(path)
    if not target.parent.is_dir():
        return []
    stale = sorted(target.parent.glob(f".{target.stem}.*{target.suffix}"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished temporary file(s) of %s", len(stale), target)
    return stale


def plain(node: Any) -> Any:
    """DictConfig/ListConfig → python containers (resolved when possible); anything else unchanged."""
    if isinstance(node, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(node, resolve=True)
        except Exception:  # noqa: BLE001 - an unresolvable interpolation (${hydra:...}) outside Hydra
            return OmegaConf.to_container(node, resolve=False)
    return node


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) → the first CUDA device when one is visible, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_dtype(
    precision: str | int | torch.dtype | None, device: torch.device | str
) -> torch.dtype | None:
    """A precision setting → the segmenter's autocast dtype (None: float32).

    Takes Lightning's names (``32``, ``32-true``, ``16-mixed``, ``bf16-mixed``) and the video CLI's
    (``none``, ``fp16``, ``bf16``). float16 autocast has no CPU kernels, so it falls back to float32 there
    with a warning.
    """
    if precision is None or isinstance(precision, torch.dtype):
        return precision
    text = str(precision).lower()
    if text.startswith(_FLOAT32):
        return None
    if text.startswith(_BFLOAT16):
        return torch.bfloat16
    if not text.startswith(_FLOAT16):
        raise ValueError(
            f"precision must be 32, 16-mixed or bf16-mixed (or none, fp16, bf16), got {precision!r}"
        )
    if torch.device(device).type == "cpu":
        log.warning("precision %s is not supported on the CPU; running in float32", precision)
        return None
    return torch.float16


def job_overrides() -> list[str]:
    """The running Hydra job's command-line overrides ([] outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)]


def swept_keys(overrides: Sequence[str]) -> list[str]:
    """Keys swept by Hydra multirun overrides (``a=1,2``, ``range(...)``, ``choice(...)``, group lists),
    without their ``+``/``~`` prefix."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    return [o.key_or_group.lstrip("+~") for o in parsed if o.is_sweep_override()]
