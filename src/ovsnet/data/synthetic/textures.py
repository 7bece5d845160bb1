"""The toy look: saturated patterned colours on a desaturated, lower-contrast cloudy background.

Objects must stand out by colour and pattern, yet the background must not be flat (a model that only finds
"anything not grey" learns nothing): multi-octave noise plus faint clutter shapes give it edges that are not
objects.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

import cv2
import numpy as np

from ovsnet.data.procedural.config import SyntheticConfig


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB in 0..255 (float) of a hue in degrees and saturation / value in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb((h % 360.0) / 360.0, s, v), np.float32) * 255.0


def pattern(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """A periodic signal in [-1, 1]-ish over object coordinates; its sign picks the pattern colour."""
    f = 2.0 * math.pi / period
    if kind == "stripes":
        return np.sin(f * u)
    if kind == "checker":
        return 2.0 * np.sin(f * u) * np.sin(f * v)
    if kind == "dots":
        return 1.5 * (np.cos(f * u) + np.cos(f * v) - 0.8)
    if kind == "rings":
        return np.sin(f * np.sqrt(u * u + v * v))
    return np.sin(f * (u + 0.35 * period * np.sin(0.5 * f * v)))  # waves


def background_canvas(rng: np.random.Generator, height: int, width: int, cfg: SyntheticConfig) -> np.ndarray:
    """A desaturated, lower-contrast multi-octave noise texture with faint clutter shapes (uint8 RGB)."""
    base = min(height, width)

    def noise(cells: Sequence[tuple[float, float]]) -> np.ndarray:
        acc = np.zeros((height, width), np.float32)
        for cell, weight in cells:
            gh, gw = max(2, round(height / cell) + 1), max(2, round(width / cell) + 1)
            grid = rng.random((gh, gw), dtype=np.float32)
            acc += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        return (acc - acc.mean()) / (acc.std() + 1e-6)

    value = noise(((base / 2, 1.0), (base / 6, 0.6), (base / 16, 0.45), (max(2.0, base / 48), 0.3)))
    value = float(rng.uniform(*cfg.background_value)) + cfg.background_contrast * value
    tint = noise(((base / 2, 1.0),))
    hue = (float(rng.uniform(0, 360)) + 25.0 * tint) % 360.0
    sat = np.clip(float(rng.uniform(*cfg.background_saturation)) * (1.0 + 0.3 * tint), 0.0, 1.0)
    hsv = np.dstack([hue, sat, np.clip(value, 0.0, 1.0)]).astype(np.float32)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    for _ in range(cfg.background_clutter):
        mask = np.zeros((height, width), np.uint8)
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.uniform(0.05, 0.25) * base) + 1, int(rng.uniform(0.03, 0.15) * base) + 1)
        if rng.random() < 0.5:
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            box = cv2.boxPoints((centre, (2.0 * axes[0], 2.0 * axes[1]), float(rng.uniform(0, 180))))
            cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
        grey = float(np.clip(value.mean() + rng.uniform(-0.15, 0.15), 0, 1))
        shade = np.array(
            colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(0, 0.15)), grey), np.float32
        )
        sel = mask.astype(bool)
        rgb[sel] = 0.65 * rgb[sel] + 0.35 * shade
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
