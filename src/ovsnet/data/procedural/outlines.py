"""The deforming star / blob outline that the toy style draws and the photo style offers as one shape family.

``r(θ, t) = 1 + a(t)·cos(nθ + φ + δ·t) + Σ_j b_j·cos(k_j θ + ψ_j + δ_j·t)`` with a lobe amplitude that
breathes, ``a(t) = a·(1 + deform·sin(ω t + φ_a))``: one formula, so both styles deform the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def concave_amp(drawn: float, lobes: int, deform: float) -> float:
    """The lobe amplitude, raised so the outline stays clearly non-convex (solidity <~ 0.95) even at the
    smallest amplitude of its modulation (``a > 1/(n²+1)`` is the bare non-convexity bound)."""
    return max(drawn, (0.1 + 1.3 / (lobes * lobes)) / (1.0 - deform))


@dataclass
class StarOutline:
    """Radius as a function of angle and frame, in units of the shape's nominal radius."""

    lobes: int
    amp: float
    phase: float
    drift: float  # radians per frame of the lobe phase (non-rigid deformation)
    amp_freq: float
    amp_phase: float
    deform: float  # relative modulation of the lobe amplitude over time
    harm_k: np.ndarray
    harm_amp: np.ndarray
    harm_phase: np.ndarray
    harm_drift: np.ndarray

    def radius(self, theta: np.ndarray, t: int) -> np.ndarray:
        amp = self.amp * (1.0 + self.deform * math.sin(self.amp_freq * t + self.amp_phase))
        r = 1.0 + amp * np.cos(self.lobes * theta + self.phase + self.drift * t)
        if self.harm_k.size:
            phases = self.harm_phase + self.harm_drift * t
            waves = np.cos(self.harm_k[:, None] * theta[None] + phases[:, None])
            r = r + (self.harm_amp[:, None] * waves).sum(0)
        return r

    def reach(self) -> float:
        """Upper bound of :meth:`radius` over all angles and frames."""
        return 1.0 + self.amp * (1.0 + self.deform) + float(self.harm_amp.sum())
