"""The one place that reads checkpoint files: safe by default, every error naming the file.

Checkpoints load with ``torch.load(weights_only=True)``, which unpickles tensors and plain containers only,
plus the few types this project's own Lightning checkpoints may hold (:data:`SAFE_GLOBALS`: OmegaConf
containers and their nodes, ``typing.Any``, ``collections.defaultdict``, paths). Anything else (a pickled
object that could run code on load) is refused with a :class:`CheckpointError` that names the file and the
flag that trusts it (``trust_checkpoint=true`` in evaluate.py, ``--trust-checkpoint`` in the video CLI);
``trust=True`` loads the file in full (``weights_only=False``).

- :func:`load_checkpoint`: the raw object of a checkpoint file.
- :func:`read_checkpoint` / :func:`read_hyperparameters`: its state dict of tensors / its hyper-parameters.
- :func:`strip_prefix`: the one prefix stripper (Lightning's ``model.``, OVS-Net's ``detector.``...).
- :func:`load_weights`: weights into a built network (strict, or partial for a new head / class count).

Reading only: building a network from a checkpoint is :mod:`ovsnet.models.loading` (the detector reads its
``checkpoint=`` weights through this module, so this module builds nothing and imports no model). This is
the models layer: it imports nothing from ``ovsnet.inference``, ``ovsnet.lightning`` or ``ovsnet.evaluation``.
"""

from __future__ import annotations

import collections
import logging
import os
import pathlib
import pickle
import re
import sys
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf import nodes as omegaconf_nodes
from omegaconf.base import ContainerMetadata, Metadata
from torch import nn

from ovsnet.data.io import DataError

__all__ = [
    "SAFE_GLOBALS",
    "TRUST_FLAG",
    "CheckpointError",
    "first_line",
    "hyperparameters_of",
    "load_checkpoint",
    "load_state",
    "load_weights",
    "plain_hyperparameter",
    "read_checkpoint",
    "read_hyperparameters",
    "state_dict_of",
    "strip_prefix",
]

log = logging.getLogger(__name__)

# how the user trusts a checkpoint, named in refusals (entry points pass their own spelling)
TRUST_FLAG = "trust_checkpoint=true"
# The types a checkpoint written by this project may hold besides tensors and plain containers: Lightning
# stores hyper-parameters as given (OmegaConf containers when a module is built from a DictConfig), whose
# pickles reference their metadata, nodes and type hints.
SAFE_GLOBALS: list[Any] = [
    DictConfig,
    ListConfig,
    ContainerMetadata,
    Metadata,
    *(
        getattr(omegaconf_nodes, name)
        for name in (
            "AnyNode",
            "StringNode",
            "IntegerNode",
            "FloatNode",
            "BooleanNode",
            "BytesNode",
            "PathNode",
        )
        if hasattr(omegaconf_nodes, name)
    ),
    typing.Any,
    collections.defaultdict,
    dict,
    list,
    tuple,
    set,
    int,
    float,
    str,
    bool,
    bytes,
    pathlib.PosixPath,
    pathlib.PurePosixPath,
    pathlib.WindowsPath,
    pathlib.PureWindowsPath,
]
# Lightning's prefix of the network's keys in a LightningModule checkpoint
MODULE_PREFIXES = ("model.",)
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"


class CheckpointError(DataError):
    """A checkpoint that cannot be used: missing, truncated, not a checkpoint, refused, another architecture.

    The message is one line and names the file.
    """


def first_line(exc: BaseException) -> str:
    """An exception's first line, whitespace collapsed and cut to 200 characters (for one-line errors)."""
    text = " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _missing_global(name: str) -> bool:
    """Whether ``name`` lies in an imported module that lacks it (nothing is imported to find out)."""
    module, _, attr = name.rpartition(".")
    return module in sys.modules and not hasattr(sys.modules[module], attr)


def _refusal(file: Path, exc: BaseException, trust_flag: str) -> CheckpointError:
    message = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found and _missing_global(found.group(1)):  # a name cut short: the file ends early
        return CheckpointError(
            f"checkpoint {file} is truncated or corrupt (it names {found.group(1)}, which does not exist)"
        )
    if found:
        what = f"holds {found.group(1)}, which a safe (weights-only) load refuses"
    else:
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", message, flags=re.DOTALL)
        reason = " ".join(detail.group(1).split("\n\n")[0].split()) if detail else first_line(exc)
        what = f"cannot be read by a safe (weights-only) load ({reason})"
    return CheckpointError(
        f"checkpoint {file} {what} (a full load could run code from the file); "
        f"if you trust this file, pass {trust_flag} to load it in full"
    )


def load_checkpoint(
    path: str | os.PathLike,
    map_location: Any = "cpu",
    *,
    trust: bool = False,
    mmap: bool = False,
    trust_flag: str = TRUST_FLAG,
) -> Any:
    """The object stored in a checkpoint file (``torch.save``: zip archive or legacy pickle).

    ``trust=False`` (default) loads with ``weights_only=True`` and :data:`SAFE_GLOBALS`; ``mmap=True`` maps
    the tensors of a zip archive instead of reading them (cheap reads of the hyper-parameters). Raises
    :class:`CheckpointError` naming the file: missing, empty, not a checkpoint, truncated or corrupt, or
    holding objects a safe load refuses (the message then names ``trust_flag``).
    """
    file = Path(path).expanduser()
    if not file.exists():
        raise CheckpointError(f"checkpoint {file}: no such file")
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file}: not a file")
    try:
        with file.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {file}: cannot read it ({first_line(exc)})") from exc
    if not head:
        raise CheckpointError(f"checkpoint {file} is empty (0 bytes)")
    is_zip = head.startswith(_ZIP_MAGIC)
    if not is_zip and not head.startswith(_PICKLE_PROTO):
        raise CheckpointError(
            f"checkpoint {file} is not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"
        )
    kwargs: dict[str, Any] = {"map_location": map_location, "mmap": bool(mmap and is_zip)}
    try:
        if trust:
            return torch.load(file, weights_only=False, **kwargs)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(file, weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        if not trust and "weights only load failed" in str(exc).lower():
            raise _refusal(file, exc, trust_flag) from exc
        raise CheckpointError(
            f"checkpoint {file} is not a PyTorch checkpoint or is corrupt ({first_line(exc)})"
        ) from exc
    except RuntimeError as exc:
        if "PytorchStreamReader" in str(exc) or "zip archive" in str(exc):
            raise CheckpointError(
                f"checkpoint {file} is truncated or corrupt (an incomplete zip archive: "
                f"{first_line(exc).split('. ')[0]})"
            ) from exc
        raise CheckpointError(f"checkpoint {file} cannot be read ({first_line(exc)})") from exc
    except EOFError as exc:
        raise CheckpointError(f"checkpoint {file} is truncated (the pickle ends early)") from exc
    except OSError as exc:
        raise CheckpointError(f"checkpoint {file}: cannot read it ({first_line(exc)})") from exc
    except (AttributeError, ImportError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise CheckpointError(
            f"checkpoint {file} cannot be unpickled ({type(exc).__name__}: {first_line(exc)})"
        ) from exc


def state_dict_of(obj: Any, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a loaded checkpoint: its ``state_dict`` (Lightning) or ``model`` entry, or itself."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    elif isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {source} holds no state dict of tensors")
    return dict(obj)


def plain_hyperparameter(value: Any) -> Any:
    """OmegaConf containers (as Lightning may store hyper-parameters) → plain containers, recursively."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: plain_hyperparameter(v) for k, v in value.items()}
    return value


def hyperparameters_of(obj: Any) -> dict[str, Any]:
    """A loaded checkpoint's ``hyper_parameters`` as plain containers ({} when it stores none)."""
    hparams = obj.get("hyper_parameters") if isinstance(obj, Mapping) else None
    return dict(plain_hyperparameter(hparams)) if isinstance(hparams, (Mapping, DictConfig)) else {}


def read_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", *, trust: bool = False, trust_flag: str = TRUST_FLAG
) -> dict[str, torch.Tensor]:
    """The raw state dict (keys as stored) of a torchvision file or an ovsnet/Lightning checkpoint."""
    obj = load_checkpoint(path, map_location, trust=trust, trust_flag=trust_flag)
    return state_dict_of(obj, Path(path).expanduser())


def read_hyperparameters(
    path: str | os.PathLike, *, trust: bool = False, trust_flag: str = TRUST_FLAG
) -> dict[str, Any]:
    """A Lightning checkpoint's ``hyper_parameters`` as plain containers ({} when it stores none).

    The tensors are memory-mapped, not read (zip archives).
    """
    return hyperparameters_of(load_checkpoint(path, "cpu", trust=trust, mmap=True, trust_flag=trust_flag))


def strip_prefix(
    state: Mapping[str, torch.Tensor], prefixes: Sequence[str] = MODULE_PREFIXES
) -> dict[str, torch.Tensor]:
    """The keys under the first of ``prefixes`` that any key starts with, that prefix removed.

    Keys without it are dropped (e.g. a Lightning module's other members); a state dict without any of the
    prefixes is returned as is.
    """
    for prefix in prefixes:
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            return sub
    return dict(state)


def _mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    return missing, unexpected, shape


def _format_keys(title: str, keys: list[str], limit: int = 5) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"{title} ({len(keys)}): {', '.join(keys[:limit])}{more}"


def load_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike, strict: bool = True
) -> None:
    """Load ``state`` into ``model``; ``strict=False`` keeps the matching keys (new heads, another class count).

    With ``strict=True`` any difference raises a :class:`CheckpointError` that names ``source`` and lists the
    mismatched keys.
    """
    missing, unexpected, shape = _mismatch(model, state)
    if strict and (missing or unexpected or shape):
        parts = [
            _format_keys(t, k)
            for t, k in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shape))
            if k
        ]
        raise CheckpointError(
            f"checkpoint {source} does not match this architecture (another backbone or model_config?); "
            + "; ".join(parts)
        )
    bad = {s.split(":")[0] for s in shape}
    model.load_state_dict({k: v for k, v in state.items() if k not in bad}, strict=False)
    if missing or unexpected or shape:
        log.warning(
            "partial load from %s: %d missing, %d unexpected, %d reshaped keys skipped",
            source,
            len(missing),
            len(unexpected),
            len(shape),
        )


def load_weights(
    model: nn.Module,
    path: str | os.PathLike,
    strict: bool = True,
    *,
    trust: bool = False,
    trust_flag: str = TRUST_FLAG,
) -> None:
    """Load an ``OVSNetModule`` checkpoint's network weights (``model.`` prefix stripped) into ``model``."""
    state = strip_prefix(read_checkpoint(path, trust=trust, trust_flag=trust_flag))
    load_state(model, state, Path(path).expanduser(), strict=strict)
