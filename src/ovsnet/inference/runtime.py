"""How ``ovsnet-video`` prepares a loaded model for its preset: one thread setting, BN folded, masks only for
candidates the cascade can use, and with ``--preset realtime`` test-time counts sized to the objects tracked.

Why each step (measured on the EfficientNet-Lite0 detector at 240x427, see ``bench/realtime_cpu.py``):

- the RoI heads, not the trunk, dominate a default detector pass: 1000 proposals through the box head and
  100 detections through the mask and Re-ID heads. A video of a few objects needs a few candidates, and the
  cascade drops every candidate scoring under ``cascade.min_candidate_score`` anyway, so the detector's score
  threshold is raised to it (NMS and the top-k keep exactly the candidates the cascade would keep) and the
  mask / Re-ID heads run on those only;
- frozen BN in the trunk is two element-wise passes per conv; folded into the conv it costs nothing (the
  trunk went from 50 to 27 ms at 1 thread);
- ``torch.set_num_threads`` is a process-wide setting: set it once, before the first frame.

The ``default`` preset keeps 500 proposals (torchvision's 1000 cost twice the box head; 300 cost a small bird
its re-detection on DAVIS, mallard-fly -0.01 J&F; docs/benchmarks.md, "Real-video speed") and the model's
detection counts.
Everything here changes a loaded model in place and leaves its weights' meaning unchanged; ``evaluate.py``
runs the checkpoint without :func:`prepare_runtime`. Folding BN changes masks only by float rounding; the
default preset's 500 proposals gave the same J&F as 1000 on the held-out DAVIS videos.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

__all__ = [
    "BACKENDS",
    "DEFAULT_PRESET_PROPOSALS",
    "RuntimeSettings",
    "fold_batchnorm",
    "fold_batchnorm_checked",
    "for_onnx",
    "load_backend",
    "prepare_runtime",
    "preset_runtime",
    "set_threads",
    "size_test_time",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeSettings:
    """Runtime choices of a preset (not inference settings: those are ``conf/inference/<preset>.yaml``).

    The defaults are the ``realtime`` preset's: its counts are the test-time values of
    ``conf/model/realtime.yaml``, applied to any loaded checkpoint, so a model trained with the default counts
    runs with these too. A count of None keeps the model's own.
    """

    threads: int | None = 2
    fold_bn: bool = True
    # the detector in channels-last (NHWC) memory: its folded pass ~28% faster at 240x427 on 2 threads, 13% on
    # 1; MGA's small crops are not (slower on 1 thread), so MGA stays NCHW
    channels_last: bool = True
    rpn_pre_nms_top_n: int | None = 150
    rpn_post_nms_top_n: int | None = 50
    detections_per_img: int | None = 10


# the default preset's proposals after NMS (torchvision's test-time default is 1000): the box head over them
# was two thirds of a detector pass; 500 gave the same masks on held-out DAVIS videos, 300 lost a small bird
DEFAULT_PRESET_PROPOSALS = 500


def preset_runtime(preset: str, threads: int | None) -> RuntimeSettings:
    """The preparation of ``ovsnet-video --preset <preset>``: ``realtime`` sizes the counts to a few objects;
    any other keeps :data:`DEFAULT_PRESET_PROPOSALS` proposals and the model's other counts (they decide which
    small objects are found). Both fold BN, run the detector channels-last and mask only candidates the
    cascade can use."""
    if preset == "realtime":
        return RuntimeSettings(threads=threads)
    return RuntimeSettings(
        threads=threads,
        rpn_pre_nms_top_n=None,
        rpn_post_nms_top_n=DEFAULT_PRESET_PROPOSALS,
        detections_per_img=None,
    )


def for_onnx(settings: RuntimeSettings) -> RuntimeSettings:
    """The settings for PyTorch's part of the ONNX Runtime backend (the sessions get ``settings.threads``).

    ONNX Runtime fuses BN itself; PyTorch keeps one thread for the RoI glue between sessions: its OpenMP
    workers spin after each op and took the cores from ONNX Runtime's (one of 2 cores busy elsewhere: 44 ms a
    detector pass with 1 PyTorch thread, ~200 ms with 2).
    """
    return replace(settings, fold_bn=False, threads=1 if settings.threads is not None else None)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` intra-op threads (``None``: leave torch's choice); a no-op when already set."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        log.info("torch intra-op threads: %d", threads)


def _bn_classes() -> tuple[type[nn.Module], ...]:
    classes: list[type[nn.Module]] = [nn.BatchNorm2d, FrozenBatchNorm2d]
    try:  # timm's BN+activation layers (EfficientNet-Lite); timm is optional for the ResNet backbones
        from timm.layers import BatchNormAct2d, FrozenBatchNormAct2d

        classes += [BatchNormAct2d, FrozenBatchNormAct2d]
    except ImportError:  # pragma: no cover - timm is a dependency, but folding must not need it
        pass
    return tuple(classes)


def _affine(bn: nn.Module) -> tuple[Tensor, Tensor] | None:
    """(scale, shift) of an eval-mode BN, or None when it has no running statistics (cannot be folded)."""
    mean, var = getattr(bn, "running_mean", None), getattr(bn, "running_var", None)
    if mean is None or var is None:
        return None
    weight = bn.weight if getattr(bn, "weight", None) is not None else torch.ones_like(var)
    bias = bn.bias if getattr(bn, "bias", None) is not None else torch.zeros_like(mean)
    scale = weight / torch.sqrt(var + bn.eps)
    return scale, bias - mean * scale


def _fold_pair(conv: nn.Conv2d, bn: nn.Module) -> bool:
    affine = _affine(bn)
    if affine is None or conv.out_channels != len(affine[0]):
        return False
    scale, shift = (t.detach().to(conv.weight.dtype) for t in affine)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        bias = conv.bias.detach() * scale + shift if conv.bias is not None else shift
        conv.bias = nn.Parameter(bias.clone(), requires_grad=False)
    return True


def _replacement(bn: nn.Module) -> nn.Module:
    """What is left of a folded BN layer: timm's BN+act keeps its activation (its dropout is off in eval)."""
    act = getattr(bn, "act", None)
    return act if isinstance(act, nn.Module) else nn.Identity()


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BN into the ``Conv2d`` registered just before it in the same parent; returns the
    number folded. For inference only: the model must be in eval mode (a training BN has no fixed affine).

    Registration order is forward order in torchvision's and timm's CNNs; :func:`fold_batchnorm_checked` checks
    the folded network's output against the original, so a module that registers layers out of order fails
    loudly instead of computing something else.
    """
    if module.training:
        raise ValueError("fold_batchnorm needs an eval-mode module (call .eval() first)")
    classes = _bn_classes()
    folded = 0
    for parent in list(module.modules()):
        previous: nn.Module | None = None
        for name, child in list(parent.named_children()):
            if isinstance(child, classes) and isinstance(previous, nn.Conv2d) and _fold_pair(previous, child):
                setattr(parent, name, _replacement(child))
                folded += 1
                previous = None
            else:
                previous = child
    return folded


def size_test_time(
    model: nn.Module,
    rpn_pre_nms_top_n: int | None,
    rpn_post_nms_top_n: int | None,
    detections_per_img: int | None,
    min_score: float | None = None,
) -> None:
    """Set the detector's test-time proposal / detection counts (None: keep that one); with ``min_score``, drop
    detections scoring under it before the mask and Re-ID heads (the cascade's ``cascade.min_candidate_score``:
    it keeps none of them).

    torchvision keeps scores ``> score_thresh``, the cascade ``>= cascade.min_candidate_score``, both comparing float32
    scores with the value rounded to float32: the threshold is the float32 just below, so both keep the same
    candidates.
    """
    detector = getattr(model, "detector", model)
    rpn, heads = detector.rpn, detector.roi_heads
    for name, value in (
        ("rpn_pre_nms_top_n", rpn_pre_nms_top_n),
        ("rpn_post_nms_top_n", rpn_post_nms_top_n),
        ("detections_per_img", detections_per_img),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if rpn_pre_nms_top_n is not None:
        rpn._pre_nms_top_n["testing"] = rpn_pre_nms_top_n
    if rpn_post_nms_top_n is not None:
        rpn._post_nms_top_n["testing"] = rpn_post_nms_top_n
    if detections_per_img is not None:
        heads.detections_per_img = detections_per_img
    if min_score is not None:
        below = torch.nextafter(torch.tensor(float(min_score)), torch.tensor(-math.inf))
        heads.score_thresh = max(float(heads.score_thresh), float(below))


def _outputs(out: Tensor | dict[str, Tensor] | list[Tensor] | tuple[Tensor, ...]) -> dict[str, Tensor]:
    if isinstance(out, Tensor):
        return {"0": out}
    items = out.items() if isinstance(out, dict) else enumerate(out)
    return {str(k): v.detach().clone() for k, v in items}


@torch.no_grad()
def fold_batchnorm_checked(module: nn.Module, probe_module: nn.Module | None = None) -> int:
    """:func:`fold_batchnorm` on ``module``, then ``probe_module`` (default: ``module``; a tensor, a dict or a
    list of tensors out) checked on a random 64x64 image against its output before folding; returns the
    number folded. A module that registers its layers out of forward order fails here, loudly."""
    probe_module = module if probe_module is None else probe_module
    probe = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = _outputs(probe_module(probe))
    count = fold_batchnorm(module)
    for key, ref in _outputs(probe_module(probe)).items():
        err = float((ref - before[key]).abs().max())
        tol = 1e-3 * max(1.0, float(before[key].abs().max()))
        if err > tol:
            raise RuntimeError(
                f"folding BN changed the output {key!r} of {type(probe_module).__name__} by {err:.3g} "
                f"(> {tol:.3g}): a module registers its layers out of forward order; use fold_bn=False"
            )
    return count


def prepare_runtime(
    model: nn.Module, settings: RuntimeSettings | None = None, min_score: float | None = None
) -> nn.Module:
    """Prepare a loaded OVSNet for a preset in place (threads, BN folding checked against the unfolded output,
    test-time counts, score threshold, memory format; :func:`preset_runtime`); returns it in eval mode."""
    settings = settings or RuntimeSettings()
    set_threads(settings.threads)
    model.eval()
    detector = getattr(model, "detector", model)
    if settings.fold_bn:
        count = fold_batchnorm_checked(model, detector.backbone)
        log.info("folded %d BN layers into their convolutions", count)
    size_test_time(
        model,
        settings.rpn_pre_nms_top_n,
        settings.rpn_post_nms_top_n,
        settings.detections_per_img,
        min_score,
    )
    if settings.channels_last:
        detector.to(memory_format=torch.channels_last)
    return model


BACKENDS: tuple[str, ...] = ("torch", "onnx")


def load_backend(
    path: str | os.PathLike,
    backend: str = "torch",
    settings: RuntimeSettings | None = None,
    min_score: float | None = None,
    trust: bool = False,
    threads: int | None = None,
) -> nn.Module:
    """A segmenter model from a checkpoint (``backend="torch"``) or an exported ``model.onnx`` (``"onnx"``),
    prepared for the realtime preset when ``settings`` is given (``min_score``: the cascade's
    ``cascade.min_candidate_score``). The Python face of ``ovsnet-video --backend ... --preset realtime``, and
    the loader it uses (unprepared). The settings calibrated for the model are read beside it
    (:func:`~ovsnet.inference.settings.checkpoint_settings`, :func:`~ovsnet.inference.onnx_backend.onnx_settings`).
    ``threads``: ONNX Runtime's threads when no ``settings`` give them.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    threads = settings.threads if settings is not None else threads
    if backend == "onnx":
        from ovsnet.inference.onnx_backend import load_onnx_model

        model = load_onnx_model(path, threads=threads)
        settings = for_onnx(settings) if settings is not None else None
    else:
        from ovsnet.models.loading import load_model

        model = load_model(path, trust=trust, trust_flag="--trust-checkpoint")
    return prepare_runtime(model, settings, min_score) if settings is not None else model
