"""The photo look's settings; objects, motion, camera pan / zoom, events and output are SyntheticConfig's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ovsnet.data.io import DataError
from ovsnet.data.synthetic.config import range_pair

#: Shape families: articulated bodies, branching thin shapes, outlines with holes, crescents, toy stars.
KINDS: tuple[str, ...] = ("limbs", "branch", "holes", "crescent", "star")
_PAIR_FIELDS = ("limbs", "gait_period", "holes", "texture_zoom", "background_zoom")


@dataclass
class PhotoConfig:
    """Knobs of the photo look; objects, motion, camera pan/zoom, events and output come from SyntheticConfig.

    Lengths are relative (to the frame, or to the object's size), so one config works at every frame size.
    """

    # shapes: relative frequency of each family (KINDS); a video draws its objects' kinds without repeats
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {"limbs": 0.4, "branch": 0.15, "holes": 0.2, "crescent": 0.15, "star": 0.1}
    )
    limbs: tuple[int, int] = (2, 4)  # jointed limbs (two segments each) of an articulated body
    limb_swing: float = 0.45  # radians, amplitude of a limb's swing at its root
    gait_period: tuple[float, float] = (10.0, 24.0)  # frames per swing cycle
    holes: tuple[int, int] = (1, 3)
    max_extent: float = 0.5  # farthest shape point from its centre, fraction of the frame's shorter side
    min_width_px: float = 0.9  # thinnest half-width of a limb or twig, in pixels
    # appearance
    texture_zoom: tuple[float, float] = (0.3, 0.7)  # object's rest extent / shorter side of its photo
    background_zoom: tuple[float, float] = (0.5, 1.0)  # of the widest view that keeps the camera inside it
    colour_jitter: float = 0.06  # per-channel gain jitter of a texture or background
    rim_shade: float = 0.3  # darkening at the object's rim (roundness)
    light: float = 0.15  # directional light across the object
    contact_shade: float = 0.25  # darkening where one part overlaps another (a limb over the torso)
    shadow: float = 0.3  # opacity of the drop shadow
    shadow_offset: float = 0.08  # in units of the object's size
    shadow_blur: float = 0.06
    # camera and lighting (the periodic pan / zoom are SyntheticConfig.camera_*)
    pan_drift: float = 0.3  # total camera travel over the video, fraction of the frame width
    zoom_drift: float = 0.3  # largest log-zoom change over the video (a slow zoom in or out)
    motion_blur: float = 0.6  # fraction of the frame time the shutter is open
    min_blur_px: float = 1.5  # shorter blur streaks are not drawn
    light_colour: float = 0.05  # colour-temperature drift amplitude
    light_gradient: float = 0.12  # amplitude of a slowly turning brightness gradient
    vignette: float = 0.2

    def __post_init__(self) -> None:
        for name in _PAIR_FIELDS:
            integer = name in ("limbs", "holes")
            setattr(self, name, range_pair("PhotoConfig", name, getattr(self, name), integer, positive=True))
        if not 2 <= self.limbs[0] <= self.limbs[1] <= 4:
            raise DataError(f"PhotoConfig.limbs must lie in 2..4, got {self.limbs}")
        if self.holes[1] > 3:
            raise DataError(f"PhotoConfig.holes must lie in 1..3, got {self.holes}")
        try:
            weights = {str(k): float(v) for k, v in dict(self.kind_weights).items()}
        except (TypeError, ValueError):
            raise DataError(
                f"PhotoConfig.kind_weights must map kinds to weights, got {self.kind_weights!r}"
            ) from None
        unknown = sorted(set(weights) - set(KINDS))
        if unknown or any(v < 0 for v in weights.values()) or sum(weights.values()) <= 0:
            raise DataError(
                f"PhotoConfig.kind_weights: kinds from {KINDS} with weights >= 0, not all 0; got {weights}"
            )
        self.kind_weights = weights
        for name in (
            "rim_shade",
            "light",
            "contact_shade",
            "shadow",
            "light_colour",
            "light_gradient",
            "vignette",
        ):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise DataError(f"PhotoConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in (
            "limb_swing",
            "shadow_offset",
            "shadow_blur",
            "pan_drift",
            "zoom_drift",
            "motion_blur",
            "colour_jitter",
        ):
            if float(getattr(self, name)) < 0:
                raise DataError(f"PhotoConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.05 <= self.max_extent <= 1.0 or self.min_width_px < 0 or self.min_blur_px < 0:
            raise DataError("PhotoConfig: max_extent in [0.05, 1], min_width_px >= 0, min_blur_px >= 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> PhotoConfig:
        """Build from a plain or OmegaConf mapping; an unknown key is a :class:`DataError` naming it."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"unknown photo config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)
